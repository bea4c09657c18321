package traffic

import (
	"maps"
	"slices"
	"strings"
)

// Expected is what discover must propose for one flow, or the flows alike it merges with.
type Expected struct {
	ProposedEdge
	Ambiguous, Plaintext, HTTP bool
	// PerMinute adds up the flows' rates.
	PerMinute float64
}

// ExpectedEdges are the edges discover must propose for a namespace: one per caller, destination
// and the ports it can tell (one Service's ports merge, Telemetry's destination_port splits them),
// named as the graph names them (a workload by its name, a caller known only by its principal as
// its namespace's external peer), with the paths and methods the Telemetry tags carry. Callers
// nobody can name are TODOs, not edges.
func (s *Scenario) ExpectedEdges(ns string) map[string]*Expected {
	out := map[string]*Expected{}
	for _, f := range s.Flows {
		if f.Caller == Unknown || f.To.Namespace != ns && (f.From == nil || f.From.Namespace != ns) {
			continue
		}
		ports, ambiguous := s.Candidates(f)
		e := ProposedEdge{From: CallerName(f), To: f.To.Name, Ports: ports}
		x, ok := out[e.Key()]
		if !ok {
			x = &Expected{ProposedEdge: e}
			out[e.Key()] = x
		}
		x.Ambiguous = x.Ambiguous || ambiguous
		x.Plaintext = x.Plaintext || f.Caller == PlainText
		x.HTTP = x.HTTP || f.HTTP()
		x.PerMinute += f.PerMinute
		if s.Telemetry[f.To.Namespace] && f.HTTP() {
			for _, p := range f.Paths {
				p, _, _ = strings.Cut(p, "?")
				x.Paths = union(x.Paths, p)
			}
			x.Methods = union(x.Methods, f.Method)
		}
	}
	return out
}

// CallerName is the name discover gives a flow's caller in a graph.
func CallerName(f Flow) string {
	switch f.Caller {
	case PrincipalOnly:
		return "ns-" + strings.Split(f.Principal, "/")[2]
	case Unknown:
		return unknown
	}
	return f.From.Name
}

// Namespaces are the namespaces a flow touches.
func (f Flow) Namespaces() []string {
	out := []string{f.To.Namespace}
	if f.From != nil {
		out = append(out, f.From.Namespace)
	}
	return out
}

func union(set []string, v string) []string {
	m := map[string]bool{v: true}
	for _, s := range set {
		m[s] = true
	}
	return slices.Sorted(maps.Keys(m))
}
