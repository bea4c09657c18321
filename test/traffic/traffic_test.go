package traffic_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/servicegraph/servicegraph-operator/test/promtest"
	"github.com/servicegraph/servicegraph-operator/test/traffic"
	"github.com/servicegraph/servicegraph-operator/test/world"
)

// worlds is how many random worlds share the one Prometheus.
const worlds = 200

// tally counts the cases the worlds exercised.
var tally = map[string]int{}

// The series run from two and a half hours to half an hour ago: --since 4h holds them all,
// --since 20m none.
const since, tooRecent = "4h", "20m"

// TestDiscoverAndAudit backfills a real Prometheus with what Istio would report for random worlds'
// allowed connections (each world in namespaces of its own), then for each world runs discover
// and audit through the command line's entry point, as a user would, with the worlds' Deployments
// and Services as manifests.
func TestDiscoverAndAudit(t *testing.T) {
	if _, _, err := promtest.Binaries(); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	start, end := now.Add(-150*time.Minute), now.Add(-30*time.Minute)
	var scenarios []*traffic.Scenario
	var series []promtest.Series
	for i := range worlds {
		sc := scenario(i)
		scenarios = append(scenarios, sc)
		series = append(series, sc.Series(start, end)...)
	}
	began := time.Now()
	server, err := promtest.Start(promtest.Options{Backfill: series})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(server.Stop)
	t.Logf("%d series of %d worlds backfilled and served in %s", len(series), worlds, time.Since(began).Round(time.Millisecond))

	var first *checked
	for i, sc := range scenarios {
		for _, f := range sc.Flows {
			tally[f.Protocol+" flows"]++
			if sc.Waypoints[f.To.Namespace] != nil && f.Caller == traffic.Meshed {
				tally["flows through a waypoint"]++
			}
		}
		t.Run(fmt.Sprintf("world %d", i), func(t *testing.T) {
			c := checkWorld(t, server.URL, sc, start, end, rand.New(rand.NewPCG(uint64(i), 7)))
			if first == nil {
				first = c
			}
		})
	}
	if first == nil {
		t.Fatal("no world was checked")
	}
	// The random worlds must have exercised every case the issue names.
	t.Logf("tally: %v", tally)
	for _, k := range []string{"tcp flows", "http flows", "grpc flows", "flows through a waypoint", "ambiguous edges", "edges with paths", "edges with methods",
		"plain-text callers flagged", "external peers", "unknown callers as TODOs", "edges removed", "undecided by the world's graphs",
		"refused by the world's graphs", "unused in the world's graphs"} {
		if tally[k] == 0 {
			t.Errorf("no world had %s", k)
		}
	}
	t.Run("no data", func(t *testing.T) {
		expectNoData(t, "a window after the traffic", "discover", "--prometheus", server.URL, "-n", strings.Join(first.namespaces, ","), "--since", tooRecent, "-f", first.manifests)
		expectNoData(t, "a window after the traffic", "audit", "--prometheus", server.URL, "--since", tooRecent, "-f", first.proposed, "-f", first.manifests)
		expectNoData(t, "a namespace without series", "discover", "--prometheus", server.URL, "-n", "nobody-here", "--since", since, "-f", first.manifests)
		quiet := filepath.Join(t.TempDir(), "quiet.yaml")
		write(t, quiet, "apiVersion: policy.servicegraph.io/v1alpha1\nkind: ServiceGraph\nmetadata: {name: quiet, namespace: nobody-here}\nspec:\n  services: [{name: a}, {name: b}]\n  edges: [a->b:8080]\n")
		expectNoData(t, "a graph of a namespace without series", "audit", "--prometheus", server.URL, "--since", since, "-f", quiet)
	})
	t.Run("prometheus stopped", func(t *testing.T) {
		server.Stop()
		expectNoData(t, "Prometheus stopped", "discover", "--prometheus", server.URL, "-n", strings.Join(first.namespaces, ","), "--since", since, "-f", first.manifests)
		expectNoData(t, "Prometheus stopped", "audit", "--prometheus", server.URL, "--since", since, "-f", first.proposed, "-f", first.manifests)
	})
}

