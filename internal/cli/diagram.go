package cli

import (
	"bytes"
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/graph"
)

// diagramFormats draw a diagram.
var diagramFormats = map[string]func(*diagram) []byte{
	"mermaid": (*diagram).mermaid,
	"dot":     (*diagram).dot,
}

func runGraph(e *env, args []string) int {
	fs, in := newFlagSet(e, "graph", "-f FILE|DIR|- [-f ...] [--format mermaid|dot]",
		"Draws ServiceGraphs: services as nodes grouped by namespace, edges labelled with their ports\n"+
			"(protocols other than TCP in parentheses), methods and paths. Several graphs draw as one picture.\n"+
			"Invalid input prints every error and exits 1, printing nothing else.")
	format := fs.String("format", "mermaid", "mermaid (a flowchart, which GitHub renders) or dot (Graphviz)")
	if code, ok := parseFlags(e, fs, args, in); !ok {
		return code
	}
	draw := diagramFormats[*format]
	if draw == nil {
		return usageError(e, fs, "--format must be mermaid or dot, not %q", *format)
	}
	var graphs []*graph.Graph
	errs := eachGraph(in, e.stdin, func(sg *v1alpha1.ServiceGraph) error {
		g, err := graph.Build(sg)
		if err == nil {
			graphs = append(graphs, g)
		}
		return err
	})
	if len(errs) > 0 {
		printErrors(e, errs)
		return ExitInvalid
	}
	return write(e, draw(newDiagram(graphs)), ExitOK)
}

// node is a service, named by namespace and name: graphs of different namespaces that name the
// same peer draw it once.
type node struct{ namespace, name string }

// arrow is every edge from one service to another, one label per edge.
type arrow struct {
	from, to int // indexes into diagram.nodes
	labels   []string
}

// diagram is the union of graphs in a fixed order: nodes by namespace and name, arrows by their
// ends, labels sorted. Two graphs that both write a cross-namespace edge draw it once.
type diagram struct {
	nodes  []node
	arrows []arrow
}

func newDiagram(graphs []*graph.Graph) *diagram {
	labels := map[[2]node]map[string]bool{}
	ids := map[node]bool{}
	for _, g := range graphs {
		for _, s := range g.Services {
			ids[node{s.Namespace, s.Name}] = true
		}
		for i := range g.Edges {
			e := &g.Edges[i]
			from, _ := g.Service(e.From)
			ends := [2]node{{from.Namespace, from.Name}, {e.ToNamespace, e.To}}
			if labels[ends] == nil {
				labels[ends] = map[string]bool{}
			}
			labels[ends][edgeLabel(e)] = true
		}
	}
	byPlace := func(a, b node) int {
		return cmp.Or(strings.Compare(a.namespace, b.namespace), strings.Compare(a.name, b.name))
	}
	d := &diagram{nodes: slices.SortedFunc(maps.Keys(ids), byPlace)}
	index := func(n node) int { i, _ := slices.BinarySearchFunc(d.nodes, n, byPlace); return i }
	for ends, set := range labels {
		d.arrows = append(d.arrows, arrow{from: index(ends[0]), to: index(ends[1]), labels: slices.Sorted(maps.Keys(set))})
	}
	slices.SortFunc(d.arrows, func(a, b arrow) int { return cmp.Or(cmp.Compare(a.from, b.from), cmp.Compare(a.to, b.to)) })
	return d
}

// edgeLabel is "PORT[(PROTOCOL)],... [METHOD,...] [PATH,...]", the protocol only when not TCP.
func edgeLabel(e *graph.Edge) string {
	ports := make([]string, len(e.Ports))
	for i, p := range e.Ports {
		ports[i] = p.Port.String()
		if p.Protocol != v1alpha1.ProtocolTCP {
			ports[i] += "(" + string(p.Protocol) + ")"
		}
	}
	parts := []string{strings.Join(ports, ",")}
	for _, list := range [][]string{e.Methods, e.Paths} {
		if len(list) > 0 {
			parts = append(parts, strings.Join(list, ","))
		}
	}
	return strings.Join(parts, " ")
}

// namespaces returns each namespace with the indexes of its nodes, in order.
func (d *diagram) namespaces() [][]int {
	var groups [][]int
	for i, n := range d.nodes {
		if i == 0 || n.namespace != d.nodes[i-1].namespace {
			groups = append(groups, nil)
		}
		groups[len(groups)-1] = append(groups[len(groups)-1], i)
	}
	return groups
}

// mermaid draws a left-to-right flowchart. Node and subgraph IDs are numbers: service and
// namespace names may be Mermaid keywords ("end") or hold "-", which Mermaid reads as an arrow.
func (d *diagram) mermaid() []byte {
	var b bytes.Buffer
	b.WriteString("flowchart LR\n")
	for g, members := range d.namespaces() {
		fmt.Fprintf(&b, "  subgraph ns%d [%s]\n", g+1, d.nodes[members[0]].namespace)
		for _, i := range members {
			fmt.Fprintf(&b, "    s%d[%s]\n", i+1, d.nodes[i].name)
		}
		b.WriteString("  end\n")
	}
	for _, a := range d.arrows {
		labels := make([]string, len(a.labels))
		for i, l := range a.labels {
			labels[i] = mermaidEscaper.Replace(l)
		}
		fmt.Fprintf(&b, "  s%d -->|\"%s\"| s%d\n", a.from+1, strings.Join(labels, "<br>"), a.to+1)
	}
	return b.Bytes()
}

// mermaidEscaper writes what paths may hold and Mermaid would read as markup as entity codes.
var mermaidEscaper = strings.NewReplacer("#", "#35;", `"`, "#quot;", "<", "#lt;", ">", "#gt;")

// dot draws a Graphviz digraph with a cluster per namespace.
func (d *diagram) dot() []byte {
	var b bytes.Buffer
	b.WriteString("digraph servicegraph {\n  rankdir=LR;\n  node [shape=box];\n")
	for _, members := range d.namespaces() {
		ns := d.nodes[members[0]].namespace
		fmt.Fprintf(&b, "  subgraph %s {\n    label=%s;\n", strconv.Quote("cluster_"+ns), strconv.Quote(ns))
		for _, i := range members {
			fmt.Fprintf(&b, "    %s [label=%s];\n", d.dotID(i), strconv.Quote(d.nodes[i].name))
		}
		b.WriteString("  }\n")
	}
	for _, a := range d.arrows {
		fmt.Fprintf(&b, "  %s -> %s [label=%s];\n", d.dotID(a.from), d.dotID(a.to), strconv.Quote(strings.Join(a.labels, "\n")))
	}
	b.WriteString("}\n")
	return b.Bytes()
}

// dotID is "namespace/name", quoted: unique, and readable in the source.
func (d *diagram) dotID(i int) string {
	return strconv.Quote(d.nodes[i].namespace + "/" + d.nodes[i].name)
}
