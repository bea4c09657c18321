package eval

import (
	"math/rand/v2"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/cilium"
	"github.com/servicegraph/servicegraph-operator/test/world"
)

func cnp(t *testing.T, name, spec string) *cilium.CiliumNetworkPolicy {
	t.Helper()
	obj := &cilium.CiliumNetworkPolicy{}
	if err := yaml.UnmarshalStrict([]byte("metadata: {name: "+name+", namespace: shop}\nspec: "+spec), obj); err != nil {
		t.Fatal(err)
	}
	return obj
}

// Policies as the compiler writes them for Cilium (internal/compiler/testdata/golden/cilium.yaml).
const (
	ciliumDeny = "{endpointSelector: {}, ingress: [{}], egress: [{}]}"
	ciliumDNS  = "{endpointSelector: {}, egress: [{toEndpoints: [{matchLabels: {k8s-app: kube-dns, 'k8s:io.kubernetes.pod.namespace': kube-system}}], " +
		"toPorts: [{ports: [{port: '53', protocol: UDP}, {port: '53', protocol: TCP}], rules: {dns: [{matchPattern: '*'}]}}]}]}"
	ciliumAPIFromWeb = "{endpointSelector: {matchLabels: {app: api}}, ingress: [{fromEndpoints: [{matchLabels: {app: web, 'k8s:io.cilium.k8s.policy.serviceaccount': web}}], " +
		"toPorts: [{ports: [{port: '8080', protocol: TCP}]}]}]}"
	ciliumAPIPaths = "{endpointSelector: {matchLabels: {app: api}}, ingress: [{fromEndpoints: [{matchLabels: {app: web}}], " +
		"toPorts: [{ports: [{port: '8080', protocol: TCP}], rules: {http: [{path: '/orders(\\?.*)?', method: GET}, {path: '/carts/.*'}]}}]}]}"
	ciliumAPIEgress = "{endpointSelector: {matchLabels: {app: api}}, egress: [{toFQDNs: [{matchName: api.stripe.com}], toPorts: [{ports: [{port: '443', protocol: TCP}]}]}, " +
		"{toEntities: [kube-apiserver], toPorts: [{ports: [{port: '443', protocol: TCP}]}]}, {toCIDRSet: [{cidr: 203.0.113.0/24}]}]}"
)

var (
	kubeDNS    = &Workload{Namespace: "kube-system", Name: "kube-dns", Labels: map[string]string{"k8s-app": "kube-dns"}}
	stripe     = &Workload{Name: "stripe", Host: "api.stripe.com"}
	apiServer  = &Workload{Name: "kubernetes", IP: "192.0.2.1", APIServer: true}
	webOtherSA = &Workload{Namespace: "shop", Name: "web-admin", Labels: map[string]string{"app": "web"}, ServiceAccount: "admin"}
)

