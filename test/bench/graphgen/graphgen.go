// Package graphgen generates large ServiceGraphs deterministically, for benchmarks and scale
// tests: the same arguments always give the same graph, byte for byte.
package graphgen

import (
	"fmt"
	"math/rand/v2"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
)

// EdgesPerService is how many distinct services each service calls (fewer in a graph too small
// to have that many others).
const EdgesPerService = 10

// ServiceName is the name of the i-th service: zero-padded so that names sort like indexes.
func ServiceName(i int) string { return fmt.Sprintf("svc-%05d", i) }

// Graph returns a ServiceGraph with n services, each calling EdgesPerService others picked at
// random by a generator seeded with seed. Every service listens on one port of its own
// (8080 + index mod 8), and every third one speaks HTTP: the edges to it carry the path /api/*,
// which the AuthorizationPolicies enforce. So the graph exercises both kinds of Istio rule and
// every edge to one destination port agrees on its protocol, as the compiler requires.
func Graph(name, namespace string, n int, seed uint64) *v1alpha1.ServiceGraph {
	sg := &v1alpha1.ServiceGraph{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "ServiceGraph"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
	}
	for i := range n {
		sg.Spec.Services = append(sg.Spec.Services, v1alpha1.Service{Name: ServiceName(i)})
	}
	// The stream depends on n too, so a graph is not a prefix of a larger one.
	rng := rand.New(rand.NewPCG(seed, uint64(n)))
	for from := range n {
		for _, to := range callees(rng, from, n) {
			sg.Spec.Edges = append(sg.Spec.Edges, Edge(from, to))
		}
	}
	return sg
}

// callees picks min(EdgesPerService, n-1) distinct services other than from. Rejection sampling
// ends quickly because at most EdgesPerService of n-1 candidates are ever taken.
func callees(rng *rand.Rand, from, n int) []int {
	want := min(EdgesPerService, n-1)
	picked := make([]int, 0, want)
	for len(picked) < want {
		to := rng.IntN(n)
		if to != from && !slices.Contains(picked, to) {
			picked = append(picked, to)
		}
	}
	return picked
}

// Edge is the compact edge from service index from to service index to, on to's port.
func Edge(from, to int) string {
	e := fmt.Sprintf("%s->%s:%d", ServiceName(from), ServiceName(to), 8080+to%8)
	if to%3 == 0 {
		e += "/api/*"
	}
	return e
}

// NewEdge returns an edge of the same shape that sg does not have yet: from the first service to
// the first service at or after the middle that it does not call. It fails when that service
// already calls every other one.
func NewEdge(sg *v1alpha1.ServiceGraph) (string, error) {
	n := len(sg.Spec.Services)
	for k := range n {
		to := (n/2 + k) % n
		if to == 0 {
			continue
		}
		if e := Edge(0, to); !slices.Contains(sg.Spec.Edges, e) {
			return e, nil
		}
	}
	return "", fmt.Errorf("%s already calls every other service", ServiceName(0))
}