// scenario is the i-th random world, its namespaces prefixed so no two worlds share one, dressed
// with Istio; every third has a namespace behind an ambient waypoint, every odd one a plain-text
// caller and a caller known only by its principal, every fourth a caller outside the mesh.
func scenario(i int) *traffic.Scenario {
	rng := rand.New(rand.NewPCG(uint64(i), 2026))
	prefix := fmt.Sprintf("t%02d-", i)
	for {
		w := world.Random(rng, world.Options{MinServices: 3, MaxServices: 10, Namespaces: 3})
		rename(w, prefix)
		sc := traffic.NewScenario(w, rng)
		if !everyNamespaceSeen(sc) {
			continue // a namespace with UDP and SCTP edges only: nothing Istio sees there
		}
		if i%3 == 2 {
			sc.BehindWaypoint(w.Namespaces[rng.IntN(len(w.Namespaces))])
		}
		if i%2 == 1 {
			sc.AddCaller(traffic.PlainText, "", rng)
			sc.AddCaller(traffic.PrincipalOnly, prefix+"ingress", rng)
		}
		if i%4 == 3 {
			sc.AddCaller(traffic.Unknown, "", rng)
		}
		return sc
	}
}

// everyNamespaceSeen tells whether Istio sees traffic into or out of every namespace of the world:
// for one it does not, discover proposes a graph without services (a TODO), which cannot compile.
func everyNamespaceSeen(sc *traffic.Scenario) bool {
	seen := map[string]bool{}
	for _, f := range sc.Flows {
		for _, ns := range f.Namespaces() {
			seen[ns] = true
		}
	}
	return len(seen) == len(sc.World.Namespaces)
}

// rename prefixes a world's namespaces (and the team label that names one).
func rename(w *world.World, prefix string) {
	dns := map[string]bool{}
	for i, ns := range w.Namespaces {
		dns[prefix+ns] = w.AllowDNS[ns]
		w.Namespaces[i] = prefix + ns
	}
	w.AllowDNS = dns
	for i := range w.Services {
		w.Services[i].Namespace = prefix + w.Services[i].Namespace
		if w.Services[i].Selector["team"] != "" {
			w.Services[i].Selector["team"] = "t" + w.Services[i].Namespace
		}
	}
}

// checked is what a world's check leaves for the later subtests.
type checked struct {
	namespaces          []string
	manifests, proposed string
}

