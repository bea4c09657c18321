package graph

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
)

func serviceGraph(services []v1alpha1.Service, edges []string, conns ...v1alpha1.Connection) *v1alpha1.ServiceGraph {
	sg := &v1alpha1.ServiceGraph{}
	sg.Name, sg.Namespace = "shop", "shop"
	sg.Spec.Services, sg.Spec.Edges, sg.Spec.Connections = services, edges, conns
	return sg
}

func svcs(names ...string) []v1alpha1.Service {
	out := make([]v1alpha1.Service, len(names))
	for i, n := range names {
		out[i] = v1alpha1.Service{Name: n}
	}
	return out
}

func connPort(p intstr.IntOrString, proto v1alpha1.Protocol) v1alpha1.ConnectionPort {
	return v1alpha1.ConnectionPort{Port: p, Protocol: proto}
}

func mustBuild(t *testing.T, sg *v1alpha1.ServiceGraph) *Graph {
	t.Helper()
	g, err := Build(sg)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	return g
}

var cmpGraph = cmpopts.IgnoreUnexported(Graph{})

func TestBuildAppliesDefaults(t *testing.T) {
	services := append(svcs("web"),
		v1alpha1.Service{Name: "api", ServiceAccount: "api-sa",
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/name": "api"}}},
		v1alpha1.Service{Name: "gateway", Namespace: "payments"})
	g := mustBuild(t, serviceGraph(services, []string{"web->api:8080/v1/*", "api->payments/gateway:443,https"}))
	want := &Graph{
		Name: "shop", Namespace: "shop", Mesh: v1alpha1.MeshIstio, NetworkPolicy: v1alpha1.NetworkPolicyKubernetes, MTLS: v1alpha1.MTLSStrict, AllowDNS: true,
		Services: []Service{
			{Name: "api", Namespace: "shop", Labels: map[string]string{"app.kubernetes.io/name": "api"}, ServiceAccount: "api-sa"},
			{Name: "gateway", Namespace: "payments", Labels: map[string]string{"app": "gateway"}, ServiceAccount: "gateway"},
			{Name: "web", Namespace: "shop", Labels: map[string]string{"app": "web"}, ServiceAccount: "web"},
		},
		Edges: []Edge{
			{From: "api", ToNamespace: "payments", To: "gateway", Ports: []Port{
				{Port: intstr.FromInt32(443), Protocol: v1alpha1.ProtocolTCP},
				{Port: intstr.FromString("https"), Protocol: v1alpha1.ProtocolTCP},
			}},
			{From: "web", ToNamespace: "shop", To: "api", Paths: []string{"/v1/*"}, Ports: []Port{
				{Port: intstr.FromInt32(8080), Protocol: v1alpha1.ProtocolHTTP},
			}},
		},
	}
	if diff := cmp.Diff(want, g, cmpGraph); diff != "" {
		t.Errorf("Build (-want +got):\n%s", diff)
	}
	if s, ok := g.Service("gateway"); !ok || g.Local(s) {
		t.Errorf("Service(gateway) = %v, %v; want a non-local service", s, ok)
	}
}

func TestBuildSpecFields(t *testing.T) {
	sg := serviceGraph(svcs("a", "b"), []string{"a->b:1"})
	sg.Spec.MTLS = v1alpha1.MTLSPermissive
	sg.Spec.AllowDNS = new(bool)
	g := mustBuild(t, sg)
	if g.MTLS != v1alpha1.MTLSPermissive || g.AllowDNS {
		t.Errorf("MTLS %q AllowDNS %v, want PERMISSIVE false", g.MTLS, g.AllowDNS)
	}
}

// A connection and a compact edge that say the same thing are the same edge, whatever the order of
// their ports, and writing both is a duplicate.
func TestConnectionsNormaliseLikeEdges(t *testing.T) {
	compact := "web -> shop/api:http,8080/a"
	conn := v1alpha1.Connection{From: "web", To: "api", Paths: []string{"/a"}, Ports: []v1alpha1.ConnectionPort{
		connPort(intstr.FromString("http"), ""), connPort(intstr.FromString("8080"), v1alpha1.ProtocolHTTP),
	}}
	fromEdge := mustBuild(t, serviceGraph(svcs("web", "api"), []string{compact}))
	fromConn := mustBuild(t, serviceGraph(svcs("web", "api"), nil, conn))
	if diff := cmp.Diff(fromEdge, fromConn, cmpGraph); diff != "" {
		t.Errorf("edge and connection differ (-edge +connection):\n%s", diff)
	}
	_, err := Build(serviceGraph(svcs("web", "api"), []string{compact}, conn))
	want := `connection "web->api:http,8080/a": duplicates edge "web -> shop/api:http,8080/a"`
	if err == nil || err.Error() != want {
		t.Errorf("Build with both: %v, want %s", err, want)
	}
}

func TestBuildReportsEveryProblem(t *testing.T) {
	services := append(svcs("web", "api", "database", "api", "Bad"),
		v1alpha1.Service{Name: "gateway", Namespace: "payments"},
		v1alpha1.Service{Name: "frontend", Namespace: "storefront"},
		v1alpha1.Service{Name: "exprs", Selector: &metav1.LabelSelector{
			MatchLabels:      map[string]string{"app": "exprs"},
			MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tier", Operator: metav1.LabelSelectorOpExists}},
		}},
		v1alpha1.Service{Name: "empty", Selector: &metav1.LabelSelector{}},
		v1alpha1.Service{Name: "badlabel", Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"a b": "c"}}},
		v1alpha1.Service{Name: "badsa", ServiceAccount: "Admin"},
	)
	edges := []string{
		"web->api:8080",
		"web->apx:8080",
		"wbe->apx:8080",
		"web->payments/api:8080",
		"storefront/gateway->api:443",
		"web->web:80",
		"frontend->gateway:443",
		"web -> api:8080",
		"web->api:0",
		"web->api:8080,8080",
		strings.Repeat("a", 500) + "->api:8080000000",
	}
	conns := []v1alpha1.Connection{
		{From: "web", To: "api", Ports: []v1alpha1.ConnectionPort{connPort(intstr.FromInt32(8080), "")}},
		{From: "web", To: "api", Paths: []string{"/x"}, Ports: []v1alpha1.ConnectionPort{connPort(intstr.FromInt32(53), v1alpha1.ProtocolUDP)}},
		{From: "web", To: "database", Methods: []string{"GET"}, Ports: []v1alpha1.ConnectionPort{connPort(intstr.FromInt32(5432), v1alpha1.ProtocolTCP)}},
		{From: "web", To: "database", Ports: []v1alpha1.ConnectionPort{connPort(intstr.FromInt32(0), "")}},
		{From: "web", To: "database", Ports: []v1alpha1.ConnectionPort{connPort(intstr.FromString("http--x"), "")}},
		{From: "web", To: "database", Paths: []string{"nope"}, Methods: []string{"get"}, Ports: []v1alpha1.ConnectionPort{connPort(intstr.FromInt32(80), "QUIC")}},
		{From: "web", To: "/database"},
	}
	_, err := Build(serviceGraph(services, edges, conns...))
	want := ErrorList{
		{Item: `service "api"`, Message: "declared more than once", Kind: KindInvalid},
		{Item: `service "Bad"`, Message: `name may contain only lowercase letters, digits and "-"`, Kind: KindInvalid},
		{Item: `service "exprs"`, Message: "selector.matchExpressions is not supported: Istio workload selectors take matchLabels only", Kind: KindInvalid},
		{Item: `service "empty"`, Message: "selector.matchLabels must not be empty: an empty selector would match every pod", Kind: KindInvalid},
		{Item: `service "badlabel"`, Message: `selector.matchLabels "a b": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')`, Kind: KindInvalid},
		{Item: `service "badsa"`, Message: `serviceAccount "Admin": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')`, Kind: KindInvalid},
		{Item: `edge "web->apx:8080"`, Edge: "web->apx:8080", Message: `service "apx" is not declared in spec.services`, Kind: KindUndeclared},
		{Item: `edge "wbe->apx:8080"`, Edge: "wbe->apx:8080", Message: `service "wbe" is not declared in spec.services`, Kind: KindUndeclared},
		{Item: `edge "wbe->apx:8080"`, Edge: "wbe->apx:8080", Message: `service "apx" is not declared in spec.services`, Kind: KindUndeclared},
		{Item: `edge "web->payments/api:8080"`, Edge: "web->payments/api:8080", Message: `service "api" is declared in namespace "shop", not "payments"`, Kind: KindInvalid},
		{Item: `edge "storefront/gateway->api:443"`, Edge: "storefront/gateway->api:443", Message: `service "gateway" is declared in namespace "payments", not "storefront"`, Kind: KindInvalid},
		{Item: `edge "web->web:80"`, Edge: "web->web:80", Message: "an edge cannot go from a service to itself", Kind: KindSelfEdge},
		{Item: `edge "frontend->gateway:443"`, Edge: "frontend->gateway:443", Message: `both ends are in other namespaces ("storefront" and "payments"): a graph only writes rules for its own namespace "shop"`, Kind: KindInvalid},
		{Item: `edge "web -> api:8080"`, Edge: "web -> api:8080", Message: `duplicates edge "web->api:8080"`, Kind: KindDuplicate},
		{Item: `edge "web->api:0"`, Edge: "web->api:0", Message: "column 10: port must be 1-65535", Kind: KindInvalid},
		{Item: `edge "web->api:8080,8080"`, Edge: "web->api:8080,8080", Message: "port 8080 is listed more than once", Kind: KindInvalid},
		{Item: source{"edge", edges[10]}.item(), Edge: edges[10], Message: "an edge must be at most 512 characters", Kind: KindInvalid},
		{Item: `connection "web->api:8080"`, Edge: "web->api:8080", Message: `duplicates edge "web->api:8080"`, Kind: KindDuplicate},
		{Item: `connection "web->api:53(UDP) [/x]"`, Edge: "web->api:53(UDP) [/x]", Message: "paths and methods need an HTTP or GRPC port, but port 53 is UDP", Kind: KindHTTPOnNonHTTPPort},
		{Item: `connection "web->database:5432(TCP) [GET]"`, Edge: "web->database:5432(TCP) [GET]", Message: "paths and methods need an HTTP or GRPC port, but port 5432 is TCP", Kind: KindHTTPOnNonHTTPPort},
		{Item: `connection "web->database:0"`, Edge: "web->database:0", Message: "port 0: port must be 1-65535", Kind: KindInvalid},
		{Item: `connection "web->database:http--x"`, Edge: "web->database:http--x", Message: `port "http--x": port name must not contain "--"`, Kind: KindInvalid},
		{Item: `connection "web->database:80(QUIC) [get nope]"`, Edge: "web->database:80(QUIC) [get nope]", Message: `port 80: protocol "QUIC" must be TCP, UDP, SCTP, HTTP or GRPC`, Kind: KindInvalid},
		{Item: `connection "web->database:80(QUIC) [get nope]"`, Edge: "web->database:80(QUIC) [get nope]", Message: `path "nope" must start with "/" (exact or prefix match) or "*" (suffix match)`, Kind: KindInvalid},
		{Item: `connection "web->database:80(QUIC) [get nope]"`, Edge: "web->database:80(QUIC) [get nope]", Message: `method "get" must be 1-16 uppercase letters`, Kind: KindInvalid},
		{Item: `connection "web->database:"`, Edge: "web->database:", Message: "namespace of to must not be empty", Kind: KindInvalid},
		{Item: `connection "web->database:"`, Edge: "web->database:", Message: "ports must not be empty", Kind: KindInvalid},
	}
	if diff := cmp.Diff(want, err); diff != "" {
		t.Errorf("Build errors (-want +got):\n%s", diff)
	}
}

