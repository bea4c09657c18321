package eval

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/yaml"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/compiler"
	"github.com/servicegraph/servicegraph-operator/test/world"
)

func np(t *testing.T, spec string) *networkingv1.NetworkPolicy {
	t.Helper()
	obj := &networkingv1.NetworkPolicy{}
	if err := yaml.UnmarshalStrict([]byte("metadata: {name: np, namespace: shop}\nspec:\n"+spec), obj); err != nil {
		t.Fatal(err)
	}
	return obj
}

func ap(t *testing.T, name, namespace, spec string) *securityv1.AuthorizationPolicy {
	t.Helper()
	obj := &securityv1.AuthorizationPolicy{}
	if err := yaml.UnmarshalStrict([]byte("metadata: {name: "+name+", namespace: "+namespace+"}\nspec:\n"+spec), obj); err != nil {
		t.Fatal(err)
	}
	return obj
}

func pa(t *testing.T, name, namespace, spec string) *securityv1.PeerAuthentication {
	t.Helper()
	obj := &securityv1.PeerAuthentication{}
	if err := yaml.UnmarshalStrict([]byte("metadata: {name: "+name+", namespace: "+namespace+"}\nspec:\n"+spec), obj); err != nil {
		t.Fatal(err)
	}
	return obj
}

var (
	web = &Workload{Namespace: "shop", Name: "web", Labels: map[string]string{"app": "web"}, IP: "10.0.0.1", ServiceAccount: "web", Meshed: true}
	api = &Workload{Namespace: "shop", Name: "api", Labels: map[string]string{"app": "api"}, IP: "10.0.0.2", ServiceAccount: "api", Meshed: true,
		Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}}
	prom = &Workload{Namespace: "monitoring", Name: "prometheus", Labels: map[string]string{"app": "prometheus"}, IP: "10.0.1.1", ServiceAccount: "prometheus"}
)

func tcp(from Endpoint, to *Workload, port int32) Request {
	return Request{From: from, To: to, Port: port, Protocol: corev1.ProtocolTCP}
}

// stepOf returns a verdict's step for a layer.
func stepOf(v Verdict, l Layer) Step {
	for _, s := range v.Steps {
		if s.Layer == l {
			return s
		}
	}
	return Step{}
}

