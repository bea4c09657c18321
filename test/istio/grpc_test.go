package istio

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"istio.io/istio/pkg/config"
	"istio.io/istio/pkg/config/schema/gvk"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
)

// These tests run the generated policies on a real data plane: proxyless gRPC, enforced by
// grpc-go's RBAC engine with the configuration Istio's discovery server generates, over real mTLS.
// Proxyless gRPC has two gaps the builder tests (TestIstioTranslatesEveryPolicy) cover instead: it
// emits no RBAC filter for an ALLOW policy without rules, so Istio's allow-nothing policy is not
// enforced on a workload no rule selects, and it has no TCP filter chain. So every destination
// probed here has a caller.

const healthCheck = "/grpc.health.v1.Health/Check"

// graphFor declares the workloads as services and the connections between them, all gRPC on the
// destination's port, with the paths given.
func graphFor(namespace string, ws []*workload, edges []grpcEdge, mode v1alpha1.MTLSMode) *v1alpha1.ServiceGraph {
	sg := &v1alpha1.ServiceGraph{ObjectMeta: metav1.ObjectMeta{Name: "grpc", Namespace: namespace}}
	sg.Spec.MTLS = mode
	for _, w := range ws {
		sg.Spec.Services = append(sg.Spec.Services, v1alpha1.Service{Name: w.Name,
			Selector: &metav1.LabelSelector{MatchLabels: w.Labels}, ServiceAccount: w.ServiceAccount})
	}
	for _, e := range edges {
		c := v1alpha1.Connection{From: e.from.Name, To: e.to.Name,
			Ports: []v1alpha1.ConnectionPort{{Port: intstr.FromInt(e.to.port), Protocol: v1alpha1.ProtocolGRPC}}}
		if e.path != "" {
			c.Paths = []string{e.path}
		}
		sg.Spec.Connections = append(sg.Spec.Connections, c)
	}
	return sg
}

type grpcEdge struct {
	from, to *workload
	path     string
}

// sync replaces the graph's Istio objects in the discovery server's store with a new compilation:
// what the operator's apply and prune do in a cluster.
func (m *mesh) sync(namespace string, sg *v1alpha1.ServiceGraph) {
	m.t.Helper()
	_, configs := compiled(m.t, graphCase{name: sg.Namespace, sg: sg})
	keep := map[string]bool{}
	for _, c := range configs {
		keep[c.GroupVersionKind.Kind+"/"+c.Name] = true
	}
	for _, kind := range []config.GroupVersionKind{gvk.AuthorizationPolicy, gvk.PeerAuthentication} {
		for _, c := range m.ds.Store().List(kind, namespace) {
			if !keep[kind.Kind+"/"+c.Name] {
				if err := m.ds.Store().Delete(kind, c.Name, namespace, nil); err != nil {
					m.t.Fatal(err)
				}
			}
		}
	}
	m.apply(configs...)
}

// expect calls until the outcome is the wanted one (Istio pushes configuration asynchronously):
// "" for admitted, or the gRPC code of the refusal.
func (m *mesh) expect(from, to *workload, want codes.Code) {
	m.t.Helper()
	var got codes.Code
	deadline := time.Now().Add(15 * time.Second)
	for {
		got = status.Code(m.call(from, to))
		if got == want || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got != want {
		m.t.Errorf("%s -> %s: %v, want %v", describeCaller(from), to.Name, got, want)
	}
}

func describeCaller(w *workload) string {
	if w == nil {
		return "a plaintext caller without certificate"
	}
	return w.Name
}

func newWorkload(name, namespace string) *workload {
	return &workload{Name: name, Namespace: namespace, ServiceAccount: name, Labels: map[string]string{"app": name}}
}

func TestProxylessGRPCEnforcesTheSeed(t *testing.T) {
	m := newMesh(t)
	const ns = "shop"
	web, api, database, gateway := newWorkload("web", ns), newWorkload("api", ns), newWorkload("database", ns), newWorkload("gateway", ns)
	ws := []*workload{web, api, database, gateway}
	for _, w := range ws {
		m.add(w)
	}
	m.apply(mutualTLS(ns))
	seed := []grpcEdge{{from: web, to: api}, {from: api, to: database, path: "/grpc.health.v1.Health/*"}}
	m.sync(ns, graphFor(ns, ws, seed, ""))

	m.expect(api, database, codes.OK)
	m.expect(web, api, codes.OK)
	m.expect(web, database, codes.PermissionDenied)
	m.expect(database, api, codes.PermissionDenied)
	m.expect(gateway, api, codes.PermissionDenied)

	// Under STRICT an unmeshed caller (plaintext, no certificate) cannot even connect: the call
	// never gets a ready connection. Under PERMISSIVE it connects (proxyless gRPC servers take
	// PERMISSIVE as plaintext only), and a policy with principals still refuses it.
	m.expect(nil, api, codes.DeadlineExceeded)
	m.expect(nil, web, codes.DeadlineExceeded)
	m.sync(ns, graphFor(ns, ws, seed, v1alpha1.MTLSPermissive))
	m.expect(nil, web, codes.OK) // web has no caller: only the allow-nothing policy, which proxyless gRPC does not enforce
	m.expect(nil, api, codes.PermissionDenied)

	// A removed edge refuses; the other caller of the same service stays admitted.
	m.sync(ns, graphFor(ns, ws, append(slices.Clone(seed), grpcEdge{from: gateway, to: api}), ""))
	m.expect(gateway, api, codes.OK)
	m.sync(ns, graphFor(ns, ws, []grpcEdge{seed[1], {from: gateway, to: api}}, ""))
	m.expect(web, api, codes.PermissionDenied)
	m.expect(gateway, api, codes.OK)
	m.expect(api, database, codes.OK)
}

// TestProxylessGRPCAgreesWithTheGraph runs random gRPC graphs: every caller is admitted exactly
// when an edge allows it, with a path that admits the health check (exact, prefix) or one that
// does not.
func TestProxylessGRPCAgreesWithTheGraph(t *testing.T) {
	m := newMesh(t)
	rng := rand.New(rand.NewPCG(5, 2026))
	paths := []string{"", healthCheck, "/grpc.health.v1.Health/*", "/grpc.health.v1.Health/Watch"}
	calls := 0
	for world := range 6 {
		ns := fmt.Sprintf("grpc-%d", world)
		var ws []*workload
		for i := range 5 + rng.IntN(4) {
			w := newWorkload(fmt.Sprintf("svc-%d", i), ns)
			m.add(w)
			ws = append(ws, w)
		}
		m.apply(mutualTLS(ns))
		var edges []grpcEdge
		allowed := map[[2]string]bool{}
		called := map[string]bool{}
		for _, from := range ws {
			for _, to := range ws {
				if from == to || rng.IntN(3) != 0 {
					continue
				}
				e := grpcEdge{from: from, to: to, path: paths[rng.IntN(len(paths))]}
				edges = append(edges, e)
				called[to.Name] = true
				allowed[[2]string{from.Name, to.Name}] = e.path != "/grpc.health.v1.Health/Watch"
			}
		}
		m.sync(ns, graphFor(ns, ws, edges, ""))
		for _, to := range ws {
			if !called[to.Name] {
				continue // no rule selects it: see the package comment
			}
			for _, from := range ws {
				if from == to {
					continue
				}
				want := codes.PermissionDenied
				if allowed[[2]string{from.Name, to.Name}] {
					want = codes.OK
				}
				m.expect(from, to, want)
				calls++
			}
		}
	}
	t.Logf("%d gRPC calls over mutual TLS matched the graphs", calls)
}