func TestBuildGraphErrors(t *testing.T) {
	sg := serviceGraph(nil, nil)
	sg.Name, sg.Namespace, sg.Spec.MTLS = strings.Repeat("g", 64), "", "OFF"
	_, err := Build(sg)
	want := "metadata.name: must be at most 63 characters: it is used as a label value; " +
		"metadata.namespace: namespace must not be empty; " +
		`spec.mtls: "OFF" must be STRICT or PERMISSIVE; ` +
		"spec: a ServiceGraph needs at least one edge in spec.edges or spec.connections"
	if err == nil || err.Error() != want {
		t.Errorf("Build:\n got: %v\nwant: %s", err, want)
	}
}

// A peer in another namespace may be named with its namespace on either end, in both forms, or
// without it; the graph is the same.
func TestEdgesNameNamespacesOnBothEnds(t *testing.T) {
	services := append(svcs("api"), v1alpha1.Service{Name: "gateway", Namespace: "payments"})
	plain := mustBuild(t, serviceGraph(services, []string{"gateway->api:8081", "api->gateway:443"}))
	for _, edges := range [][]string{
		{"payments/gateway->api:8081", "api->payments/gateway:443"},
		{"payments/gateway -> shop/api:8081", "shop/api → payments/gateway:443"},
	} {
		if diff := cmp.Diff(plain, mustBuild(t, serviceGraph(services, edges)), cmpGraph); diff != "" {
			t.Errorf("%v builds another graph (-plain +got):\n%s", edges, diff)
		}
	}
	conn := v1alpha1.Connection{From: "payments/gateway", To: "api", Ports: []v1alpha1.ConnectionPort{connPort(intstr.FromInt32(8081), "")}}
	fromConn := mustBuild(t, serviceGraph(services, []string{"api->gateway:443"}, conn))
	if diff := cmp.Diff(plain, fromConn, cmpGraph); diff != "" {
		t.Errorf("connection from NAMESPACE/NAME builds another graph (-plain +got):\n%s", diff)
	}
	if got := plain.Edges[1].String(); got != "payments/gateway->shop/api:8081" {
		t.Errorf("edge from a peer renders as %q", got)
	}
}

