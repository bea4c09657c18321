package outcome

import (
	"fmt"
	"slices"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/graph"
)

// Bounds of status.callers: a status must stay far below etcd's object size for a graph of
// thousands of edges, and describe output must stay readable.
const (
	maxCalledServices    = 100
	maxCallersPerService = 20
)

// Callers lists, per called service of the graph (by name), who may call it and on what, bounded:
// the services beyond maxCalledServices are counted, the callers of one service beyond
// maxCallersPerService summarised in a last entry.
func Callers(g *graph.Graph) ([]v1alpha1.ServiceCallers, int32) {
	from := map[string][]string{}
	for i := range g.Edges {
		e := &g.Edges[i]
		caller := e.From
		if e.FromNamespace != "" {
			caller = e.FromNamespace + "/" + e.From
		}
		from[e.To] = append(from[e.To], caller+" on "+e.Target())
	}
	called := make([]string, 0, len(from))
	for name := range from {
		called = append(called, name)
	}
	slices.Sort(called)
	omitted := int32(max(0, len(called)-maxCalledServices))
	called = called[:min(len(called), maxCalledServices)]
	var out []v1alpha1.ServiceCallers
	for _, name := range called {
		list := from[name]
		if len(list) > maxCallersPerService {
			list = append(list[:maxCallersPerService:maxCallersPerService], fmt.Sprintf("and %d more", len(list)-maxCallersPerService))
		}
		out = append(out, v1alpha1.ServiceCallers{Service: name, From: list})
	}
	return out, omitted
}
