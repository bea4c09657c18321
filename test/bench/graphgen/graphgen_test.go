package graphgen

import (
	"slices"
	"testing"

	"github.com/servicegraph/servicegraph-operator/internal/compiler"
)

func TestGraphIsDeterministicAndCompiles(t *testing.T) {
	for _, n := range []int{2, 5, 11, 100} {
		a, b := Graph("g", "ns", n, 1), Graph("g", "ns", n, 1)
		if !slices.Equal(a.Spec.Edges, b.Spec.Edges) {
			t.Fatalf("%d services: two calls gave different edges", n)
		}
		if want := n * min(EdgesPerService, n-1); len(a.Spec.Edges) != want {
			t.Errorf("%d services: %d edges, want %d", n, len(a.Spec.Edges), want)
		}
		res, err := compiler.Compile(a, compiler.DefaultOptions(), compiler.Facts{})
		if err != nil {
			t.Fatalf("%d services: %v", n, err)
		}
		if res.Edges != len(a.Spec.Edges) {
			t.Errorf("%d services: compiled %d edges, want %d (no duplicates)", n, res.Edges, len(a.Spec.Edges))
		}
	}
	if slices.Equal(Graph("g", "ns", 100, 1).Spec.Edges, Graph("g", "ns", 100, 2).Spec.Edges) {
		t.Error("the seed does not change the graph")
	}
}

func TestNewEdge(t *testing.T) {
	sg := Graph("g", "ns", 50, 1)
	e, err := NewEdge(sg)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(sg.Spec.Edges, e) {
		t.Fatalf("%q is already in the graph", e)
	}
	sg.Spec.Edges = append(sg.Spec.Edges, e)
	if _, err := compiler.Compile(sg, compiler.DefaultOptions(), compiler.Facts{}); err != nil {
		t.Fatalf("the graph with %q does not compile: %v", e, err)
	}
	full := Graph("g", "ns", 3, 1) // with 3 services each calls both others
	if _, err := NewEdge(full); err == nil {
		t.Error("NewEdge found an edge in a complete graph")
	}
}