// The order of services and edges in the spec never shows in the graph.
func TestBuildIgnoresSpecOrder(t *testing.T) {
	services := svcs("a", "b", "c", "d", "e")
	edges := []string{"a->b:1", "b->c:2,1", "c->d:http/x", "d->e:3", "a->e:4", "e->a:5"}
	want := mustBuild(t, serviceGraph(services, edges))
	rng := rand.New(rand.NewPCG(3, 4))
	for range 20 {
		rng.Shuffle(len(services), func(i, j int) { services[i], services[j] = services[j], services[i] })
		rng.Shuffle(len(edges), func(i, j int) { edges[i], edges[j] = edges[j], edges[i] })
		if diff := cmp.Diff(want, mustBuild(t, serviceGraph(services, edges)), cmpGraph); diff != "" {
			t.Fatalf("shuffled spec builds another graph (-want +got):\n%s", diff)
		}
	}
}

func TestEdgeString(t *testing.T) {
	tests := []struct {
		e    Edge
		want string
	}{
		{Edge{From: "a", To: "b", Ports: ports(num(1), name("http"))}, "a->b:1,http"},
		{Edge{From: "a", ToNamespace: "ns", To: "b", Ports: []Port{{Port: intstr.FromInt32(1), Protocol: v1alpha1.ProtocolHTTP}}, Paths: []string{"/x"}}, "a->ns/b:1/x"},
		{Edge{From: "a", To: "b", Ports: []Port{{Port: intstr.FromInt32(53), Protocol: v1alpha1.ProtocolUDP}}}, "a->b:53(UDP)"},
		{Edge{From: "a", To: "b", Ports: ports(num(1)), Methods: []string{"GET"}, Paths: []string{"/a", "/b"}}, "a->b:1 [GET /a,/b]"},
	}
	for _, tc := range tests {
		if got := tc.e.String(); got != tc.want {
			t.Errorf("String() = %q, want %q", got, tc.want)
		}
	}
}

