package compiler

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
)

// chain is a graph whose services call each other in a ring, so every service gets a
// NetworkPolicy and an AuthorizationPolicy.
func chain(graphName string, services []string) *v1alpha1.ServiceGraph {
	var edges []string
	for i, s := range services {
		edges = append(edges, fmt.Sprintf("%s->%s:80", s, services[(i+1)%len(services)]))
	}
	return newGraph(graphName, services, edges...)
}

// checkNames asserts that names are unique per kind, valid, at most 63 characters, and that the
// graph has as many objects as it should (so none was merged away by a collision).
func checkNames(t *testing.T, sg *v1alpha1.ServiceGraph) {
	t.Helper()
	res := mustCompile(t, sg, DefaultOptions())
	seen := map[string]bool{}
	counts := map[string]int{}
	for _, o := range res.Objects() {
		kind := o.GetObjectKind().GroupVersionKind().Kind
		key := kind + "/" + o.GetName()
		if seen[key] {
			t.Errorf("graph %q: two objects named %s", sg.Name, key)
		}
		seen[key] = true
		counts[kind]++
		if len(o.GetName()) > 63 || len(validation.IsDNS1123Subdomain(o.GetName())) > 0 {
			t.Errorf("graph %q: invalid name %q", sg.Name, o.GetName())
		}
	}
	n := len(sg.Spec.Services)
	want := map[string]int{"NetworkPolicy": 3 + n, "AuthorizationPolicy": 1 + n, "PeerAuthentication": 1}
	for kind, c := range want {
		if counts[kind] != c {
			t.Errorf("graph %q: %d %ss, want %d", sg.Name, counts[kind], kind, c)
		}
	}
}

// Services named like the namespace-wide objects, like the graph, or like the per-service
// prefix do not collide with anything.
func TestNamesAdversarial(t *testing.T) {
	long := strings.Repeat("x", 63)
	for _, g := range []string{"shop", "svc", "default", "a", long, strings.Repeat("y", 50)} {
		services := []string{
			"default-deny", "allow-dns", "allow-istiod", "deny-all", "svc", "svc-svc", "svc-default-deny",
			"default", g[:min(len(g), 63)], "a", long, long[:62] + "z", long[:50] + "-default-deny",
		}
		checkNames(t, chain(g, dedupe(services)))
	}
}

// Random graph and service names, biased towards long ones and the reserved suffixes.
func TestNamesRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	reserved := []string{"default-deny", "allow-dns", "allow-istiod", "deny-all", "svc"}
	label := func() string {
		switch rng.IntN(4) {
		case 0:
			return reserved[rng.IntN(len(reserved))]
		case 1: // long, sharing a prefix, so that only the hash can tell them apart
			return strings.Repeat("s", 50) + randomLabel(rng, 1+rng.IntN(13))
		default:
			return randomLabel(rng, 1+rng.IntN(63))
		}
	}
	for range 200 {
		var services []string
		for range 2 + rng.IntN(20) {
			services = append(services, label())
		}
		if services = dedupe(services); len(services) < 2 {
			continue // a ring of one is a self-edge
		}
		checkNames(t, chain(label(), services))
	}
}

func TestShorten(t *testing.T) {
	short := strings.Repeat("a", 63)
	if got := shorten(short); got != short {
		t.Errorf("shorten(63 chars) = %q", got)
	}
	a, b := shorten(short+"-svc-x"), shorten(short+"-svc-y")
	if a == b || len(a) != 63 || len(b) != 63 || a != shorten(short+"-svc-x") {
		t.Errorf("shorten: %q and %q", a, b)
	}
	// The cut never leaves a dash before the hash's dash.
	if got := shorten(strings.Repeat("a", 51) + "-bcdefghijklmnop"); strings.Contains(got, "--") {
		t.Errorf("shorten left a double dash: %q", got)
	}
}

// randomLabel is a DNS label of length n.
func randomLabel(rng *rand.Rand, n int) string {
	const alnum = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	for i := range b {
		b[i] = alnum[rng.IntN(len(alnum))]
		if i > 0 && i < n-1 && rng.IntN(5) == 0 {
			b[i] = '-'
		}
	}
	return string(b)
}

func dedupe(names []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, n := range names {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}
