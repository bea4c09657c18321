package cilium

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"regexp/syntax"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cilium/cilium/pkg/crypto/certificatemanager"
	envoypolicy "github.com/cilium/cilium/pkg/envoy/policy"
	"github.com/cilium/cilium/pkg/policy/api"
	corev1 "k8s.io/api/core/v1"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/compiler"
	"github.com/servicegraph/servicegraph-operator/internal/eval"
	"github.com/servicegraph/servicegraph-operator/test/world"
)

// agreement counts what TestEvalAgreesWithCilium compared and what it left out, and why.
type agreement struct {
	cases, connections, allowed, http, httpRefused int
	byKind, allowedByKind                          map[string]int // "pod -> address outside" → connections compared, allowed
	skipped                                        map[string]int // why → connections (or cases) not compared
}

func (a *agreement) skip(why string) { a.skipped[why]++ }

// Why a case is not compared (each counted and logged).
const (
	skipEntity  = "endpoints: a reserved identity eval has no workload for (the node, remote nodes, health, ingress, unmanaged, init, world aggregates): the harness models allow-localhost, eval does not model Cilium's entities but the API server"
	skipFQDN    = "connections: toFQDNs to a name the source's own policies have no DNS rule for: eval assumes Cilium's DNS proxy did not see the lookup (ciliumPeer), the harness labels every name's address as if it had"
	skipRefused = "worlds: a random world the compiler refuses (its sibling edges write a port by name and by number): nothing generated to compare"
)