func TestExternalPeers(t *testing.T) {
	sg := serviceGraph(svcs("web", "api"), []string{"lb->web:8443", "gateway->web:8080", "api->db:5432", "api->stripe:443"})
	sg.Spec.External = []v1alpha1.External{
		{Name: "lb", CIDRs: []string{"203.0.113.7/24"}, Except: []string{"203.0.113.128/25"}, Unmeshed: true},
		{Name: "gateway", Namespaces: &v1alpha1.ExternalNamespaces{Names: []string{"istio-ingress", "edge"}}},
		{Name: "db", CIDRs: []string{"10.20.0.0/16"}},
		{Name: "stripe", Hosts: []string{"api.stripe.com"}},
	}
	g := mustBuild(t, sg)
	lb, _ := g.Service("lb")
	want := &External{CIDRs: []string{"203.0.113.0/24"}, Except: []string{"203.0.113.128/25"}, Unmeshed: true}
	if diff := cmp.Diff(want, lb.External); diff != "" {
		t.Errorf("lb (-want +got):\n%s", diff)
	}
	if gw, _ := g.Service("gateway"); !gw.External.Identified() || !slices.Equal(gw.External.Namespaces, []string{"edge", "istio-ingress"}) {
		t.Errorf("gateway: %+v, want identified namespaces in order", gw.External)
	}
	if g.Local(lb) {
		t.Error("an external peer is not local")
	}
}