func checkWorld(t *testing.T, url string, sc *traffic.Scenario, start, end time.Time, rng *rand.Rand) *checked {
	dir := t.TempDir()
	c := &checked{namespaces: sc.World.Namespaces, manifests: filepath.Join(dir, "manifests.yaml"), proposed: filepath.Join(dir, "proposed.yaml")}
	manifests, err := traffic.YAML(sc.Manifests())
	if err != nil {
		t.Fatal(err)
	}
	write(t, c.manifests, string(manifests))

	out, stderr, code := traffic.Run("discover", "--prometheus", url, "-n", strings.Join(c.namespaces, ","), "--since", since, "-f", c.manifests)
	if code != 0 {
		t.Fatalf("discover exited %d: %s\n%s", code, stderr, out)
	}
	write(t, c.proposed, out)
	proposals, err := traffic.ParseProposals(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(proposals) != len(c.namespaces) {
		t.Fatalf("%d proposals for namespaces %v:\n%s", len(proposals), c.namespaces, out)
	}
	if _, stderr, code := traffic.Run("compile", "-f", c.proposed, "-f", c.manifests); code != 0 {
		t.Fatalf("the proposed graphs do not compile (%d): %s\n%s", code, stderr, out)
	}
	var edges []rated
	for i, p := range proposals {
		edges = append(edges, checkProposal(t, sc, p, c.namespaces[i], start, end)...)
	}
	checkCountOrder(t, edges)
	checkAuditOfProposal(t, url, sc, c)
	checkRemovedEdge(t, url, sc, proposals, c, rng)
	checkAuditOfWorld(t, url, sc, c, rng)
	return c
}

// rated is a proposed edge's count and the rate its flows were generated at.
type rated struct {
	key       string
	perMinute float64
	count     float64
}

// checkProposal holds one namespace's proposal to the flows: exactly the expected edges, each
// with its ports (AMBIGUOUS when several), paths and methods, plain text said, a positive count
// of the right kind and a first and last seen inside the data's window; the unknown callers as
// TODOs; every service with its workload's labels and ServiceAccount.
func checkProposal(t *testing.T, sc *traffic.Scenario, p *traffic.Proposal, ns string, start, end time.Time) []rated {
	t.Helper()
	if p.Graph.Namespace != ns {
		t.Fatalf("proposal for %q, want %q", p.Graph.Namespace, ns)
	}
	want := sc.ExpectedEdges(ns)
	got := map[string]traffic.ProposedEdge{}
	for _, e := range p.Edges {
		got[e.Key()] = e
	}
	if w, g := sortedKeys(want), sortedKeys(got); !slices.Equal(w, g) {
		t.Fatalf("%s: edges\n%v\nwant\n%v\n%s", ns, g, w, p.Text)
	}
	var out []rated
	for key, x := range want {
		e := got[key]
		if !slices.Equal(e.Paths, x.Paths) || !slices.Equal(e.Methods, x.Methods) {
			t.Errorf("%s: %s: paths %v methods %v, want %v %v", ns, key, e.Paths, e.Methods, x.Paths, x.Methods)
		}
		if strings.Contains(e.Evidence, "AMBIGUOUS") != x.Ambiguous || strings.Contains(e.Evidence, "PLAIN TEXT") != x.Plaintext {
			t.Errorf("%s: %s: evidence %q, want ambiguous %v, plain text %v", ns, key, e.Evidence, x.Ambiguous, x.Plaintext)
		}
		n, kind := e.Count()
		if wantKind := map[bool]string{true: "requests", false: "connections"}[x.HTTP]; n <= 0 || kind != wantKind {
			t.Errorf("%s: %s: counted %v %s, want some %s: %q", ns, key, n, kind, wantKind, e.Evidence)
		}
		first, last, err := e.Window()
		slack := 10 * time.Minute
		if err != nil || first.Before(start.Add(-slack)) || first.After(start.Add(slack)) || last.Before(end.Add(-slack)) || last.After(end.Add(slack)) || !first.Before(last) {
			t.Errorf("%s: %s: seen %s to %s (%v), want about %s to %s", ns, key, first, last, err, start.UTC(), end.UTC())
		}
		if !strings.HasSuffix(e.Evidence, "seen by prometheus") {
			t.Errorf("%s: %s: evidence %q", ns, key, e.Evidence)
		}
		out = append(out, rated{key: ns + ": " + key, perMinute: x.PerMinute, count: n})
		tally["edges"]++
		for what, yes := range map[string]bool{"ambiguous edges": x.Ambiguous, "edges with paths": len(x.Paths) > 0, "edges with methods": len(x.Methods) > 0} {
			if yes {
				tally[what]++
			}
		}
	}
	var todo []string
	for _, f := range sc.Flows {
		if f.Caller == traffic.Unknown && f.To.Namespace == ns {
			todo = append(todo, "unknown -> "+f.To.Key()+" TCP/")
		}
	}
	tally["unknown callers as TODOs"] += len(todo)
	if len(p.TODO) != len(todo) {
		t.Errorf("%s: TODOs %q, want one per unknown caller %q", ns, p.TODO, todo)
	}
	for i := range min(len(todo), len(p.TODO)) {
		if !strings.HasPrefix(p.TODO[i], todo[i]) || !strings.Contains(p.TODO[i], "an unknown caller") {
			t.Errorf("%s: TODO %q, want %q", ns, p.TODO[i], todo[i])
		}
	}
	checkServices(t, sc, p)
	return out
}

// checkCountOrder: increase() extrapolates, so counts are compared, never matched: an edge whose
// flows ran ten times as often must have counted more.
func checkCountOrder(t *testing.T, edges []rated) {
	t.Helper()
	for _, a := range edges {
		for _, b := range edges {
			if a.perMinute >= 10*b.perMinute && a.count <= b.count {
				t.Errorf("%s (%v/min) counted %v, not more than %s (%v/min) with %v", a.key, a.perMinute, a.count, b.key, b.perMinute, b.count)
			}
		}
	}
}

func expectNoData(t *testing.T, why string, args ...string) {
	t.Helper()
	out, stderr, code := traffic.Run(args...)
	if code != 2 {
		t.Errorf("%s: %s exited %d, want 2 (no data): %s\n%s", why, args[0], code, stderr, out)
	}
	if stderr == "" {
		t.Errorf("%s: %s said nothing on standard error", why, args[0])
	}
}

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
