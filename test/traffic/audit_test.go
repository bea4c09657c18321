package traffic_test

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/graph"
	"github.com/servicegraph/servicegraph-operator/test/traffic"
)

// checkServices: every service of a proposal is a workload of the scenario with its pods' labels
// and ServiceAccount (declared in its own namespace when a peer), every external peer a namespace
// named by a caller's principal.
func checkServices(t *testing.T, sc *traffic.Scenario, p *traffic.Proposal) {
	t.Helper()
	g, err := graph.Build(p.Graph)
	if err != nil {
		t.Fatalf("%v\n%s", err, p.Text)
	}
	for _, s := range g.Services {
		if s.External != nil {
			tally["external peers"]++
			if ns, ok := strings.CutPrefix(s.Name, "ns-"); !ok || !slices.Equal(s.External.Namespaces, []string{ns}) {
				t.Errorf("%s: external peer %s: %+v", p.Graph.Namespace, s.Name, s.External)
			}
			continue
		}
		i := slices.IndexFunc(sc.Workloads, func(w *traffic.Workload) bool { return w.Name == s.Name })
		if i < 0 {
			t.Errorf("%s: service %s runs no workload", p.Graph.Namespace, s.Name)
			continue
		}
		w := sc.Workloads[i]
		if s.Namespace != w.Namespace || !maps.Equal(s.Labels, w.Labels) || s.ServiceAccount != w.ServiceAccount {
			t.Errorf("%s: service %s in %s selects %v as %s, want %s's %v as %s", p.Graph.Namespace, s.Name, s.Namespace, s.Labels, s.ServiceAccount,
				w.Key(), w.Labels, w.ServiceAccount)
		}
	}
}

// audit runs audit with JSON output on the graphs and manifests given.
func audit(t *testing.T, url string, files ...string) (*traffic.AuditReport, int) {
	t.Helper()
	args := []string{"audit", "--prometheus", url, "--since", since, "-o", "json"}
	for _, f := range files {
		args = append(args, "-f", f)
	}
	out, stderr, code := traffic.Run(args...)
	if code != 0 && code != 1 {
		t.Fatalf("audit exited %d: %s\n%s", code, stderr, out)
	}
	r, err := traffic.ParseAudit(out)
	if err != nil {
		t.Fatal(err)
	}
	if r.Observed != r.Allowed+len(r.Refused)+len(r.Plaintext)+len(r.Undecided) {
		t.Errorf("observed %d, allowed %d, refused %d, plain text %d, undecided %d", r.Observed, r.Allowed, len(r.Refused), len(r.Plaintext), len(r.Undecided))
	}
	return r, code
}

// checkAuditOfProposal: the proposal lets every observed connection through and uses every edge
// it declares, but for the callers the issue wants flagged: a plain-text caller is refused by
// STRICT mutual TLS (listed as plain text), a caller nobody can name is refused (it was a TODO).
func checkAuditOfProposal(t *testing.T, url string, sc *traffic.Scenario, c *checked) {
	t.Helper()
	r, code := audit(t, url, c.proposed, c.manifests)
	var refused, plaintext []string
	for _, f := range sc.Flows {
		switch f.Caller {
		case traffic.Unknown:
			refused = append(refused, "unknown -> "+f.To.Key()+" TCP/")
		case traffic.PlainText:
			plaintext = append(plaintext, f.From.Key()+" -> "+f.To.Key()+" TCP/")
		}
	}
	expectFindings(t, "refused", r.Refused, refused)
	expectFindings(t, "plain text", r.Plaintext, plaintext)
	tally["plain-text callers flagged"] += len(r.Plaintext)
	for _, f := range r.Plaintext {
		if f.Layer != "mTLS" || f.Security != "none" {
			t.Errorf("plain text %s: layer %s, security %q", f.Connection, f.Layer, f.Security)
		}
	}
	if len(r.Undecided) > 0 || len(r.Unused) > 0 {
		t.Errorf("undecided %v, unused %v", r.Undecided, r.Unused)
	}
	if want := map[bool]int{true: 0, false: 1}[len(refused)+len(plaintext) == 0]; code != want || r.Covered != (want == 0) {
		t.Errorf("audit of the proposal exited %d (covered %v), want %d", code, r.Covered, want)
	}
}