func TestNetworkPolicies(t *testing.T) {
	ns := map[string]map[string]string{"monitoring": {"team": "obs"}}
	for _, tc := range []struct {
		name     string
		policies []string
		req      Request
		layer    Layer
		allowed  bool
		by       string
	}{
		{"no policy: not isolated", nil, tcp(Endpoint{Workload: web}, api, 8080), Ingress, true, "no NetworkPolicy selects shop/api for ingress: not isolated"},
		{"default-deny", []string{"  podSelector: {}\n  policyTypes: [Ingress, Egress]\n"}, tcp(Endpoint{Workload: web}, api, 8080), Ingress, false, "no rule allows it"},
		{"default-deny, egress", []string{"  podSelector: {}\n  policyTypes: [Ingress, Egress]\n"}, tcp(Endpoint{Workload: web}, api, 8080), Egress, false, "no rule allows it"},
		{"from a pod", []string{"  podSelector: {matchLabels: {app: api}}\n  ingress: [{from: [{podSelector: {matchLabels: {app: web}}}], ports: [{port: 8080}]}]\n"},
			tcp(Endpoint{Workload: web}, api, 8080), Ingress, true, "NetworkPolicy shop/np spec.ingress[0]"},
		{"wrong port", []string{"  podSelector: {matchLabels: {app: api}}\n  ingress: [{from: [{podSelector: {matchLabels: {app: web}}}], ports: [{port: 8080}]}]\n"},
			tcp(Endpoint{Workload: web}, api, 9090), Ingress, false, "no rule allows it"},
		{"wrong protocol", []string{"  podSelector: {matchLabels: {app: api}}\n  ingress: [{from: [{podSelector: {matchLabels: {app: web}}}], ports: [{port: 8080}]}]\n"},
			Request{From: Endpoint{Workload: web}, To: api, Port: 8080, Protocol: corev1.ProtocolUDP}, Ingress, false, "no rule allows it"},
		{"a named port", []string{"  podSelector: {matchLabels: {app: api}}\n  ingress: [{from: [{podSelector: {matchLabels: {app: web}}}], ports: [{port: http}]}]\n"},
			tcp(Endpoint{Workload: web}, api, 8080), Ingress, true, "NetworkPolicy shop/np spec.ingress[0]"},
		{"a port range", []string{"  podSelector: {matchLabels: {app: api}}\n  ingress: [{ports: [{port: 8000, endPort: 8100}]}]\n"},
			tcp(Endpoint{Workload: web}, api, 8080), Ingress, true, "NetworkPolicy shop/np spec.ingress[0]"},
		{"a pod of another namespace needs a namespaceSelector", []string{"  podSelector: {matchLabels: {app: api}}\n  ingress: [{from: [{podSelector: {matchLabels: {app: prometheus}}}]}]\n"},
			tcp(Endpoint{Workload: prom}, api, 8080), Ingress, false, "no rule allows it"},
		{"by namespace label", []string{"  podSelector: {matchLabels: {app: api}}\n  ingress: [{from: [{namespaceSelector: {matchLabels: {team: obs}}, podSelector: {matchLabels: {app: prometheus}}}]}]\n"},
			tcp(Endpoint{Workload: prom}, api, 8080), Ingress, true, "NetworkPolicy shop/np spec.ingress[0]"},
		{"an address in the block", []string{"  podSelector: {matchLabels: {app: api}}\n  ingress: [{from: [{ipBlock: {cidr: 203.0.113.0/24, except: [203.0.113.128/25]}}]}]\n"},
			tcp(Endpoint{IP: "203.0.113.7"}, api, 8080), Ingress, true, "NetworkPolicy shop/np spec.ingress[0]"},
		{"an address in the except", []string{"  podSelector: {matchLabels: {app: api}}\n  ingress: [{from: [{ipBlock: {cidr: 203.0.113.0/24, except: [203.0.113.128/25]}}]}]\n"},
			tcp(Endpoint{IP: "203.0.113.200"}, api, 8080), Ingress, false, "no rule allows it"},
		{"egress only", []string{"  podSelector: {matchLabels: {app: api}}\n  policyTypes: [Egress]\n"}, tcp(Endpoint{Workload: web}, api, 8080), Ingress, true,
			"no NetworkPolicy selects shop/api for ingress: not isolated"},
		{"the union of policies", []string{"  podSelector: {}\n  policyTypes: [Ingress]\n", "  podSelector: {matchLabels: {app: api}}\n  ingress: [{}]\n"},
			tcp(Endpoint{IP: "198.51.100.1"}, api, 8080), Ingress, true, "NetworkPolicy shop/np spec.ingress[0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &Cluster{Namespaces: ns}
			for _, p := range tc.policies {
				c.NetworkPolicies = append(c.NetworkPolicies, np(t, p))
			}
			s := stepOf(c.Check(tc.req), tc.layer)
			if s.Allowed != tc.allowed || s.By != tc.by {
				t.Errorf("%s: allowed %v by %q, want %v by %q (%s)", tc.layer, s.Allowed, s.By, tc.allowed, tc.by, s.Detail)
			}
		})
	}
}

