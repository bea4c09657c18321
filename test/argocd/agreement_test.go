package argocd

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/servicegraph/servicegraph-operator/test/testenv"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// fixtureCase is one fixture of health_test.yaml with what the gopher-lua runner computes for it.
type fixtureCase struct {
	path   string
	obj    map[string]any
	want   healthStatus
	runner healthStatus
}

// fixtureCases are read, and run through the fixture runner, before the suite starts (the runner's
// helpers take a *testing.T).
var fixtureCases []fixtureCase

func loadFixtureCases(t *testing.T) []fixtureCase {
	script, err := os.ReadFile(filepath.Join(checkDir, "health.lua"))
	if err != nil {
		t.Fatal(err)
	}
	var cases healthTests
	testenv.ReadYAML(t, filepath.Join(checkDir, "health_test.yaml"), &cases)
	var out []fixtureCase
	for _, tc := range cases.Tests {
		var obj map[string]any
		testenv.ReadYAML(t, filepath.Join(checkDir, tc.InputPath), &obj)
		out = append(out, fixtureCase{path: tc.InputPath, obj: obj, want: tc.HealthStatus, runner: runHealth(t, string(script), obj)})
	}
	return out
}

// fixtureAgreementSpecs checks the real Argo CD against the gopher-lua fixture runner: every
// fixture of health_test.yaml is put into the cluster as it is (spec through Argo CD, status
// written as captured, generation brought to the fixture's), and the health the application
// controller computes from argocd-cm must be the runner's, status and message. The operator is
// stopped first, so the captured status stays as written.
func fixtureAgreementSpecs() {
	It("computes, for every health fixture, the status and message the gopher-lua fixture runner computes", func() {
		manager.Stop()
		Expect(fixtureCases).NotTo(BeEmpty())

		type fixture struct {
			namespace, name string
			generation      int64
			status          map[string]any
			want            healthStatus
		}
		var fixtures []fixture
		files := map[string]string{}
		for _, tc := range fixtureCases {
			obj := tc.obj
			Expect(tc.runner).To(Equal(tc.want), "the fixture runner disagrees with health_test.yaml on %s", tc.path)
			runner := tc.runner

			meta := obj["metadata"].(map[string]any)
			base := strings.TrimSuffix(filepath.Base(tc.path), ".yaml")
			f := fixture{namespace: "fixture-" + base, name: meta["name"].(string), want: runner}
			if g, ok := meta["generation"].(float64); ok {
				f.generation = int64(g)
			}
			Expect(f.generation).To(BeNumerically(">=", 1), "%s has no metadata.generation", tc.path)
			f.status, _ = obj["status"].(map[string]any)
			fixtures = append(fixtures, f)

			spec, err := json.Marshal(obj["spec"])
			Expect(err).NotTo(HaveOccurred())
			files["fixtures/"+base+".yaml"] = fmt.Sprintf("apiVersion: policy.servicegraph.io/v1alpha1\nkind: ServiceGraph\nmetadata: {name: %s, namespace: %s}\nspec: %s\n", f.name, f.namespace, spec)

			// Each spec change adds a generation: the graph starts with a smaller spec so that
			// Argo CD's sync of the fixture's spec brings it to the fixture's generation.
			kubectl("create", "namespace", f.namespace)
			for g := int64(1); g < f.generation; g++ {
				earlier := map[string]any{"services": []any{map[string]any{"name": "earlier"}}, "edges": []any{fmt.Sprintf("earlier->api:%d", g)}}
				data, err := json.Marshal(map[string]any{"apiVersion": "policy.servicegraph.io/v1alpha1", "kind": "ServiceGraph",
					"metadata": map[string]any{"name": f.name, "namespace": f.namespace}, "spec": earlier})
				Expect(err).NotTo(HaveOccurred())
				applyYAML(string(data), "--server-side", "--field-manager=fixture-history")
			}
		}
		commit("every health fixture's spec", files)
		notSelfHealing := false
		applyYAML(applicationYAML("fixtures", "fixtures", "default", appOptions{selfHeal: &notSelfHealing}))
		eventuallyApp("fixtures", 60*time.Second, func(g Gomega, app *application) {
			expectSynced(g, app, "")
			g.Expect(app.Status.Resources).To(HaveLen(len(fixtures)))
			for _, f := range fixtures {
				sg, err := getSG(f.namespace, f.name)
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(sg.Generation).To(Equal(f.generation), "%s/%s", f.namespace, f.name)
			}
		})

		By("writing each fixture's status as captured from the operator")
		for _, f := range fixtures {
			if f.status == nil {
				continue
			}
			patch, err := json.Marshal(map[string]any{"status": f.status})
			Expect(err).NotTo(HaveOccurred())
			kubectl("patch", "servicegraph", f.name, "-n", f.namespace, "--subresource=status", "--type=merge", "-p", string(patch))
		}
		refresh("fixtures")
		eventuallyApp("fixtures", 30*time.Second, func(g Gomega, app *application) {
			for _, f := range fixtures {
				expectResourceHealth(g, app, f.namespace, f.name, f.want.Status, f.want.Message)
			}
		})
	})
}