// checkRemovedEdge takes a meshed flow's edges out of every proposal: audit must exit 1 and refuse
// exactly that caller's connections to that destination (and the unknown callers, as before).
func checkRemovedEdge(t *testing.T, url string, sc *traffic.Scenario, proposals []*traffic.Proposal, c *checked, rng *rand.Rand) {
	t.Helper()
	var meshed []traffic.Flow
	for _, f := range sc.Flows {
		if f.Caller == traffic.Meshed {
			meshed = append(meshed, f)
		}
	}
	rng.Shuffle(len(meshed), func(i, j int) { meshed[i], meshed[j] = meshed[j], meshed[i] })
	var gone traffic.Flow
	var graphs []*v1alpha1.ServiceGraph
	for _, f := range meshed {
		graphs = nil
		for _, p := range proposals {
			g := traffic.WithoutEdges(p.Graph, f.From.Name, f.To.Name)
			if len(g.Spec.Edges)+len(g.Spec.Connections) == 0 {
				break // a graph needs an edge: remove another
			}
			graphs = append(graphs, g)
		}
		if len(graphs) == len(proposals) {
			gone = f
			break
		}
	}
	if gone.From == nil {
		t.Logf("no edge can go without leaving a graph empty")
		return
	}
	file := filepath.Join(filepath.Dir(c.proposed), "removed.yaml")
	write(t, file, graphYAML(t, graphs))
	r, code := audit(t, url, file, c.manifests)
	tally["edges removed"]++
	prefix := gone.From.Key() + " -> " + gone.To.Key() + " TCP/"
	var named bool
	for _, f := range r.Refused {
		named = named || strings.HasPrefix(f.Connection, prefix)
		if !strings.HasPrefix(f.Connection, prefix) && !strings.HasPrefix(f.Connection, "unknown -> ") {
			t.Errorf("without %s->%s, %s is refused too (%s: %s)", gone.From.Name, gone.To.Name, f.Connection, f.Layer, f.By)
		}
	}
	if code != 1 || !named {
		t.Errorf("without %s->%s audit exited %d, refused %v", gone.From.Name, gone.To.Name, code, r.Refused)
	}
}