func TestExternalPeerErrors(t *testing.T) {
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{"team": "obs"}}
	for _, tc := range []struct {
		name  string
		ext   v1alpha1.External
		edges []string
		mesh  v1alpha1.Mesh
		want  string
	}{
		{"two kinds", v1alpha1.External{Name: "x", CIDRs: []string{"10.0.0.0/8"}, KubernetesAPI: true}, []string{"web->x:443"}, "",
			`external "x": an external peer is exactly one of cidrs, namespaces, hosts (which may come with cidrs) or kubernetesAPI: true`},
		{"no kind", v1alpha1.External{Name: "x"}, []string{"web->x:443"}, "",
			`external "x": an external peer is exactly one of cidrs, namespaces, hosts (which may come with cidrs) or kubernetesAPI: true`},
		{"bad cidr", v1alpha1.External{Name: "x", CIDRs: []string{"10.0.0.0"}}, []string{"web->x:443"}, "",
			`external "x": cidrs: "10.0.0.0" is not an IP range such as 10.0.0.0/8`},
		{"except outside", v1alpha1.External{Name: "x", CIDRs: []string{"10.0.0.0/16"}, Except: []string{"10.1.0.0/24"}}, []string{"web->x:443"}, "",
			`external "x": except 10.1.0.0/24 is not inside any of the cidrs`},
		{"except without cidrs", v1alpha1.External{Name: "x", Hosts: []string{"a.example.com"}, Except: []string{"10.1.0.0/24"}}, []string{"web->x:443"}, "",
			`external "x": except needs cidrs; external "x": except 10.1.0.0/24 is not inside any of the cidrs`},
		{"bad host", v1alpha1.External{Name: "x", Hosts: []string{"localhost"}}, []string{"web->x:443"}, "",
			`external "x": host "localhost" must be a DNS name with a dot (a leading *. for a wildcard)`},
		{"unmeshed callee only", v1alpha1.External{Name: "x", KubernetesAPI: true, Unmeshed: true}, []string{"web->x:443"}, "",
			`external "x": unmeshed is for callers: cidrs or namespaces`},
		{"names and selector", v1alpha1.External{Name: "x", Namespaces: &v1alpha1.ExternalNamespaces{Names: []string{"a"}, Selector: sel}, Unmeshed: true}, []string{"x->web:80"}, "",
			`external "x": namespaces takes names or a selector, not both`},
		{"name clash", v1alpha1.External{Name: "web", CIDRs: []string{"10.0.0.0/8"}}, []string{"api->web:80"}, "",
			`external "web": declared more than once`},
		{"host calls", v1alpha1.External{Name: "x", Hosts: []string{"a.example.com"}}, []string{"x->web:443"}, "",
			`edge "x->web:443": external peer "x" can only be called (hosts and kubernetesAPI call nothing of the graph's)`},
		{"cidr caller in the mesh", v1alpha1.External{Name: "x", CIDRs: []string{"10.0.0.0/8"}}, []string{"x->web:443"}, "",
			`edge "x->web:443": callers from "x" have no identity Istio can check: set unmeshed: true on it (it opens web's ports of this edge to plain text) or name its namespaces`},
		{"selector caller in the mesh", v1alpha1.External{Name: "x", Namespaces: &v1alpha1.ExternalNamespaces{Selector: sel}}, []string{"x->web:443"}, "",
			`edge "x->web:443": callers from "x" have no identity Istio can check: set unmeshed: true on it (it opens web's ports of this edge to plain text) or name its namespaces`},
		{"named port for plain text", v1alpha1.External{Name: "x", CIDRs: []string{"10.0.0.0/8"}, Unmeshed: true}, []string{"x->web:http"}, "",
			`edge "x->web:http": port "http": a plain-text exception for unmeshed callers needs a port number (Istio's portLevelMtls takes numbers)`},
		{"named port to an external", v1alpha1.External{Name: "x", CIDRs: []string{"10.0.0.0/8"}}, []string{"web->x:https"}, "",
			`edge "web->x:https": port "https": external peer "x" has no container port names, give the number`},
		{"path to an external", v1alpha1.External{Name: "x", Hosts: []string{"a.example.com"}}, []string{"web->x:443/v1"}, "",
			`edge "web->x:443/v1": paths and methods on an edge to external peer "x" are not enforced: nothing of the mesh runs at its end`},
		{"namespace on an external", v1alpha1.External{Name: "x", CIDRs: []string{"10.0.0.0/8"}}, []string{"web->other/x:443"}, "",
			`edge "web->other/x:443": external peer "x" has no namespace`},
		{"two externals", v1alpha1.External{Name: "x", CIDRs: []string{"10.0.0.0/8"}, Unmeshed: true}, []string{"x->x2:443"}, "",
			`edge "x->x2:443": both ends are external peers: an edge needs a service of the graph at one end`},
		{"without a mesh, no identity needed", v1alpha1.External{Name: "x", CIDRs: []string{"10.0.0.0/8"}}, []string{"x->web:http"}, v1alpha1.MeshNone, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sg := serviceGraph(svcs("web", "api"), tc.edges)
			sg.Spec.Mesh = tc.mesh
			sg.Spec.External = []v1alpha1.External{tc.ext, {Name: "x2", CIDRs: []string{"192.0.2.0/24"}}}
			_, err := Build(sg)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tc.want {
				t.Errorf("Build:\n got: %s\nwant: %s", got, tc.want)
			}
		})
	}
}

