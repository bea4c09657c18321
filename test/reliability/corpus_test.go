package reliability

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/test/testenv"
)

// waitStalled waits until the graph shop of ns is Stalled (and not Ready) at its current
// generation, for a reason naming the problem.
func waitStalled(ns, message, input string) {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		live := getGraph(ns, "shop")
		stalled, ready := condition(live, v1alpha1.ConditionStalled), condition(live, v1alpha1.ConditionReady)
		g.Expect(stalled.ObservedGeneration).To(Equal(live.Generation))
		g.Expect(stalled.Status).To(Equal(metav1.ConditionTrue))
		g.Expect(stalled.Reason).To(Equal(v1alpha1.ReasonInvalidSpec))
		g.Expect(stalled.Message).To(ContainSubstring(message))
		g.Expect(ready.Status).To(Equal(metav1.ConditionFalse))
	}, timeout, poll).Should(Succeed(), input)
}

// goodGraph is the last good state every bad input tries to replace.
const goodGraph = `apiVersion: policy.servicegraph.io/v1alpha1
kind: ServiceGraph
metadata:
  name: shop
spec:
  services: [{name: web}, {name: api}, {name: database}]
  edges: ["web->api:8080", "api->database:5432/data"]
`

// expectation is what must happen to one bad input, as listed in expected.yaml.
type expectation struct {
	// Outcome: Invalid (422, rejected by the CRD's schema or CEL rules), BadRequest (400, rejected
	// while decoding: duplicate or unknown fields under strict field validation),
	// RequestEntityTooLarge (413, over the API server's request size limit) or Stalled (accepted,
	// then reported Stalled=True by the operator).
	Outcome string `json:"outcome"`
	// Message must appear in the error or in the Stalled condition's message.
	Message string `json:"message"`
}

// applyGraph server-side applies a ServiceGraph manifest, as raw YAML, to the graph shop of ns,
// with strict field validation, as `kubectl apply --server-side` does.
func applyGraph(ns string, manifest []byte) error {
	target := &unstructured.Unstructured{}
	target.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind("ServiceGraph"))
	target.SetNamespace(ns)
	target.SetName("shop")
	return k8s.Patch(ctx, target, client.RawPatch(types.ApplyYAMLPatchType, manifest),
		client.FieldOwner("corpus"), client.ForceOwnership, client.FieldValidation("Strict"))
}

// inputMetadata starts the metadata of every input; updateGraph adds the resourceVersion after it.
const inputMetadata = "metadata:\n  name: shop\n"

// updateGraph replaces the graph shop of ns with a manifest, sent as raw YAML in a PUT at the live
// resourceVersion with strict field validation, as `kubectl replace` does. The bytes go as they
// are, so the API server sees what a person wrote, duplicate keys included.
func updateGraph(ns string, manifest []byte) error {
	GinkgoHelper()
	Expect(string(manifest)).To(ContainSubstring(inputMetadata))
	rv := getGraph(ns, "shop").ResourceVersion
	body := strings.Replace(string(manifest), inputMetadata, inputMetadata+"  resourceVersion: \""+rv+"\"\n", 1)
	return kube.CoreV1().RESTClient().Put().
		AbsPath("/apis", v1alpha1.GroupVersion.Group, v1alpha1.GroupVersion.Version, "namespaces", ns, "servicegraphs", "shop").
		Param("fieldValidation", "Strict").
		SetHeader("Content-Type", "application/yaml").
		Body([]byte(body)).
		Do(ctx).Error()
}

// generatedInputs are the bad inputs too big to commit, made here.
func generatedInputs() map[string][]byte {
	header := "apiVersion: policy.servicegraph.io/v1alpha1\nkind: ServiceGraph\n" + inputMetadata + "spec:\n"
	services := "  services: [{name: web}, {name: api}]\n"
	var b strings.Builder
	b.WriteString(header + "  services:\n")
	for i := range 2049 {
		fmt.Fprintf(&b, "  - {name: s%d}\n", i)
	}
	b.WriteString("  edges: [\"s0->s1:80\"]\n")
	tooManyServices := b.String()
	b.Reset()
	b.WriteString(header + services + "  edges:\n")
	for i := range 16385 {
		fmt.Fprintf(&b, "  - web->api:%d\n", 1+i)
	}
	tooManyEdges := b.String()
	b.Reset()
	b.WriteString(header + services + "  connections:\n")
	for i := range 4097 {
		fmt.Fprintf(&b, "  - {from: web, to: api, ports: [{port: %d}]}\n", 1+i)
	}
	tooManyConnections := b.String()
	return map[string][]byte{
		"generated: 2049 services":         []byte(tooManyServices),
		"generated: 16385 edges":           []byte(tooManyEdges),
		"generated: 4097 connections":      []byte(tooManyConnections),
		"generated: 1 MB edge":             []byte(header + services + "  edges: [\"web->api:8080/" + strings.Repeat("a", 1<<20) + "\"]\n"),
		"generated: 10 MB service name":    []byte(header + "  services: [{name: web}, {name: " + strings.Repeat("a", 10<<20) + "}]\n  edges: [\"web->api:8080\"]\n"),
		"generated: 100k-deep nested list": []byte(header + services + "  edges: " + strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + "\n"),
		"generated: 3000 selector labels":  []byte(header + "  services:\n  - {name: web}\n  - name: api\n    selector:\n      matchLabels: {" + labels(3000) + "}\n  edges: [\"web->api:8080\"]\n"),
	}
}