func TestMTLS(t *testing.T) {
	unmeshed := &Workload{Namespace: "shop", Name: "legacy", Labels: map[string]string{"app": "legacy"}}
	for _, tc := range []struct {
		name     string
		policies []*securityv1.PeerAuthentication
		from     *Workload
		port     int32
		allowed  bool
		by       string
	}{
		{"Istio's default", nil, unmeshed, 8080, true, "no PeerAuthentication: Istio's default PERMISSIVE"},
		{"STRICT refuses plain text", []*securityv1.PeerAuthentication{pa(t, "shop", "shop", "  mtls: {mode: STRICT}\n")}, unmeshed, 8080, false, "PeerAuthentication shop/shop"},
		{"STRICT admits the mesh", []*securityv1.PeerAuthentication{pa(t, "shop", "shop", "  mtls: {mode: STRICT}\n")}, web, 8080, true, "PeerAuthentication shop/shop"},
		{"the root namespace", []*securityv1.PeerAuthentication{pa(t, "default", "istio-system", "  mtls: {mode: STRICT}\n")}, unmeshed, 8080, false, "PeerAuthentication istio-system/default"},
		{"a port exception", []*securityv1.PeerAuthentication{pa(t, "shop", "shop", "  mtls: {mode: STRICT}\n"),
			pa(t, "api", "shop", "  selector: {matchLabels: {app: api}}\n  portLevelMtls: {9090: {mode: PERMISSIVE}}\n")}, unmeshed, 9090, true, "PeerAuthentication shop/api portLevelMtls[9090]"},
		{"the exception is one port", []*securityv1.PeerAuthentication{pa(t, "shop", "shop", "  mtls: {mode: STRICT}\n"),
			pa(t, "api", "shop", "  selector: {matchLabels: {app: api}}\n  portLevelMtls: {9090: {mode: PERMISSIVE}}\n")}, unmeshed, 8080, false, "PeerAuthentication shop/shop"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &Cluster{PeerAuthentications: tc.policies}
			s := stepOf(c.Check(tcp(Endpoint{Workload: tc.from}, api, tc.port)), MTLS)
			if s.Allowed != tc.allowed || s.By != tc.by {
				t.Errorf("allowed %v by %q, want %v by %q (%s)", s.Allowed, s.By, tc.allowed, tc.by, s.Detail)
			}
		})
	}
}

