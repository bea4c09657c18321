package compiler

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/test/world"
	"github.com/servicegraph/servicegraph-operator/test/world/analysis"
)

// These tests check the compiled NetworkPolicies with an analyzer this project did not write
// (np-guard/netpol-analyzer): over pods for every service, kube-dns and istiod, the connections it
// finds allowed must be exactly the graph's edges plus DNS (and istiod when Istio is on).

// analyze compiles the graphs and returns the connections the analyzer allows that involve a
// graph's namespace (kube-system and istio-system have no policy, so they reach everything).
func analyze(t *testing.T, w *world.World, graphs []*v1alpha1.ServiceGraph) world.Connections {
	t.Helper()
	facts := istioOff()
	if w.Istio {
		facts = Facts{}
	}
	objs := w.Objects()
	for _, sg := range graphs {
		for _, o := range mustCompile(t, sg, DefaultOptions(), facts).Objects() {
			if _, ok := o.(*networkingv1.NetworkPolicy); ok {
				objs = append(objs, o)
			}
		}
	}
	got, err := analysis.Analyze(objs, w.Namespaces)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func checkWorld(t *testing.T, w *world.World, graphs []*v1alpha1.ServiceGraph) {
	t.Helper()
	want, got := w.Expected().Sorted(), analyze(t, w, graphs).Sorted()
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("analyzer's allowed connections differ from the graph (-graph +analyzer):\n%s", diff)
	}
}

func TestAnalyzerSeedScenario(t *testing.T) {
	sg := readGraph(t, "testdata/input/seed.yaml")
	for _, istio := range []bool{true, false} {
		t.Run(fmt.Sprintf("istio=%v", istio), func(t *testing.T) {
			w := &world.World{
				Namespaces: []string{"shop"},
				Services:   []world.Service{{Name: "web", Namespace: "shop"}, {Name: "api", Namespace: "shop"}, {Name: "database", Namespace: "shop"}},
				Edges: []world.Edge{
					{From: 0, To: 1, Ports: []v1alpha1.ConnectionPort{{Port: intstr.FromInt32(8080)}}},
					{From: 1, To: 2, Ports: []v1alpha1.ConnectionPort{{Port: intstr.FromInt32(5432)}}},
				},
				AllowDNS: map[string]bool{"shop": true},
				Istio:    istio,
			}
			checkWorld(t, w, []*v1alpha1.ServiceGraph{sg})
		})
	}
}

// randomWorldCount graphs sets are checked; each has up to 30 services in up to three namespaces.
const randomWorldCount = 40

func TestAnalyzerRandomGraphs(t *testing.T) {
	rng := rand.New(rand.NewPCG(2026, 3))
	for i := range randomWorldCount {
		istio := rng.IntN(2) == 0
		w := world.Random(rng, world.Options{MaxServices: 30, Namespaces: 3})
		w.Istio = istio
		graphs := w.Graphs(rng)
		t.Run(fmt.Sprintf("world-%02d-%dsvc-%dedges-%dns", i, len(w.Services), len(w.Edges), len(graphs)), func(t *testing.T) {
			checkWorld(t, w, graphs)
		})
	}
}