// checkAuditOfWorld audits the world's own graphs, an oracle written before any traffic: they
// allow every meshed flow (the series come from their edges) but an HTTP flow without its path
// into an edge with one, which audit cannot decide, and a flow into a Service of several ports
// whose caller may use only some (audit asks every port Istio may have meant); they refuse every
// added caller; the edges unused are those no observed flow matches (UDP and SCTP ones among
// them: Istio sees none).
func checkAuditOfWorld(t *testing.T, url string, sc *traffic.Scenario, c *checked, rng *rand.Rand) {
	t.Helper()
	file := filepath.Join(filepath.Dir(c.proposed), "world.yaml")
	graphs := sc.World.Graphs(rng)
	write(t, file, graphYAML(t, graphs))
	r, code := audit(t, url, file, c.manifests)
	groups := map[string][]traffic.Flow{}
	var keys []string
	for _, f := range sc.Flows {
		k := sc.MergeKey(f)
		if groups[k] == nil {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], f)
	}
	var refused, undecided []string
	used := map[[2]string]bool{}
	for _, k := range keys {
		f, http := groups[k][0], slices.ContainsFunc(groups[k], traffic.Flow.HTTP)
		from := "unknown"
		switch f.Caller {
		case traffic.PrincipalOnly:
			from = f.Principal
		case traffic.Meshed, traffic.PlainText:
			from = f.From.Key()
		}
		prefix := from + " -> " + f.To.Key() + " TCP/"
		switch candidates, _ := sc.Candidates(f); {
		case f.Caller != traffic.Meshed:
			refused = append(refused, prefix)
		case slices.ContainsFunc(candidates, func(p int32) bool { return !slices.Contains(sc.AllowedPorts(f.From, f.To), p) }):
			// Istio did not say which of its Service's ports the flow used: audit asks them all,
			// and the edge allows some only.
			refused = append(refused, prefix)
		case http && !sc.Telemetry[f.To.Namespace] && pathEdge(sc, f):
			undecided = append(undecided, prefix)
		}
		// An edge a flow matches is in use whatever the verdict (a refused candidate port, a
		// path the source did not see): only the world's own callers match its edges.
		if f.Caller == traffic.Meshed {
			used[[2]string{f.From.Name, f.To.Name}] = true
		}
	}
	expectFindings(t, "refused by the world's graphs", r.Refused, refused)
	expectFindings(t, "undecided by the world's graphs", r.Undecided, undecided)
	tally["refused by the world's graphs"] += len(r.Refused)
	tally["undecided by the world's graphs"] += len(r.Undecided)
	tally["unused in the world's graphs"] += len(r.Unused)
	if len(r.Plaintext) > 0 {
		t.Errorf("plain text %v: the world's graphs do not declare the plain-text caller, layer 4 refuses it first", r.Plaintext)
	}
	var unused []string
	for _, g := range graphs {
		built, err := graph.Build(g)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range built.Edges {
			if !used[[2]string{e.From, e.To}] {
				unused = append(unused, fmt.Sprintf("%s: %s->%s", g.Namespace, e.From, e.To))
			}
		}
	}
	var gotUnused []string
	for _, u := range r.Unused {
		ns, edge, _ := strings.Cut(u, ": ")
		from, rest, _ := strings.Cut(edge, "->")
		to, _, _ := strings.Cut(rest, ":")
		gotUnused = append(gotUnused, fmt.Sprintf("%s: %s->%s", ns, lastName(from), lastName(to)))
	}
	slices.Sort(unused)
	slices.Sort(gotUnused)
	if !slices.Equal(unused, gotUnused) {
		t.Errorf("unused edges of the world's graphs\n%v\nwant\n%v\n(report %v)", gotUnused, unused, r.Unused)
	}
	if want := map[bool]int{true: 0, false: 1}[len(refused) == 0]; code != want {
		t.Errorf("audit of the world's graphs exited %d, want %d", code, want)
	}
}

// pathEdge tells whether the world's edge a flow comes from restricts paths.
func pathEdge(sc *traffic.Scenario, f traffic.Flow) bool {
	for _, e := range sc.World.Edges {
		if sc.Workloads[e.From] == f.From && sc.Workloads[e.To] == f.To {
			return e.Path != ""
		}
	}
	return false
}

func lastName(s string) string { return s[strings.LastIndex(s, "/")+1:] }

// expectFindings wants one finding per prefix, in any order.
func expectFindings(t *testing.T, what string, got []traffic.Finding, prefixes []string) {
	t.Helper()
	left := slices.Clone(prefixes)
	for _, f := range got {
		i := slices.IndexFunc(left, func(p string) bool { return strings.HasPrefix(f.Connection, p) })
		if i < 0 {
			t.Errorf("%s: %s (%s: %s %s) not expected", what, f.Connection, f.Layer, f.By, f.Detail)
			continue
		}
		left = slices.Delete(left, i, i+1)
	}
	if len(left) > 0 {
		t.Errorf("%s: missing %v", what, left)
	}
}

func graphYAML(t *testing.T, graphs []*v1alpha1.ServiceGraph) string {
	t.Helper()
	var docs []string
	for _, g := range graphs {
		g.APIVersion, g.Kind = v1alpha1.GroupVersion.String(), "ServiceGraph"
		data, err := yaml.Marshal(g)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, string(data))
	}
	return strings.Join(docs, "---\n")
}
