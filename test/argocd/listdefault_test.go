package argocd

import (
	"fmt"
	"sort"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// listDefaultCRD has a server-side default inside the items of an atomic list (as spec.edges and
// spec.connections are), inside the items of a map list (as spec.services is), and outside any list.
// The ServiceGraph CRD has no default inside list items (api/v1alpha1's CRD test keeps it so);
// this CRD shows what would happen if it had.
const listDefaultCRD = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: listdefaults.test.servicegraph.io}
spec:
  group: test.servicegraph.io
  names: {kind: ListDefault, listKind: ListDefaultList, plural: listdefaults, singular: listdefault}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              mode: {type: string, default: Enforce}
              atomic:
                type: array
                x-kubernetes-list-type: atomic
                items:
                  type: object
                  properties:
                    name: {type: string}
                    protocol: {type: string, default: TCP}
              keyed:
                type: array
                x-kubernetes-list-type: map
                x-kubernetes-list-map-keys: [name]
                items:
                  type: object
                  required: [name]
                  properties:
                    name: {type: string}
                    protocol: {type: string, default: TCP}
`

// listDefaultObjects are what git holds: each of the first three leaves one defaulted field out;
// the fourth is the control, changed by hand after the sync, which every way of diffing must see.
var listDefaultObjects = map[string]string{
	"outside-list": "{atomic: [{name: a, protocol: UDP}]}", // mode: Enforce defaulted on spec
	"atomic-list":  "{mode: Audit, atomic: [{name: a}]}",   // protocol: TCP defaulted in an atomic list's item
	"map-list":     "{mode: Audit, keyed: [{name: a}]}",    // protocol: TCP defaulted in a map list's item
	"drifted":      "{mode: Audit, keyed: [{name: a, protocol: UDP}]}",
}

func listDefaultManifests() map[string]string {
	spec := listDefaultObjects
	files := map[string]string{}
	for name, s := range spec {
		files["list-defaults/"+name+".yaml"] = fmt.Sprintf("apiVersion: test.servicegraph.io/v1\nkind: ListDefault\nmetadata: {name: %s}\nspec: %s\n", name, s)
	}
	return files
}

// The ways of diffing the suite compares: Argo CD's default (client-side apply, three-way diff on
// the last-applied annotation); ServerSideApply=true (which, in v3.6, also turns on server-side
// diff: a dry-run apply); and ServerSideApply=true with server-side diff turned off (a two-way
// client-side diff, since server-side apply writes no last-applied annotation).
var diffModes = []struct {
	app  string
	opts appOptions
}{
	{"list-default-diff", appOptions{}},
	{"list-default-ssa", appOptions{syncOptions: []string{"ServerSideApply=true"}}},
	{"list-default-ssa-csd", appOptions{syncOptions: []string{"ServerSideApply=true"},
		annotations: map[string]string{"argocd.argoproj.io/compare-options": "ServerSideDiff=false"}}},
}

// listDefaultFindings is what a real Argo CD shows for each object after its sync, per way of
// diffing: the answer docs/gitops.md records ("No defaults inside list items"). Change both
// together.
var listDefaultFindings = func() map[string]map[string]string {
	out := map[string]map[string]string{}
	for _, m := range diffModes {
		out[m.app] = map[string]string{"outside-list": "Synced", "atomic-list": "Synced", "map-list": "Synced", "drifted": "OutOfSync"}
	}
	return out
}()

func listDefaultSpecs() {
	It("shows whether an API default inside a list item is a diff, under the default diff and under ServerSideApply=true", func() {
		applyYAML(listDefaultCRD)
		waitEstablished("crd/listdefaults.test.servicegraph.io")
		sha := commit("objects that leave defaulted fields out", listDefaultManifests())
		notSelfHealing := false
		for _, m := range diffModes {
			// No self-heal: an object that diffs stays OutOfSync instead of being synced again
			// and again, so what is read is the diff itself.
			m.opts.selfHeal = &notSelfHealing
			applyYAML(applicationYAML(m.app, "list-defaults", m.app, m.opts))
		}
		got := map[string]map[string]string{}
		for _, m := range diffModes {
			eventuallyApp(m.app, 60*time.Second, func(g Gomega, app *application) {
				g.Expect(app.Status.OperationState).NotTo(BeNil())
				g.Expect(app.Status.OperationState.Phase).To(Equal("Succeeded"))
				g.Expect(app.Status.Sync.Revision).To(Equal(sha))
				g.Expect(app.Status.Resources).To(HaveLen(len(listDefaultObjects)))
			})
		}
		for _, m := range diffModes {
			kubectl("patch", "listdefault", "drifted", "-n", m.app, "--type=merge", "-p", `{"spec":{"mode":"Enforce"}}`)
		}
		// Two more comparisons with git after the syncs, as the periodic refresh makes them.
		for range 2 {
			for _, m := range diffModes {
				refresh(m.app)
			}
			time.Sleep(2 * time.Second)
		}
		for _, m := range diffModes {
			app, err := getApp(m.app)
			Expect(err).NotTo(HaveOccurred())
			got[m.app] = map[string]string{}
			for _, r := range app.Status.Resources {
				got[m.app][r.Name] = r.Status
			}
			live := kubectl("get", "listdefaults", "-n", m.app, "-o", "jsonpath={range .items[*]}{.metadata.name}: {.spec}{\"\\n\"}{end}")
			AddReportEntry("live objects of "+m.app, live)
		}
		AddReportEntry("sync status after the sync, per way of diffing", findingsTable(got))
		Expect(got).To(Equal(listDefaultFindings), "update listDefaultFindings and docs/gitops.md together:\n%s", findingsTable(got))
	})
}

func findingsTable(got map[string]map[string]string) string {
	var b strings.Builder
	apps := make([]string, 0, len(got))
	for app := range got {
		apps = append(apps, app)
	}
	sort.Strings(apps)
	for _, app := range apps {
		objs := make([]string, 0, len(got[app]))
		for obj := range got[app] {
			objs = append(objs, obj+"="+got[app][obj])
		}
		sort.Strings(objs)
		fmt.Fprintf(&b, "%s: %s\n", app, strings.Join(objs, " "))
	}
	return b.String()
}