// A service refused for its own problem is not reported again, as undeclared, by every edge that
// names it.
func TestNoCascadeAfterABadService(t *testing.T) {
	services := append(svcs("web", "api"), v1alpha1.Service{Name: "exprs", Selector: &metav1.LabelSelector{
		MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tier", Operator: metav1.LabelSelectorOpIn, Values: []string{"db"}}},
	}})
	_, err := Build(serviceGraph(services, []string{"web->exprs:5432", "exprs->api:8080", "web->api:8080"}))
	want := `service "exprs": selector.matchExpressions is not supported: Istio workload selectors take matchLabels only`
	if err == nil || err.Error() != want {
		t.Errorf("Build:\n got: %v\nwant: %s", err, want)
	}
}

func TestRemoteServices(t *testing.T) {
	east := func(name string, cidrs ...string) v1alpha1.Service {
		return v1alpha1.Service{Name: name, Namespace: "payments", Remote: &v1alpha1.Remote{TrustDomain: "east.example.com", CIDRs: cidrs}}
	}
	g := mustBuild(t, serviceGraph(append(svcs("api"), east("checkout")), []string{"payments/checkout->api:8080"}))
	checkout, _ := g.Service("checkout")
	want := &Remote{TrustDomain: "east.example.com", GatewayNamespace: "istio-system", GatewayLabels: map[string]string{"istio": "eastwestgateway"}}
	if diff := cmp.Diff(want, checkout.Remote); diff != "" || g.Local(checkout) {
		t.Errorf("checkout (-want +got):\n%s (local: %v)", diff, g.Local(checkout))
	}
	sameNamespace := east("ledger")
	sameNamespace.Namespace = ""
	for _, tc := range []struct {
		name     string
		services []v1alpha1.Service
		edges    []string
		want     string
	}{
		{"called without addresses", []v1alpha1.Service{east("checkout")}, []string{"api->payments/checkout:8080"},
			`edge "api->payments/checkout:8080": remote service "checkout" is called but has no remote.cidrs: the addresses this cluster reaches it at (the other cluster's east-west gateway, or its pods on a flat network)`},
		{"a named port", []v1alpha1.Service{east("checkout", "192.0.2.0/24")}, []string{"api->payments/checkout:http"},
			`edge "api->payments/checkout:http": port "http": remote service "checkout" has no container port names here, give the number`},
		{"two remote ends", []v1alpha1.Service{east("checkout"), sameNamespace}, []string{"payments/checkout->ledger:8080"},
			`edge "payments/checkout->ledger:8080": a remote service's edges go to or from a service of this cluster's namespace "shop"`},
		{"a bad trust domain", []v1alpha1.Service{{Name: "checkout", Remote: &v1alpha1.Remote{TrustDomain: "East"}}}, []string{"checkout->api:8080"},
			`service "checkout": remote.trustDomain "East": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Build(serviceGraph(append(svcs("api"), tc.services...), tc.edges))
			if err == nil || err.Error() != tc.want {
				t.Errorf("Build:\n got: %v\nwant: %s", err, tc.want)
			}
		})
	}
}

// What CiliumNetworkPolicies cannot say is an invalid spec with networkPolicy Cilium only: a
// ServiceAccount that is no label value, and a path with a query string (Istio's reading matches no
// request; Cilium's proxy would match some).
func TestCiliumLimits(t *testing.T) {
	long := strings.Repeat("a", 70)
	for _, api := range []v1alpha1.NetworkPolicyAPI{v1alpha1.NetworkPolicyKubernetes, v1alpha1.NetworkPolicyCilium} {
		sg := serviceGraph([]v1alpha1.Service{{Name: "web", ServiceAccount: long}, {Name: "api"}}, []string{"web->api:8080/search?q=1", "web->api:9090/a#b"})
		sg.Spec.NetworkPolicy = api
		_, err := Build(sg)
		if api == v1alpha1.NetworkPolicyKubernetes {
			if err != nil {
				t.Errorf("Kubernetes: %v", err)
			}
			continue
		}
		for _, want := range []string{`serviceAccount "` + long + `" cannot be selected by CiliumNetworkPolicies`,
			`edge "web->api:8080/search?q=1": path "/search?q=1" has a query string or fragment`, `path "/a#b" has a query string or fragment`} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("Cilium: %v, want %q", err, want)
			}
		}
	}
}

// With networkPolicy Cilium, one caller's port may not be written by name with paths and by number
// without (or the other way round): Cilium would resolve the name and take only HTTP on the number.
func TestCiliumPortAliases(t *testing.T) {
	for _, tc := range []struct {
		edges []string
		bad   bool
	}{
		{[]string{"web->api:http/a", "web->api:8080,9090"}, true},
		{[]string{"web->api:8080/a", "web->api:http,9090"}, true},
		{[]string{"web->api:http/a", "web->api:http,9090"}, false},
		{[]string{"web->api:8080/a", "web->api:8080,9090"}, false},
		{[]string{"web->api:http/a", "web->api:9090/b"}, false},
		{[]string{"web->api:http/a", "api->web:8080"}, false},
	} {
		sg := serviceGraph(svcs("web", "api"), tc.edges)
		sg.Spec.NetworkPolicy = v1alpha1.NetworkPolicyCilium
		_, err := Build(sg)
		if got := err != nil && strings.Contains(err.Error(), "write a port the same way"); got != tc.bad {
			t.Errorf("%v: %v", tc.edges, err)
		}
		sg.Spec.NetworkPolicy = ""
		if _, err := Build(sg); err != nil {
			t.Errorf("%v with Kubernetes NetworkPolicies: %v", tc.edges, err)
		}
	}
}