func TestCiliumNetworkPolicies(t *testing.T) {
	allowWebNP := "  podSelector: {matchLabels: {app: api}}\n  ingress: [{from: [{podSelector: {matchLabels: {app: web}}}], ports: [{port: 8080}]}]\n"
	denyNP := "  podSelector: {}\n  policyTypes: [Ingress, Egress]\n"
	get := func(path string) *HTTP { return &HTTP{Path: path, Method: "GET"} }
	for _, tc := range []struct {
		name    string
		cnps    []string
		nps     []string
		req     Request
		layer   Layer
		allowed bool
		by      string
		detail  string // a part of the step's detail
	}{
		{"no policy", nil, nil, tcp(Endpoint{Workload: web}, api, 8080), Ingress, true, "no NetworkPolicy selects shop/api for ingress: not isolated", ""},
		{"default deny", []string{ciliumDeny}, nil, tcp(Endpoint{Workload: web}, api, 8080), Ingress, false, "no rule allows it",
			"Cilium policies selecting shop/api for ingress: p0"},
		{"default deny, egress", []string{ciliumDeny}, nil, tcp(Endpoint{Workload: web}, api, 8080), Egress, false, "no rule allows it", ""},
		{"another namespace is not isolated", []string{ciliumDeny}, nil, tcp(Endpoint{Workload: web}, prom, 8080), Ingress, true,
			"no NetworkPolicy or CiliumNetworkPolicy selects monitoring/prometheus for ingress: not isolated", ""},
		{"the caller's labels and ServiceAccount", []string{ciliumDeny, ciliumAPIFromWeb}, nil, tcp(Endpoint{Workload: web}, api, 8080), Ingress, true,
			"CiliumNetworkPolicy shop/p1 spec.ingress[0]", ""},
		{"another ServiceAccount", []string{ciliumDeny, ciliumAPIFromWeb}, nil, tcp(Endpoint{Workload: webOtherSA}, api, 8080), Ingress, false, "no rule allows it", ""},
		{"a named port", []string{ciliumDeny, strings.Replace(ciliumAPIFromWeb, "'8080'", "HTTP", 1)}, nil,
			Request{From: Endpoint{Workload: web}, To: api, PortName: "http", Protocol: corev1.ProtocolTCP}, Ingress, true, "CiliumNetworkPolicy shop/p1 spec.ingress[0]", ""},
		{"a CNP allows what a NetworkPolicy isolates", []string{ciliumAPIFromWeb}, []string{denyNP}, tcp(Endpoint{Workload: web}, api, 8080), Ingress, true,
			"CiliumNetworkPolicy shop/p0 spec.ingress[0]", ""},
		{"a NetworkPolicy allows what a CNP isolates", []string{ciliumDeny}, []string{allowWebNP}, tcp(Endpoint{Workload: web}, api, 8080), Ingress, true,
			"NetworkPolicy shop/np spec.ingress[0]", ""},
		{"both isolate, neither allows", []string{ciliumDeny}, []string{denyNP}, tcp(Endpoint{Workload: web}, api, 9090), Ingress, false, "no rule allows it",
			"NetworkPolicies selecting shop/api for ingress: np; Cilium policies selecting shop/api for ingress: p0"},
		{"an HTTP rule matches", []string{ciliumDeny, ciliumAPIPaths}, nil, Request{From: Endpoint{Workload: web}, To: api, Port: 8080, Protocol: corev1.ProtocolTCP, HTTP: get("/orders?id=1")},
			Ingress, true, "CiliumNetworkPolicy shop/p1 spec.ingress[0]", `HTTP rule GET /orders(\?.*)? matches`},
		{"the method must match", []string{ciliumDeny, ciliumAPIPaths}, nil, Request{From: Endpoint{Workload: web}, To: api, Port: 8080, Protocol: corev1.ProtocolTCP, HTTP: &HTTP{Path: "/orders", Method: "DELETE"}},
			Ingress, false, "no HTTP rule matches", "Cilium's proxy refuses DELETE /orders"},
		{"no HTTP rule matches the path", []string{ciliumDeny, ciliumAPIPaths}, nil, Request{From: Endpoint{Workload: web}, To: api, Port: 8080, Protocol: corev1.ProtocolTCP, HTTP: get("/admin")},
			Ingress, false, "no HTTP rule matches", `HTTP rules GET /orders(\?.*)?, any method /carts/.*`},
		{"without a request: layer 4", []string{ciliumDeny, ciliumAPIPaths}, nil, tcp(Endpoint{Workload: web}, api, 8080), Ingress, true,
			"CiliumNetworkPolicy shop/p1 spec.ingress[0]", "admitted at layer 4"},
		{"a rule without HTTP rules for the same caller lets every request through", []string{ciliumDeny, ciliumAPIPaths, ciliumAPIFromWeb}, nil,
			Request{From: Endpoint{Workload: web}, To: api, Port: 8080, Protocol: corev1.ProtocolTCP, HTTP: get("/admin")}, Ingress, true, "CiliumNetworkPolicy shop/p2 spec.ingress[0]", ""},
		{"so does a NetworkPolicy", []string{ciliumDeny, ciliumAPIPaths}, []string{allowWebNP},
			Request{From: Endpoint{Workload: web}, To: api, Port: 8080, Protocol: corev1.ProtocolTCP, HTTP: get("/admin")}, Ingress, true, "NetworkPolicy shop/np spec.ingress[0]", ""},
		{"DNS rules: layer 4", []string{ciliumDeny, ciliumDNS}, nil, Request{From: Endpoint{Workload: api}, To: kubeDNS, Port: 53, Protocol: corev1.ProtocolUDP}, Egress, true,
			"CiliumNetworkPolicy shop/p1 spec.egress[0]", "answers lookups of * only"},
		{"toFQDNs", []string{ciliumDeny, ciliumDNS, ciliumAPIEgress}, nil, tcp(Endpoint{Workload: api}, stripe, 443), Egress, true,
			"CiliumNetworkPolicy shop/p2 spec.egress[0]", ""},
		{"toFQDNs, another host", []string{ciliumDeny, ciliumDNS, ciliumAPIEgress}, nil, tcp(Endpoint{Workload: api}, &Workload{Host: "evil.example"}, 443), Egress, false,
			"no rule allows it", ""},
		{"toFQDNs needs the lookup seen", []string{ciliumDeny, strings.Replace(ciliumDNS, ", rules: {dns: [{matchPattern: '*'}]}", "", 1), ciliumAPIEgress}, nil,
			tcp(Endpoint{Workload: api}, stripe, 443), Egress, false, "no rule allows it", "toFQDNs cannot match api.stripe.com"},
		{"the destination outside has no ingress policy", []string{ciliumDeny}, nil, tcp(Endpoint{Workload: api}, stripe, 443), Ingress, true,
			"the destination is outside the cluster: no ingress policy", ""},
		{"kube-apiserver", []string{ciliumDeny, ciliumAPIEgress}, nil, tcp(Endpoint{Workload: api}, apiServer, 443), Egress, true, "CiliumNetworkPolicy shop/p1 spec.egress[1]", ""},
		{"a CIDR", []string{ciliumDeny, ciliumAPIEgress}, nil, tcp(Endpoint{Workload: api}, &Workload{IP: "203.0.113.9"}, 5432), Egress, true, "CiliumNetworkPolicy shop/p1 spec.egress[2]", ""},
		{"a CIDR selects no pod", []string{ciliumDeny, strings.Replace(ciliumAPIEgress, "203.0.113.0/24", "10.0.0.0/8", 1)}, nil, tcp(Endpoint{Workload: api}, web, 8080), Egress, false, "no rule allows it", ""},
		{"from outside", []string{ciliumDeny, "{endpointSelector: {}, ingress: [{fromEntities: [world], toPorts: [{ports: [{port: '8080', protocol: TCP}]}]}]}"}, nil,
			tcp(Endpoint{IP: "198.51.100.1"}, api, 8080), Ingress, true, "CiliumNetworkPolicy shop/p1 spec.ingress[0]", ""},
		{"a deny rule wins over a NetworkPolicy", []string{"{endpointSelector: {}, ingressDeny: [{fromEndpoints: [{matchLabels: {app: web}}]}]}"}, []string{allowWebNP},
			tcp(Endpoint{Workload: web}, api, 8080), Ingress, false, "CiliumNetworkPolicy shop/p0 spec.ingressDeny[0]", "a deny rule wins"},
		{"a deny rule wins over an allow rule", []string{ciliumAPIFromWeb, "{endpointSelector: {}, ingress: [{fromEntities: [all]}], ingressDeny: [{toPorts: [{ports: [{port: '8080'}]}]}]}"}, nil,
			tcp(Endpoint{Workload: web}, api, 8080), Ingress, false, "CiliumNetworkPolicy shop/p1 spec.ingressDeny[0]", ""},
		{"a deny rule on another port", []string{ciliumAPIFromWeb, "{endpointSelector: {}, ingressDeny: [{toPorts: [{ports: [{port: '22'}]}]}]}"}, nil,
			tcp(Endpoint{Workload: web}, api, 8080), Ingress, true, "CiliumNetworkPolicy shop/p0 spec.ingress[0]", ""},
		{"specs", []string{"{endpointSelector: {matchLabels: {app: web}}, egress: [{}]}\nspecs: [" + ciliumAPIFromWeb + "]"}, nil,
			tcp(Endpoint{Workload: web}, api, 8080), Ingress, true, "CiliumNetworkPolicy shop/p0 specs[0].ingress[0]", ""},
		{"enableDefaultDeny off isolates nothing", []string{"{endpointSelector: {}, ingress: [{fromEntities: [world]}], enableDefaultDeny: {ingress: false}}"}, nil,
			tcp(Endpoint{Workload: web}, api, 8080), Ingress, true, "no NetworkPolicy or CiliumNetworkPolicy selects shop/api for ingress: not isolated", "enableDefaultDeny.ingress false"},
		{"but its rules add to another's default deny", []string{ciliumDeny, "{endpointSelector: {}, ingress: [{fromEntities: [cluster]}], enableDefaultDeny: {ingress: false}}"}, nil,
			tcp(Endpoint{Workload: web}, api, 8080), Ingress, true, "CiliumNetworkPolicy shop/p1 spec.ingress[0]", ""},
		{"toServices is not evaluated", []string{ciliumDeny, "{endpointSelector: {}, egress: [{toServices: [{k8sService: {serviceName: api, namespace: shop}}]}]}"}, nil,
			tcp(Endpoint{Workload: web}, api, 8080), Egress, false, "no rule allows it", "spec.egress[0].toServices is not evaluated"},
		{"mutual authentication is assumed", []string{ciliumDeny, strings.Replace(ciliumAPIFromWeb, "toPorts:", "authentication: {mode: required}, toPorts:", 1)}, nil,
			tcp(Endpoint{Workload: web}, api, 8080), Ingress, true, "CiliumNetworkPolicy shop/p1 spec.ingress[0]", "assumed: mutual authentication (mode required) succeeds"},
		{"a path not known: layer 4", []string{ciliumDeny, ciliumAPIPaths}, nil, Request{From: Endpoint{Workload: web}, To: api, Port: 8080, Protocol: corev1.ProtocolTCP, HTTP: &HTTP{Method: "GET"}},
			Ingress, true, "CiliumNetworkPolicy shop/p1 spec.ingress[0]", "the request's path is not known"},
		{"a policy Cilium refuses enforces nothing", []string{"{endpointSelector: {}, ingress: [{fromEntities: [everyone]}]}"}, nil,
			tcp(Endpoint{Workload: web}, api, 8080), Ingress, true, "no NetworkPolicy or CiliumNetworkPolicy selects shop/api for ingress: not isolated", "Cilium refuses it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &Cluster{Namespaces: map[string]map[string]string{"monitoring": {"team": "obs"}}}
			for i, spec := range tc.cnps {
				c.Add(cnp(t, "p"+string(rune('0'+i)), spec))
			}
			for _, spec := range tc.nps {
				c.Add(np(t, spec))
			}
			s := stepOf(c.Check(tc.req), tc.layer)
			if s.Allowed != tc.allowed || s.By != tc.by || !strings.Contains(s.Detail, tc.detail) {
				t.Errorf("%s: allowed %v by %q (%s), want %v by %q (%s)", tc.layer, s.Allowed, s.By, s.Detail, tc.allowed, tc.by, tc.detail)
			}
		})
	}
}

