package traffic

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/cli"
	"github.com/servicegraph/servicegraph-operator/internal/graph"
)

// Run runs the servicegraph command line in process, as the binary would.
func Run(args ...string) (stdout, stderr string, code int) {
	var out, errs bytes.Buffer
	code = cli.Main(args, strings.NewReader(""), &out, &errs)
	return out.String(), errs.String(), code
}

// Proposal is one graph discover printed: the graph, and its edges with their evidence comments.
type Proposal struct {
	Text  string
	Graph *v1alpha1.ServiceGraph
	Edges []ProposedEdge
	TODO  []string
}

// ProposedEdge is an edge or connection of a proposal and the comment above it.
type ProposedEdge struct {
	From, To       string
	Ports          []int32
	Paths, Methods []string
	Evidence       string
}

// Key is "FROM->TO:PORT,PORT".
func (e ProposedEdge) Key() string {
	ports := make([]string, len(e.Ports))
	for i, p := range e.Ports {
		ports[i] = strconv.Itoa(int(p))
	}
	return e.From + "->" + e.To + ":" + strings.Join(ports, ",")
}

var (
	evidenceCount  = regexp.MustCompile(`^([0-9.]+) (connections|requests); `)
	evidenceWindow = regexp.MustCompile(`first (\S+), last (\S+);`)
)

// Count is the evidence's count and what it counts.
func (e ProposedEdge) Count() (float64, string) {
	m := evidenceCount.FindStringSubmatch(e.Evidence)
	if m == nil {
		return 0, ""
	}
	n, _ := strconv.ParseFloat(m[1], 64)
	return n, m[2]
}

// Window is when the evidence says the edge was first and last seen.
func (e ProposedEdge) Window() (first, last time.Time, err error) {
	m := evidenceWindow.FindStringSubmatch(e.Evidence)
	if m == nil {
		return first, last, fmt.Errorf("no first and last seen in %q", e.Evidence)
	}
	if first, err = time.Parse(time.RFC3339, m[1]); err == nil {
		last, err = time.Parse(time.RFC3339, m[2])
	}
	return first, last, err
}

// ParseProposals reads discover's output: graphs separated by "---" lines, each read strictly as
// a ServiceGraph and line by line for the comments above its edges and its TODOs.
func ParseProposals(out string) ([]*Proposal, error) {
	var ps []*Proposal
	for _, text := range strings.Split(out, "\n---\n") {
		p := &Proposal{Text: text, Graph: &v1alpha1.ServiceGraph{}}
		if err := yaml.UnmarshalStrict([]byte(text), p.Graph); err != nil {
			return nil, fmt.Errorf("%w\n%s", err, text)
		}
		if err := p.readItems(); err != nil {
			return nil, fmt.Errorf("%w\n%s", err, text)
		}
		ps = append(ps, p)
	}
	return ps, nil
}

// readItems walks spec.edges and spec.connections: each item with the comment above it.
func (p *Proposal) readItems() error {
	lines := strings.Split(p.Text, "\n")
	section, evidence := "", ""
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		switch {
		case strings.HasPrefix(line, "  # TODO: "):
			p.TODO = append(p.TODO, strings.TrimPrefix(line, "  # TODO: "))
		case strings.HasPrefix(line, "  # "):
			evidence = strings.TrimPrefix(line, "  # ")
		case len(line) > 2 && line[2] != ' ' && line[2] != '-' && strings.HasSuffix(line, ":"):
			section, evidence = strings.TrimSpace(strings.TrimSuffix(line, ":")), ""
		case strings.HasPrefix(line, "  - ") && section == "edges":
			var s string
			if err := yaml.Unmarshal([]byte(strings.TrimPrefix(line, "  - ")), &s); err != nil {
				return err
			}
			e, err := graph.ParseEdge(s)
			if err != nil {
				return err
			}
			pe := ProposedEdge{From: e.From, To: e.To, Paths: e.Paths, Evidence: evidence}
			for _, port := range e.Ports {
				pe.Ports = append(pe.Ports, port.Port.IntVal)
			}
			p.Edges = append(p.Edges, pe)
			evidence = ""
		case strings.HasPrefix(line, "  - ") && section == "connections":
			block := []string{strings.TrimPrefix(line, "  - ")}
			for i+1 < len(lines) && strings.HasPrefix(lines[i+1], "    ") {
				i++
				block = append(block, strings.TrimPrefix(lines[i], "    "))
			}
			var c v1alpha1.Connection
			if err := yaml.UnmarshalStrict([]byte(strings.Join(block, "\n")), &c); err != nil {
				return err
			}
			pe := ProposedEdge{From: c.From, To: c.To, Paths: c.Paths, Methods: c.Methods, Evidence: evidence}
			for _, port := range c.Ports {
				pe.Ports = append(pe.Ports, port.Port.IntVal)
			}
			p.Edges = append(p.Edges, pe)
			evidence = ""
		}
	}
	return nil
}

// WithoutEdges is the graph without its edges and connections from one service to another.
func WithoutEdges(sg *v1alpha1.ServiceGraph, from, to string) *v1alpha1.ServiceGraph {
	out := sg.DeepCopy()
	out.Spec.Edges = slices.DeleteFunc(out.Spec.Edges, func(s string) bool {
		e, err := graph.ParseEdge(s)
		return err == nil && e.From == from && e.To == to
	})
	out.Spec.Connections = slices.DeleteFunc(out.Spec.Connections, func(c v1alpha1.Connection) bool {
		return lastPart(c.From) == from && lastPart(c.To) == to
	})
	return out
}

func lastPart(s string) string { return s[strings.LastIndex(s, "/")+1:] }

// AuditReport is audit's JSON output.
type AuditReport struct {
	Covered   bool      `json:"covered"`
	Observed  int       `json:"observed"`
	Allowed   int       `json:"allowed"`
	Refused   []Finding `json:"refused"`
	Plaintext []Finding `json:"plaintext"`
	Undecided []Finding `json:"undecided"`
	Unused    []string  `json:"unused"`
}

// Finding is one connection of the report.
type Finding struct {
	Connection string  `json:"connection"`
	Count      float64 `json:"count"`
	LastSeen   string  `json:"lastSeen"`
	Security   string  `json:"security"`
	Layer      string  `json:"layer"`
	By         string  `json:"by"`
	Detail     string  `json:"detail"`
}

// ParseAudit reads audit's JSON output.
func ParseAudit(out string) (*AuditReport, error) {
	r := &AuditReport{}
	if err := json.Unmarshal([]byte(out), r); err != nil {
		return nil, fmt.Errorf("%w\n%s", err, out)
	}
	return r, nil
}