func TestAuthorization(t *testing.T) {
	allowWeb := "  selector: {matchLabels: {app: api}}\n  rules: [{from: [{source: {principals: [cluster.local/ns/shop/sa/web]}}], to: [{operation: {ports: ['8080']}}]}]\n"
	get := &HTTP{Path: "/orders/1", Method: "GET"}
	for _, tc := range []struct {
		name     string
		policies []*securityv1.AuthorizationPolicy
		from     Endpoint
		port     int32
		http     *HTTP
		allowed  bool
		by       string
	}{
		{"no policy", nil, Endpoint{Workload: web}, 8080, nil, true, "no ALLOW policy applies: allowed"},
		{"allow-nothing", []*securityv1.AuthorizationPolicy{ap(t, "deny-all", "shop", "  {}\n")}, Endpoint{Workload: web}, 8080, nil, false, "allow-nothing: ALLOW policies without rules"},
		{"the caller's principal", []*securityv1.AuthorizationPolicy{ap(t, "deny-all", "shop", "  {}\n"), ap(t, "api", "shop", allowWeb)},
			Endpoint{Workload: web}, 8080, nil, true, "AuthorizationPolicy shop/api spec.rules[0]"},
		{"another principal", []*securityv1.AuthorizationPolicy{ap(t, "api", "shop", allowWeb)},
			Endpoint{Workload: prom}, 8080, nil, false, "no ALLOW rule matches (the caller presents no identity)"},
		{"another port", []*securityv1.AuthorizationPolicy{ap(t, "api", "shop", allowWeb)}, Endpoint{Workload: web}, 9090, nil, false, "no ALLOW rule matches"},
		{"DENY first", []*securityv1.AuthorizationPolicy{ap(t, "api", "shop", allowWeb),
			ap(t, "no-web", "shop", "  action: DENY\n  rules: [{from: [{source: {namespaces: [shop]}}]}]\n")}, Endpoint{Workload: web}, 8080, nil, false, "AuthorizationPolicy shop/no-web spec.rules[0]"},
		{"a path prefix", []*securityv1.AuthorizationPolicy{ap(t, "api", "shop", "  rules: [{to: [{operation: {paths: [/orders/*], methods: [GET]}}]}]\n")},
			Endpoint{Workload: web}, 8080, get, true, "AuthorizationPolicy shop/api spec.rules[0]"},
		{"a path on TCP matches nothing", []*securityv1.AuthorizationPolicy{ap(t, "api", "shop", "  rules: [{to: [{operation: {paths: [/orders/*]}}]}]\n")},
			Endpoint{Workload: web}, 8080, nil, false, "no ALLOW rule matches"},
		{"a DENY's path on TCP denies the connection", []*securityv1.AuthorizationPolicy{ap(t, "api", "shop", "  action: DENY\n  rules: [{to: [{operation: {paths: [/admin]}}]}]\n")},
			Endpoint{Workload: web}, 8080, nil, false, "AuthorizationPolicy shop/api spec.rules[0]"},
		{"notPaths", []*securityv1.AuthorizationPolicy{ap(t, "api", "shop", "  rules: [{to: [{operation: {notPaths: [/orders/*]}}]}]\n")},
			Endpoint{Workload: web}, 8080, get, false, "no ALLOW rule matches"},
		{"a wildcard principal", []*securityv1.AuthorizationPolicy{ap(t, "api", "shop", "  rules: [{from: [{source: {principals: [cluster.local/ns/shop/*]}}]}]\n")},
			Endpoint{Workload: web}, 8080, nil, true, "AuthorizationPolicy shop/api spec.rules[0]"},
		{"an address", []*securityv1.AuthorizationPolicy{ap(t, "api", "shop", "  rules: [{from: [{source: {ipBlocks: [203.0.113.0/24]}}]}]\n")},
			Endpoint{IP: "203.0.113.9"}, 8080, nil, true, "AuthorizationPolicy shop/api spec.rules[0]"},
		{"a dry run decides nothing", []*securityv1.AuthorizationPolicy{{}}, Endpoint{Workload: web}, 8080, nil, true, "no ALLOW policy applies: allowed"},
		{"a condition on the source namespace", []*securityv1.AuthorizationPolicy{ap(t, "api", "shop", "  rules: [{when: [{key: source.namespace, values: [shop]}]}]\n")},
			Endpoint{Workload: web}, 8080, nil, true, "AuthorizationPolicy shop/api spec.rules[0]"},
		{"a CUSTOM provider decides first", []*securityv1.AuthorizationPolicy{ap(t, "ext", "shop", "  action: CUSTOM\n  provider: {name: opa}\n  rules: [{}]\n"), ap(t, "deny-all", "shop", "  {}\n")},
			Endpoint{Workload: web}, 8080, nil, false, "allow-nothing: ALLOW policies without rules"},
		{"a mesh-wide policy", []*securityv1.AuthorizationPolicy{ap(t, "mesh", "istio-system", "  action: DENY\n  rules: [{to: [{operation: {ports: ['8080']}}]}]\n")},
			Endpoint{Workload: web}, 8080, nil, false, "AuthorizationPolicy istio-system/mesh spec.rules[0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			policies := tc.policies
			if tc.name == "a dry run decides nothing" {
				p := ap(t, "deny-all", "shop", "  {}\n")
				p.Annotations = map[string]string{"istio.io/dry-run": "true"}
				policies = []*securityv1.AuthorizationPolicy{p}
			}
			c := &Cluster{AuthorizationPolicies: policies}
			s := stepOf(c.Check(Request{From: tc.from, To: api, Port: tc.port, Protocol: corev1.ProtocolTCP, HTTP: tc.http}), Authorization)
			if s.Allowed != tc.allowed || s.By != tc.by {
				t.Errorf("allowed %v by %q, want %v by %q (%s)", s.Allowed, s.By, tc.allowed, tc.by, s.Detail)
			}
		})
	}
}

// worldCluster is a world's workloads and its graphs' compiled objects, every service in the mesh.
func worldCluster(t *testing.T, w *world.World, graphs []*v1alpha1.ServiceGraph) (*Cluster, []*Workload) {
	t.Helper()
	c := &Cluster{}
	for _, sg := range graphs {
		var facts compiler.Facts
		if !w.Istio {
			facts.Missing = compiler.Builtin().KindsOf(compiler.LayerIstio)
		}
		res, err := compiler.Compile(sg, compiler.DefaultOptions(), facts)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range res.Objects() {
			c.Add(o)
		}
	}
	var named []corev1.ContainerPort
	for _, n := range slices.Sorted(maps.Keys(world.NamedPorts)) {
		named = append(named, corev1.ContainerPort{Name: n, ContainerPort: world.NamedPorts[n]})
	}
	workloads := []*Workload{
		{Namespace: "kube-system", Name: "kube-dns", Labels: map[string]string{"k8s-app": "kube-dns"}},
		{Namespace: "istio-system", Name: "istiod", Labels: map[string]string{"app": "istiod"}},
	}
	for _, s := range w.Services {
		sa := s.ServiceAccount
		if sa == "" {
			sa = s.Name
		}
		workloads = append(workloads, &Workload{Namespace: s.Namespace, Name: s.Name, Labels: s.Labels(), ServiceAccount: sa, Meshed: w.Istio, Ports: named})
	}
	return c, workloads
}