// labels writes n label pairs, each an invalid label value (over 63 characters).
func labels(n int) string {
	pairs := make([]string, n)
	for i := range pairs {
		pairs[i] = fmt.Sprintf("k%d: %s", i, strings.Repeat("v", 64))
	}
	return strings.Join(pairs, ", ")
}

var _ = Describe("A corpus of bad ServiceGraphs", func() {
	It("rejects each at admission or reports it Stalled, and never changes a generated object", func() {
		dir := filepath.Join(testenv.Root(), "test", "testdata", "invalid")
		table, err := os.ReadFile(filepath.Join(dir, "expected.yaml"))
		Expect(err).NotTo(HaveOccurred())
		expected := map[string]expectation{}
		Expect(yaml.UnmarshalStrict(table, &expected)).To(Succeed())
		inputs := generatedInputs()
		files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
		Expect(err).NotTo(HaveOccurred())
		committed := 0
		for _, f := range files {
			if filepath.Base(f) == "expected.yaml" {
				continue
			}
			inputs[filepath.Base(f)], err = os.ReadFile(f)
			Expect(err).NotTo(HaveOccurred())
			committed++
		}
		Expect(committed).To(BeNumerically(">=", 40))
		names := make([]string, 0, len(inputs))
		for name := range inputs {
			names = append(names, name)
		}
		slices.Sort(names)

		// The same inputs go to two graphs: one replaced by update (PUT, as kubectl replace and
		// client-side apply do) and one changed only by server-side apply (as kubectl apply
		// --server-side, Argo CD and Flux do). Each has only one writer of its spec, so a field left
		// out of an input is really left out.
		byUpdate, byApply := newNamespace("corpus-update"), newNamespace("corpus-apply")
		cleanupGraphs(byUpdate, byApply)
		startManager(managerOptions{namespaces: []string{byUpdate, byApply}})
		var good [2]map[v1alpha1.ObjectReference]string
		for i, ns := range []string{byUpdate, byApply} {
			Expect(applyGraph(ns, []byte(goodGraph))).To(Succeed())
			waitExactly(getGraph(ns, "shop"), timeout)
			good[i] = snapshot(ns)
		}

		for _, name := range names {
			want, ok := expected[name]
			Expect(ok).To(BeTrue(), "%s has no line in expected.yaml", name)
			delete(expected, name)
			before := [2]string{getGraph(byUpdate, "shop").ResourceVersion, getGraph(byApply, "shop").ResourceVersion}
			errUpdate := updateGraph(byUpdate, inputs[name])
			errApply := applyGraph(byApply, inputs[name])
			if want.Outcome == "Stalled" {
				Expect(errUpdate).NotTo(HaveOccurred(), name)
				Expect(errApply).NotTo(HaveOccurred(), name)
				waitStalled(byUpdate, want.Message, name)
				waitStalled(byApply, want.Message, name)
			} else {
				Expect(errUpdate).To(HaveOccurred(), name)
				Expect(string(apierrors.ReasonForError(errUpdate))).To(Equal(want.Outcome), "%s: %v", name, errUpdate)
				Expect(errUpdate.Error()).To(ContainSubstring(want.Message), name)
				// kube-apiserver answers a value of the wrong type in a server-side apply with a 500,
				// "failed to create typed patch object (...): .spec.mtls: expected string, got ...",
				// rather than a 422, hence any error here.
				Expect(errApply).To(HaveOccurred(), name)
				Expect(getGraph(byUpdate, "shop").ResourceVersion).To(Equal(before[0]), "%s was stored", name)
				Expect(getGraph(byApply, "shop").ResourceVersion).To(Equal(before[1]), "%s was stored", name)
			}
			Expect(snapshot(byUpdate)).To(Equal(good[0]), "%s changed a generated object", name)
			Expect(snapshot(byApply)).To(Equal(good[1]), "%s changed a generated object", name)
		}
		Expect(expected).To(BeEmpty(), "lines of expected.yaml without an input")

		// Fixing the spec converges as usual, without a write to a generated object.
		Expect(updateGraph(byUpdate, []byte(goodGraph))).To(Succeed())
		waitExactly(getGraph(byUpdate, "shop"), timeout)
		Expect(snapshot(byUpdate)).To(Equal(good[0]))
	})
})