// TestEvalAgreesWithCilium holds internal/eval, which `servicegraph check` and `diff` stand on,
// to Cilium's own policy engine: for the same CiliumNetworkPolicies (every golden input and random
// world without a mesh, all graphs of a world in one eval.Cluster) and the same modelled cluster
// (its pods with the decoys, addresses and names outside the cluster, the API server), eval's
// verdict on the L4 layers of every connection from an endpoint to another on every port the
// table names (and one it does not, per protocol) must be Cilium's: allowed when Cilium's egress
// of the source and ingress of the destination both admit it. Where Cilium's proxy holds HTTP
// rules, requests the rules admit and refuse (as Cilium's Envoy rules read them) must be what
// eval lets through. Istio is off, so eval's mTLS and authorization steps are not compared.
func TestEvalAgreesWithCilium(t *testing.T) {
	a := newAgreement()
	files, err := filepath.Glob(filepath.Join(root, "internal", "compiler", "testdata", "input", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("golden inputs: %v", err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		gc := goldenCases[name]
		opts := compiler.DefaultOptions()
		if gc.opts != nil {
			gc.opts(&opts)
		}
		sg := readGraph(t, f)
		v := variants(opts, gc.facts)[0] // mesh=None
		t.Run("golden/"+name, func(t *testing.T) { agree(t, []*v1alpha1.ServiceGraph{sg}, v, a) })
	}
	rng := rand.New(rand.NewPCG(28, 2026)) // TestRandomWorldsAsCiliumResolvesThem's worlds
	for i := range randomWorlds {
		w := world.Random(rng, world.Options{MaxServices: 16, Namespaces: 3})
		if i%2 == 1 {
			addSiblings(rng, w)
		}
		graphs := w.Graphs(rng)
		v := variants(compiler.DefaultOptions(), compiler.Facts{})[0]
		if refused(graphs, v) {
			a.skip(skipRefused)
			continue
		}
		t.Run(fmt.Sprintf("world-%02d", i), func(t *testing.T) { agree(t, graphs, v, a) })
	}
	t.Logf("%d cases: %d connections compared (%d allowed), %d HTTP requests (%d refused by Cilium's proxy)",
		a.cases, a.connections, a.allowed, a.http, a.httpRefused)
	for _, k := range slices.Sorted(maps.Keys(a.byKind)) {
		t.Logf("compared: %d × %s (%d allowed)", a.byKind[k], k, a.allowedByKind[k])
	}
	for _, why := range []string{skipEntity, skipFQDN, skipRefused} {
		t.Logf("not compared: %d × %s", a.skipped[why], why)
	}
	if a.connections == 0 || a.http == 0 || a.httpRefused == 0 {
		t.Errorf("nothing (or no HTTP request, or no refused one) compared")
	}
}

// refused tells whether the compiler refuses a graph of the world.
func refused(graphs []*v1alpha1.ServiceGraph, v variant) bool {
	for _, sg := range graphs {
		sg = sg.DeepCopy()
		sg.Spec.NetworkPolicy, sg.Spec.Mesh = v1alpha1.NetworkPolicyCilium, v.mesh
		if _, err := compiler.Compile(sg, v.opts, v.facts); err != nil {
			return true
		}
	}
	return false
}

// agree compiles the graphs, has Cilium resolve them (judge), loads the same objects into one
// eval.Cluster and compares every connection.
func agree(t *testing.T, graphs []*v1alpha1.ServiceGraph, v variant, a *agreement) {
	js, resources := compileAll(t, graphs, v)
	c, tab := judge(t, js, resources)
	ec := &eval.Cluster{Namespaces: c.namespaces}
	for _, j := range js {
		for _, o := range j.res.Objects() {
			ec.Add(o)
		}
	}
	a.cases++
	lines := tableLines(tab)
	subject := map[string]bool{}
	for k := range tab {
		subject[strings.Fields(k)[0]] = true
	}
	ports := portsByEndpoint(tab)
	var eps []*endpoint
	for _, e := range c.endpoints {
		if aggregate(e.id) {
			continue
		}
		if !e.pod && !e.addr.IsValid() && e.key != "reserved:kube-apiserver" {
			a.skip(skipEntity)
			continue
		}
		eps = append(eps, e)
	}
	workloads := map[*endpoint]*eval.Workload{}
	for _, e := range eps {
		workloads[e] = evalWorkload(e)
	}
	// allowed is one direction as Cilium's table has it: an endpoint without lines has no policy.
	allowed := func(ep, dir, peer string, p l4Port) (bool, []string) {
		if !subject[ep] {
			return true, []string{anyL7}
		}
		var l7 []string
		for _, who := range []string{peer, "*"} {
			for _, g := range lines[ep+" "+dir+" "+who] {
				if (g.proto == "ANY" || g.proto == p.proto) && (g.port == "ANY" || g.port == p.port) {
					l7 = append(l7, g.l7)
				}
			}
		}
		return len(l7) > 0, l7
	}
	for _, src := range eps {
		a.probe(t, ec, src, eps, workloads, ports, subject, allowed)
	}
}

// probe compares every connection from one source.
func (a *agreement) probe(t *testing.T, ec *eval.Cluster, src *endpoint, eps []*endpoint, workloads map[*endpoint]*eval.Workload,
	ports map[string][]l4Port, subject map[string]bool, allowed func(ep, dir, peer string, p l4Port) (bool, []string)) {
	for _, dst := range eps {
		if src == dst || !subject[src.key] && !subject[dst.key] || !dst.pod && !src.pod {
			continue
		}
		from := eval.Endpoint{Workload: workloads[src]}
		if !src.pod && src.key != "reserved:kube-apiserver" {
			from = eval.Endpoint{IP: src.addr.String()}
		}
		for _, p := range pairPorts(ports[src.key], ports[dst.key]) {
			out, outL7 := allowed(src.key, "out", dst.key, p)
			in, inL7 := allowed(dst.key, "in", src.key, p)
			n, _ := strconv.Atoi(p.port)
			req := eval.Request{From: from, To: workloads[dst], Port: int32(n), Protocol: corev1.Protocol(p.proto)}
			v := ec.Check(req)
			got := v.Allows(eval.L4Layers.Layers...)
			if out && in && !got && strings.HasPrefix(dst.key, "dns:") && fqdnUnseen(v) {
				a.skip(skipFQDN)
				continue
			}
			a.connections++
			a.byKind[kind(src)+" -> "+kind(dst)]++
			if got != (out && in) {
				t.Errorf("%s -> %s %s/%s: Cilium allows=%v (egress %v, ingress %v), eval allows=%v: %s",
					src.key, dst.key, p.proto, p.port, out && in, out, in, got, describe(v))
				continue
			}
			if got {
				a.allowed++
				a.allowedByKind[kind(src)+" -> "+kind(dst)]++
				a.compareHTTP(t, ec, req, [][]string{outL7, inL7}, src.key+" -> "+dst.key+" "+p.proto+"/"+p.port)
			}
		}
	}
}

func newAgreement() *agreement {
	return &agreement{skipped: map[string]int{}, byKind: map[string]int{}, allowedByKind: map[string]int{}}
}

// compareHTTP sends requests built from the HTTP rules Cilium's proxy holds for the connection
// (every set that applies must admit a request) and holds eval's verdict to theirs.
func (a *agreement) compareHTTP(t *testing.T, ec *eval.Cluster, req eval.Request, dirs [][]string, what string) {
	t.Helper()
	var sets [][]string
	var all []string
	for _, l7 := range dirs { // a direction that admits the peer without rules restricts nothing
		all = append(all, l7...)
		if slices.Contains(l7, anyL7) {
			continue
		}
		for _, s := range l7 {
			if strings.HasPrefix(s, "http ") {
				sets = append(sets, strings.Split(s, " | "))
			}
		}
	}
	if len(sets) == 0 {
		return
	}
	l7 := all
	for _, r := range httpCandidates(sets) {
		want := true
		for _, set := range sets {
			want = want && proxyAdmits(t, set, r.Method, r.Path)
		}
		req.HTTP = &eval.HTTP{Method: r.Method, Path: r.Path}
		v := ec.Check(req)
		a.http++
		if !want {
			a.httpRefused++
		}
		if got := v.Allows(eval.L4Layers.Layers...); got != want {
			t.Errorf("%s %s %s: Cilium's proxy (%s) admits=%v, eval admits=%v: %s", what, r.Method, r.Path, strings.Join(l7, " ; "), want, got, describe(v))
		}
	}
}

// httpCandidates are requests around the rules: the shortest each rule's expressions match, the
// same with a method no rule names, and a path none is likely to match.
func httpCandidates(sets [][]string) []eval.HTTP {
	out := []eval.HTTP{{Method: "GET", Path: "/zz-refused"}, {Method: "DELETE", Path: "/"}}
	for _, set := range sets {
		for _, rule := range set {
			if rule == httpAny {
				continue
			}
			f := strings.Fields(rule) // http METHOD PATH
			method, path := "GET", "/"
			if f[1] != "*" {
				method = shortestMatch(f[1])
			}
			if f[2] != "*" {
				path = shortestMatch(f[2])
			}
			out = append(out, eval.HTTP{Method: method, Path: path}, eval.HTTP{Method: "PURGE", Path: path}, eval.HTTP{Method: method, Path: path + "x"})
		}
	}
	return out
}

// proxyAdmits reads a set of the table's HTTP rules as Cilium's Envoy filter does: the rules
// Cilium's translator makes of them (envoyAllows).
func proxyAdmits(t *testing.T, set []string, method, path string) bool {
	t.Helper()
	var rules api.PortRulesHTTP
	for _, s := range set {
		if s == httpAny {
			return true
		}
		f := strings.Fields(s)
		if len(f) != 3 {
			t.Fatalf("an HTTP rule this test cannot read: %q", s)
		}
		r := api.PortRuleHTTP{}
		if f[1] != "*" {
			r.Method = f[1]
		}
		if f[2] != "*" {
			r.Path = f[2]
		}
		if err := r.Sanitize(); err != nil {
			t.Fatalf("Cilium refuses %q: %v", s, err)
		}
		rules = append(rules, r)
	}
	tr := envoypolicy.NewEnvoyL7RulesTranslator(logger, certificatemanager.NewMockSecretManagerInline())
	envoy, _ := tr.GetEnvoyHTTPRules(&api.L7Rules{HTTP: rules}, "")
	return envoyAllows(t, envoy, method, path)
}

// shortestMatch is a shortest string a regular expression matches whole.
func shortestMatch(expr string) string {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return expr
	}
	var b strings.Builder
	var walk func(*syntax.Regexp)
	walk = func(r *syntax.Regexp) {
		switch r.Op {
		case syntax.OpLiteral:
			b.WriteString(string(r.Rune))
		case syntax.OpCharClass:
			if len(r.Rune) > 0 {
				b.WriteRune(r.Rune[0])
			}
		case syntax.OpAnyChar, syntax.OpAnyCharNotNL:
			b.WriteByte('x')
		case syntax.OpCapture:
			walk(r.Sub[0])
		case syntax.OpPlus:
			walk(r.Sub[0])
		case syntax.OpRepeat:
			for range r.Min {
				walk(r.Sub[0])
			}
		case syntax.OpConcat:
			for _, s := range r.Sub {
				walk(s)
			}
		case syntax.OpAlternate:
			walk(r.Sub[0])
		}
	}
	walk(re)
	return b.String()
}

// fqdnUnseen tells whether eval's egress step refused a name because it assumes Cilium's DNS
// proxy did not see it looked up.
func fqdnUnseen(v eval.Verdict) bool {
	return slices.ContainsFunc(v.Steps, func(s eval.Step) bool {
		return s.Layer == eval.Egress && !s.Allowed && strings.Contains(s.Detail, "toFQDNs cannot match")
	})
}

func describe(v eval.Verdict) string {
	var out []string
	for _, s := range v.Steps {
		if s.Layer == eval.Egress || s.Layer == eval.Ingress {
			out = append(out, fmt.Sprintf("%s allowed=%v by %q (%s)", s.Layer, s.Allowed, s.By, s.Detail))
		}
	}
	return strings.Join(out, "; ")
}

// evalWorkload is an endpoint as eval takes it: a pod with its named ports, an address or a name
// outside the cluster, the API server.
func evalWorkload(e *endpoint) *eval.Workload {
	switch {
	case e.pod:
		_, name, _ := strings.Cut(e.key, "/")
		w := &eval.Workload{Namespace: e.namespace, Name: name, Labels: e.labels, ServiceAccount: e.sa}
		for _, n := range slices.Sorted(maps.Keys(e.namedPorts)) {
			w.Ports = append(w.Ports, corev1.ContainerPort{Name: n, ContainerPort: e.namedPorts[n], Protocol: corev1.ProtocolTCP})
		}
		return w
	case e.key == "reserved:kube-apiserver":
		// The harness's is Cilium's identity 7 (reserved:kube-apiserver, no address); eval labels
		// it kube-apiserver and world, as an API server off the nodes. Without an address for
		// either, CIDR rules match neither; entity world would tell them apart.
		return &eval.Workload{Name: "kubernetes", APIServer: true}
	}
	return &eval.Workload{Name: e.key, IP: e.addr.String(), Host: e.name}
}

type l4Port struct{ proto, port string }

type grantLine struct{ proto, port, l7 string }

// tableLines are the table's lines by "ep dir peer".
func tableLines(tab Table) map[string][]grantLine {
	out := map[string][]grantLine{}
	for line, l7 := range tab {
		f := strings.Fields(line) // ep dir proto/port peer
		proto, port, _ := strings.Cut(f[2], "/")
		k := f[0] + " " + f[1] + " " + f[3]
		out[k] = append(out[k], grantLine{proto, port, l7})
	}
	return out
}

// portsByEndpoint are the ports each endpoint's lines name (either direction), by endpoint.
func portsByEndpoint(tab Table) map[string][]l4Port {
	out := map[string][]l4Port{}
	for k := range tab {
		f := strings.Fields(k)
		proto, port, _ := strings.Cut(f[2], "/")
		if proto != "ANY" && port != "ANY" {
			out[f[0]] = append(out[f[0]], l4Port{proto, port})
		}
	}
	return out
}

// pairPorts are the ports a connection is probed on: those the lines of either end name, and for
// each protocol one neither names (every other port, as the table's ANY stands for).
func pairPorts(a, b []l4Port) []l4Port {
	seen := map[l4Port]bool{}
	for _, p := range append(slices.Clone(a), b...) {
		seen[p] = true
	}
	for _, proto := range []string{"TCP", "UDP", "SCTP"} {
		other := 40000
		for seen[l4Port{proto, strconv.Itoa(other)}] {
			other++
		}
		seen[l4Port{proto, strconv.Itoa(other)}] = true
	}
	return slices.SortedFunc(maps.Keys(seen), func(x, y l4Port) int { return strings.Compare(x.proto+"/"+x.port, y.proto+"/"+y.port) })
}

// kind names what an endpoint is, for the counts.
func kind(e *endpoint) string {
	switch {
	case e.pod && e.decoy != real:
		return "decoy pod"
	case e.pod:
		return "pod"
	case e.name != "":
		return "name outside"
	case e.addr.IsValid():
		return "address outside"
	}
	return "API server"
}