// The evaluator reads the compiled NetworkPolicies of random worlds as the graphs say (the same
// expectation netpol-analyzer is held to), and the whole stack (L4, mutual TLS and authorization)
// lets every edge through, an HTTP edge as an HTTP request on its path, and nothing else between
// the graphs' services.
func TestEvaluatorAgreesWithRandomGraphs(t *testing.T) {
	rng := rand.New(rand.NewPCG(18, 2026))
	checked := 0
	for i := range 25 {
		w := world.Random(rng, world.Options{MaxServices: 12, Namespaces: 3})
		w.Istio = i%2 == 0
		graphs := w.Graphs(rng)
		c, workloads := worldCluster(t, w, graphs)
		ports := worldPorts(w)
		for _, p := range world.NamedPorts {
			ports[p] = corev1.ProtocolTCP
		}
		checked += agreesWithWorld(t, i, w, c, workloads, ports)
	}
	t.Logf("%s connections judged", fmt.Sprint(checked))
}

// worldPorts are the ports a world's edges use, with DNS's, istiod's and one no edge uses.
func worldPorts(w *world.World) map[int32]corev1.Protocol {
	ports := map[int32]corev1.Protocol{53: corev1.ProtocolUDP, 15012: corev1.ProtocolTCP, 7777: corev1.ProtocolTCP}
	for _, e := range w.Edges {
		for _, p := range e.Ports {
			ports[world.PortNumber(p.Port)] = world.L4(p.Protocol)
		}
	}
	return ports
}

// agreesWithWorld checks every pair of the world's workloads on every port at layer 4 against the
// world's own list of connections, and each edge end to end (with a path its pattern matches); it
// returns how many connections it judged.
func agreesWithWorld(t *testing.T, i int, w *world.World, c *Cluster, workloads []*Workload, ports map[int32]corev1.Protocol) int {
	t.Helper()
	want, checked := w.Expected(), 0
	for _, from := range workloads {
		for _, to := range workloads {
			if from == to {
				continue
			}
			for port, proto := range ports {
				v := c.Check(Request{From: Endpoint{Workload: from}, To: to, Port: port, Protocol: proto})
				l4 := stepOf(v, Egress).Allowed && stepOf(v, Ingress).Allowed
				governed := slices.Contains(w.Namespaces, from.Namespace) || slices.Contains(w.Namespaces, to.Namespace)
				expected := want[world.Connection(from.String(), to.String(), proto, port)] || !governed
				if l4 != expected {
					t.Errorf("world %d: %s -> %s %s/%d: L4 %v, the graph says %v\n%+v", i, from, to, proto, port, l4, expected, v.Steps)
				}
				checked++
			}
		}
	}
	for _, e := range w.Edges {
		from, to := workloads[e.From+2], workloads[e.To+2]
		for _, p := range e.Ports {
			req := Request{From: Endpoint{Workload: from}, To: to, Port: world.PortNumber(p.Port), Protocol: world.L4(p.Protocol)}
			if e.Path != "" {
				req.HTTP = &HTTP{Path: strings.Replace(e.Path, "*", "x", 1), Method: "GET"} // a path the edge's pattern matches
			}
			if v := c.Check(req); !v.Allowed {
				t.Errorf("world %d: edge %s -> %s %d%s is refused: %+v", i, from, to, req.Port, e.Path, v.Steps)
			}
			checked++
		}
	}
	return checked
}