func TestCiliumClusterwideNetworkPolicies(t *testing.T) {
	ccnp := func(spec string) *cilium.CiliumClusterwideNetworkPolicy {
		obj := &cilium.CiliumClusterwideNetworkPolicy{}
		if err := yaml.UnmarshalStrict([]byte("metadata: {name: baseline}\nspec: "+spec), obj); err != nil {
			t.Fatal(err)
		}
		return obj
	}
	c := &Cluster{}
	c.Add(ccnp("{endpointSelector: {}, ingress: [{fromEndpoints: [{matchLabels: {app: prometheus}}]}]}"))
	for _, tc := range []struct {
		from    *Workload
		to      *Workload
		allowed bool
		by      string
	}{
		{prom, api, true, "CiliumClusterwideNetworkPolicy baseline spec.ingress[0]"}, // its selectors span namespaces
		{web, api, false, "no rule allows it"},
		{api, prom, false, "no rule allows it"}, // every namespace is isolated
	} {
		s := stepOf(c.Check(tcp(Endpoint{Workload: tc.from}, tc.to, 8080)), Ingress)
		if s.Allowed != tc.allowed || s.By != tc.by {
			t.Errorf("%s -> %s: allowed %v by %q (%s), want %v by %q", tc.from, tc.to, s.Allowed, s.By, s.Detail, tc.allowed, tc.by)
		}
	}
}

// The compiler's CiliumNetworkPolicies of random worlds admit what the graphs say and nothing else
// between their services, as its NetworkPolicies do (TestEvaluatorAgreesWithRandomGraphs).
func TestCiliumAgreesWithRandomGraphs(t *testing.T) {
	rng := rand.New(rand.NewPCG(20, 2026))
	checked := 0
	for i := range 15 {
		w := world.Random(rng, world.Options{MaxServices: 10, Namespaces: 3})
		w.Istio = i%2 == 0
		graphs := w.Graphs(rng)
		for _, sg := range graphs {
			sg.Spec.NetworkPolicy = v1alpha1.NetworkPolicyCilium
		}
		c, workloads := worldCluster(t, w, graphs)
		if len(c.NetworkPolicies) > 0 || len(c.CiliumNetworkPolicies) == 0 {
			t.Fatalf("world %d: %d NetworkPolicies and %d CiliumNetworkPolicies compiled", i, len(c.NetworkPolicies), len(c.CiliumNetworkPolicies))
		}
		checked += agreesWithWorld(t, i, w, c, workloads, worldPorts(w))
	}
	t.Logf("%d connections judged", checked)
}
