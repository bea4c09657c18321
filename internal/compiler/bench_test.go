package compiler

import (
	"fmt"
	"testing"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
)

// benchGraph has n services, each calling the next ten (fewer when n <= 10) on a port of its own,
// every third edge with an HTTP path.
func benchGraph(n int) *v1alpha1.ServiceGraph {
	services := make([]string, n)
	for i := range services {
		services[i] = fmt.Sprintf("service-%05d", i)
	}
	var edges []string
	for i := range n {
		for k := 1; k <= min(10, n-1); k++ {
			e := fmt.Sprintf("%s->%s:%d", services[i], services[(i+k)%n], 8000+k)
			if k%3 == 0 {
				e += "/api/*"
			}
			edges = append(edges, e)
		}
	}
	return newGraph("bench", services, edges...)
}

func BenchmarkCompile(b *testing.B) {
	for _, n := range []int{10, 100, 1000, 5000} {
		sg := benchGraph(n)
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Compile(sg, DefaultOptions(), Facts{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// The benchmark's graphs must compile; checked at a small size in every test run.
func TestBenchGraphCompiles(t *testing.T) {
	res := mustCompile(t, benchGraph(12), DefaultOptions())
	if res.Edges != 120 {
		t.Errorf("%d edges, want 120", res.Edges)
	}
}
