package cilium

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/compiler"
	"github.com/servicegraph/servicegraph-operator/test/world"
)

// randomWorlds is how many random worlds (fixed seeds) are judged, each without a mesh and with
// Istio: up to 16 services in up to three namespaces, named ports, UDP, SCTP, HTTP and GRPC ports,
// paths, peers in other namespaces both ways; every other world with sibling edges (addSiblings).
const randomWorlds = 50

// TestRandomWorldsAsCiliumResolvesThem loads every graph of a world into one repository, as a
// cluster would have them, and holds what Cilium lets through to the graphs (per endpoint, with
// HTTP rules) and to the world's own list of connections (world.Expected, which knows nothing of
// the compiler or the graph package): a connection is allowed when the caller's egress and the
// callee's ingress both allow it.
func TestRandomWorldsAsCiliumResolvesThem(t *testing.T) {
	rng := rand.New(rand.NewPCG(28, 2026))
	services, edges, paths, siblings := 0, 0, 0, 0
	for i := range randomWorlds {
		w := world.Random(rng, world.Options{MaxServices: 16, Namespaces: 3})
		if i%2 == 1 {
			n := len(w.Edges)
			addSiblings(rng, w)
			siblings += len(w.Edges) - n
		}
		graphs := w.Graphs(rng)
		services, edges = services+len(w.Services), edges+len(w.Edges)
		for _, e := range w.Edges {
			if e.Path != "" {
				paths++
			}
		}
		for _, v := range variants(compiler.DefaultOptions(), compiler.Facts{}) {
			name := fmt.Sprintf("world-%02d-%dsvc-%dedges-%dns/%s", i, len(w.Services), len(w.Edges), len(graphs), v.name)
			t.Run(name, func(t *testing.T) {
				w.Istio = v.mesh == v1alpha1.MeshIstio
				js, resources := compileAll(t, graphs, v)
				c, got := judge(t, js, resources)
				want, flows := w.Expected(), connections(c, got, w.Namespaces)
				if diff := cmp.Diff(want.Sorted(), flows.Sorted()); diff != "" {
					t.Errorf("connections Cilium allows differ from the world's (-world +Cilium):\n%s", diff)
				}
			})
		}
	}
	t.Logf("%d worlds: %d services, %d edges (%d with a path, %d siblings), each without a mesh and with Istio", randomWorlds, services, edges, paths, siblings)
}

// addSiblings gives some edges a sibling between the same services that shares their TCP ports
// and adds one: with a path where the edge has none, without where it has one. The compiler
// writes the two as rules with different ports for the same caller, which Cilium adds up per port.
func addSiblings(rng *rand.Rand, w *world.World) {
	for _, e := range slices.Clone(w.Edges) {
		if rng.IntN(3) > 0 {
			continue
		}
		sib := world.Edge{From: e.From, To: e.To, Ports: []v1alpha1.ConnectionPort{{Port: intstr.FromInt32(7777)}}}
		if e.Path == "" {
			// A path on 7777 next to a port of e's written by name is a graph Cilium's policies
			// cannot say (the graph refuses it: is the name 7777?).
			if slices.ContainsFunc(e.Ports, func(p v1alpha1.ConnectionPort) bool { return p.Port.Type == intstr.String }) {
				continue
			}
			sib.Path = "/v2/*"
		}
		for _, p := range e.Ports {
			switch {
			case world.L4(p.Protocol) != corev1.ProtocolTCP:
			case p.Protocol == v1alpha1.ProtocolTCP && sib.Path != "":
				p.Protocol = "" // HTTP, as the path makes it
				fallthrough
			default:
				sib.Ports = append(sib.Ports, p)
			}
		}
		if len(sib.Ports) > 1 {
			w.Edges = append(w.Edges, sib)
		}
	}
}

// connections are the connections the table allows between the world's pods, kube-dns and
// istiod (and the decoys in other namespaces, which nothing may reach; the others are pods of a
// graph's namespace the world does not know) where one end is in a graph's namespace: the
// caller's egress and the callee's ingress must both allow it; a pod outside the graphs'
// namespaces has no policy and allows everything.
func connections(c *cluster, tab Table, namespaces []string) world.Connections {
	type grant struct{ proto, port string }
	allows := map[string][]grant{} // "ep dir peer" → what it allows
	for line := range tab {
		f := strings.Fields(line) // ep dir proto/port peer
		proto, port, _ := strings.Cut(f[2], "/")
		allows[f[0]+" "+f[1]+" "+f[3]] = append(allows[f[0]+" "+f[1]+" "+f[3]], grant{proto, port})
	}
	ports := map[grant]bool{}
	for _, gs := range allows {
		for _, g := range gs {
			if g.proto != "ANY" && g.port != "ANY" {
				ports[g] = true
			}
		}
	}
	allowed := func(ep, dir, peer string, p grant) bool {
		if !slices.Contains(namespaces, c.byKey[ep].namespace) {
			return true
		}
		for _, g := range append(allows[ep+" "+dir+" "+peer], allows[ep+" "+dir+" *"]...) {
			if (g.proto == "ANY" || g.proto == p.proto) && (g.port == "ANY" || g.port == p.port) {
				return true
			}
		}
		return false
	}
	var pods []*endpoint
	for _, e := range c.endpoints {
		if e.pod && (e.decoy == real || e.decoy == elsewhere) {
			pods = append(pods, e)
		}
	}
	out := world.Connections{}
	for _, a := range pods {
		for _, b := range pods {
			if a == b || !slices.Contains(namespaces, a.namespace) && !slices.Contains(namespaces, b.namespace) {
				continue
			}
			for _, p := range slices.SortedFunc(maps.Keys(ports), func(x, y grant) int { return strings.Compare(x.proto+x.port, y.proto+y.port) }) {
				if allowed(a.key, "out", b.key, p) && allowed(b.key, "in", a.key, p) {
					n, _ := strconv.Atoi(p.port)
					out.Add(a.key, b.key, corev1.Protocol(p.proto), int32(n))
				}
			}
		}
	}
	return out
}
