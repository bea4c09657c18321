package semantics

import (
	"maps"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/servicegraph/servicegraph-operator/internal/cilium"
)

func cnp(t *testing.T, namespace, spec string) *cilium.CiliumNetworkPolicy {
	t.Helper()
	p := &cilium.CiliumNetworkPolicy{}
	if err := yaml.UnmarshalStrict([]byte("metadata: {name: p, namespace: "+namespace+"}\nspec: "+spec), p); err != nil {
		t.Fatal(err)
	}
	return p
}

func sel(t *testing.T, s string) metav1.LabelSelector {
	t.Helper()
	var out metav1.LabelSelector
	if err := yaml.UnmarshalStrict([]byte(s), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

var (
	shopAPI = CiliumPod("shop", "api", map[string]string{"app": "api", "pod-template-hash": "5d8f"}, map[string]string{"team": "a"})
	shopWeb = CiliumPod("shop", "", map[string]string{"app": "web"}, nil)
	payGW   = CiliumPod("payments", "gw", map[string]string{"app": "gateway"}, map[string]string{"team": "pay"})
	outside = CiliumWorld("203.0.113.7", "")
	stripe  = CiliumWorld("198.51.100.1", "api.stripe.com")
	apiSrv  = CiliumAPIServer("192.0.2.1")
)

func TestCiliumPodLabels(t *testing.T) {
	got := CiliumPod("shop", "", map[string]string{
		"app": "api", "app.kubernetes.io/name": "api", "pod-template-hash": "5d8f", "controller-revision-hash": "1",
		"io.kubernetes.foo": "x", "kubernetes.io/x": "y", "topology.kubernetes.io/zone": "a", "k8s.io/z": "1",
		"io.cilium.k8s.policy.serviceaccount": "admin", // a pod cannot name its own ServiceAccount
		"annotation.x":                        "y", "etcd_node": "1",
	}, map[string]string{"team": "a", "beta.kubernetes.io/arch": "amd64"}).Labels
	want := map[string]string{
		"app": "api", "app.kubernetes.io/name": "api",
		"io.kubernetes.pod.namespace":                                "shop",
		"io.cilium.k8s.policy.serviceaccount":                        "default",
		"io.cilium.k8s.policy.cluster":                               "default",
		"io.cilium.k8s.namespace.labels.team":                        "a",
		"io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name": "shop",
	}
	if !maps.Equal(got.K8s, want) || len(got.Reserved) > 0 {
		t.Errorf("labels:\n got %v\nwant %v", got, want)
	}
}

func TestCiliumSelectorMatches(t *testing.T) {
	for _, tc := range []struct {
		name, sel string
		labels    CiliumLabels
		want      bool
	}{
		{"a key without a source matches a k8s label", "matchLabels: {app: api}", shopAPI.Labels, true},
		{"k8s: matches a k8s label", "matchLabels: {'k8s:app': api}", shopAPI.Labels, true},
		{"another source does not", "matchLabels: {'container:app': api}", shopAPI.Labels, false},
		{"wrong value", "matchLabels: {app: web}", shopAPI.Labels, false},
		{"a filtered-out label is not there", "matchLabels: {pod-template-hash: 5d8f}", shopAPI.Labels, false},
		{"ServiceAccount", "matchLabels: {'k8s:io.cilium.k8s.policy.serviceaccount': api}", shopAPI.Labels, true},
		{"namespace label", "matchLabels: {'k8s:io.cilium.k8s.namespace.labels.team': a}", shopAPI.Labels, true},
		{"In", "matchExpressions: [{key: app, operator: In, values: [web, api]}]", shopAPI.Labels, true},
		{"NotIn", "matchExpressions: [{key: app, operator: NotIn, values: [api]}]", shopAPI.Labels, false},
		{"NotIn of a missing key", "matchExpressions: [{key: tier, operator: NotIn, values: [db]}]", shopAPI.Labels, true},
		{"Exists", "matchExpressions: [{key: 'k8s:io.kubernetes.pod.namespace', operator: Exists}]", shopAPI.Labels, true},
		{"DoesNotExist", "matchExpressions: [{key: app, operator: DoesNotExist}]", shopAPI.Labels, false},
		{"reserved, $ form", "matchLabels: {$world: ''}", outside.Labels, true},
		{"reserved, written out", "matchLabels: {'reserved:world': ''}", outside.Labels, true},
		{"a reserved key does not match a pod", "matchLabels: {'reserved:world': ''}", shopAPI.Labels, false},
		{"empty matches all", "{}", outside.Labels, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := CiliumSelectorMatches(sel(t, tc.sel), tc.labels); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestCiliumSelectsAndDefaultDeny(t *testing.T) {
	for _, tc := range []struct {
		name, spec      string
		clusterwide     bool
		pod             CiliumEndpoint
		selects         bool
		ingress, egress bool
	}{
		{"default deny selects every pod of the namespace", "{endpointSelector: {}, ingress: [{}], egress: [{}]}", false, shopAPI, true, true, true},
		{"not another namespace's", "{endpointSelector: {}, ingress: [{}]}", false, payGW, false, true, false},
		{"a namespace it names is overridden", "{endpointSelector: {matchLabels: {'k8s:io.kubernetes.pod.namespace': payments}}, ingress: [{}]}", false, payGW, false, true, false},
		{"by label", "{endpointSelector: {matchLabels: {app: api}}, egress: [{}]}", false, shopAPI, true, false, true},
		{"other label", "{endpointSelector: {matchLabels: {app: api}}, egress: [{}]}", false, shopWeb, false, false, true},
		{"never a world identity", "{endpointSelector: {}, ingress: [{}]}", false, outside, false, true, false},
		{"a deny rule isolates too", "{endpointSelector: {}, ingressDeny: [{fromEntities: [world]}]}", false, shopAPI, true, true, false},
		{"enableDefaultDeny off", "{endpointSelector: {}, ingress: [{}], egress: [{}], enableDefaultDeny: {ingress: false}}", false, shopAPI, true, false, true},
		{"clusterwide: every namespace", "{endpointSelector: {}, ingress: [{}]}", true, payGW, true, true, false},
		{"clusterwide: a namespace it names", "{endpointSelector: {matchLabels: {'k8s:io.kubernetes.pod.namespace': payments}}, ingress: [{}]}", true, shopAPI, false, true, false},
		{"a nodeSelector selects no pod", "{nodeSelector: {}, ingress: [{}]}", true, shopAPI, false, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := CiliumPolicyOf(cnp(t, "shop", tc.spec))
			if tc.clusterwide {
				p.Namespace = ""
			}
			r := CiliumRule{Rule: p.Spec, Index: -1}
			if got := p.Selects(r, tc.pod); got != tc.selects {
				t.Errorf("selects: got %v, want %v", got, tc.selects)
			}
			if got := CiliumDefaultDeny(r.Rule, Ingress); got != tc.ingress {
				t.Errorf("default deny for ingress: got %v, want %v", got, tc.ingress)
			}
			if got := CiliumDefaultDeny(r.Rule, Egress); got != tc.egress {
				t.Errorf("default deny for egress: got %v, want %v", got, tc.egress)
			}
		})
	}
}

func TestCiliumRulesOf(t *testing.T) {
	p := CiliumPolicyOf(cnp(t, "shop", "{endpointSelector: {}, ingress: [{}]}\nspecs: [{endpointSelector: {}, egress: [{}]}, {endpointSelector: {}, egress: [{}]}]"))
	var where []string
	for r := range p.Rules() {
		where = append(where, r.Where())
	}
	if !slices.Equal(where, []string{"spec", "specs[0]", "specs[1]"}) || p.String() != "CiliumNetworkPolicy shop/p" {
		t.Errorf("got %s: %v", p, where)
	}
}

func tcpPort(n int32, name string) CiliumPort {
	return CiliumPort{Number: n, Name: name, Protocol: corev1.ProtocolTCP}
}

func TestCiliumIngressAdmits(t *testing.T) {
	const ports = "toPorts: [{ports: [{port: '5432', protocol: TCP}]}]"
	for _, tc := range []struct {
		name, rule string
		peer       CiliumEndpoint
		port       CiliumPort
		admits     bool
		http       int // HTTP rules the admission carries
	}{
		{"the empty rule admits nothing", "{}", shopWeb, tcpPort(5432, ""), false, 0},
		{"ports alone admit any peer", "{" + ports + "}", outside, tcpPort(5432, ""), true, 0},
		{"ports alone: another port", "{" + ports + "}", shopWeb, tcpPort(80, ""), false, 0},
		{"peers alone admit every port", "{fromEndpoints: [{matchLabels: {app: web}}]}", shopWeb, CiliumPort{Number: 53, Protocol: corev1.ProtocolUDP}, true, 0},
		{"a selector stays in the policy's namespace", "{fromEndpoints: [{}]}", payGW, tcpPort(5432, ""), false, 0},
		{"...every pod of it", "{fromEndpoints: [{}]}", shopWeb, tcpPort(5432, ""), true, 0},
		{"...and no world", "{fromEndpoints: [{}]}", outside, tcpPort(5432, ""), false, 0},
		{"a namespace named", "{fromEndpoints: [{matchLabels: {app: gateway, 'k8s:io.kubernetes.pod.namespace': payments}}]}", payGW, tcpPort(1, ""), true, 0},
		{"a namespace named without source", "{fromEndpoints: [{matchLabels: {app: gateway, 'io.kubernetes.pod.namespace': payments}}]}", payGW, tcpPort(1, ""), true, 0},
		{"namespace labels span namespaces", "{fromEndpoints: [{matchLabels: {'k8s:io.cilium.k8s.namespace.labels.team': pay}}]}", payGW, tcpPort(1, ""), true, 0},
		{"ServiceAccount", "{fromEndpoints: [{matchLabels: {app: web, 'k8s:io.cilium.k8s.policy.serviceaccount': web}}]}", shopWeb, tcpPort(1, ""), false, 0},
		{"ServiceAccount default", "{fromEndpoints: [{matchLabels: {app: web, 'k8s:io.cilium.k8s.policy.serviceaccount': default}}]}", shopWeb, tcpPort(1, ""), true, 0},
		{"an empty list selects nothing, ports or not", "{fromEndpoints: [], " + ports + "}", shopWeb, tcpPort(5432, ""), false, 0},
		{"a reserved selector is not scoped", "{fromEndpoints: [{matchLabels: {'reserved:world': ''}}]}", outside, tcpPort(1, ""), true, 0},
		{"CIDR", "{fromCIDRSet: [{cidr: 203.0.113.0/24, except: [203.0.113.128/25]}]}", outside, tcpPort(1, ""), true, 0},
		{"CIDR except", "{fromCIDRSet: [{cidr: 203.0.113.0/24, except: [203.0.113.0/25]}]}", outside, tcpPort(1, ""), false, 0},
		{"a CIDR matches no pod", "{fromCIDRSet: [{cidr: 0.0.0.0/0}]}", shopWeb, tcpPort(1, ""), false, 0},
		{"entity world", "{fromEntities: [world]}", outside, tcpPort(1, ""), true, 0},
		{"entity world is no pod", "{fromEntities: [world]}", shopWeb, tcpPort(1, ""), false, 0},
		{"entity cluster: pods of any namespace", "{fromEntities: [cluster]}", payGW, tcpPort(1, ""), true, 0},
		{"entity cluster is no world", "{fromEntities: [cluster]}", outside, tcpPort(1, ""), false, 0},
		{"entity all", "{fromEntities: [all]}", outside, tcpPort(1, ""), true, 0},
		{"named port", "{toPorts: [{ports: [{port: HTTP, protocol: TCP}]}]}", shopWeb, tcpPort(8080, "http"), true, 0},
		{"named port, another name", "{toPorts: [{ports: [{port: metrics, protocol: TCP}]}]}", shopWeb, tcpPort(8080, "http"), false, 0},
		{"port 0 is every port", "{toPorts: [{ports: [{port: '0', protocol: TCP}]}]}", shopWeb, tcpPort(8080, ""), true, 0},
		{"range", "{toPorts: [{ports: [{port: '8000', endPort: 8100, protocol: TCP}]}]}", shopWeb, tcpPort(8080, ""), true, 0},
		{"another protocol", "{" + ports + "}", shopWeb, CiliumPort{Number: 5432, Protocol: corev1.ProtocolUDP}, false, 0},
		{"no protocol: any", "{toPorts: [{ports: [{port: '5432'}]}]}", shopWeb, CiliumPort{Number: 5432, Protocol: corev1.ProtocolSCTP}, true, 0},
		{"HTTP rules", "{toPorts: [{ports: [{port: '80', protocol: TCP}], rules: {http: [{path: /a}, {method: GET}]}}]}", shopWeb, tcpPort(80, ""), true, 2},
		{"port rules add up: one without HTTP opens all", "{toPorts: [{ports: [{port: '80', protocol: TCP}], rules: {http: [{path: /a}]}}, {ports: [{port: '80', protocol: TCP}]}]}", shopWeb, tcpPort(80, ""), true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r cilium.IngressRule
			if err := yaml.UnmarshalStrict([]byte(tc.rule), &r); err != nil {
				t.Fatal(err)
			}
			a, ok := CiliumIngressAdmits("shop", r, tc.peer, tc.port)
			if ok != tc.admits || len(a.HTTP) != tc.http {
				t.Errorf("got %v with %d HTTP rules, want %v with %d", ok, len(a.HTTP), tc.admits, tc.http)
			}
		})
	}
}

func TestCiliumClusterwidePeers(t *testing.T) {
	for _, tc := range []struct {
		rule   string
		peer   CiliumEndpoint
		admits bool
	}{
		{"{fromEndpoints: [{}]}", payGW, true},
		{"{fromEndpoints: [{}]}", outside, false},
		{"{fromEndpoints: [{matchLabels: {app: gateway}}]}", payGW, true},
		{"{fromEndpoints: [{matchLabels: {'k8s:io.kubernetes.pod.namespace': shop}}]}", payGW, false},
	} {
		var r cilium.IngressRule
		if err := yaml.UnmarshalStrict([]byte(tc.rule), &r); err != nil {
			t.Fatal(err)
		}
		if _, ok := CiliumIngressAdmits("", r, tc.peer, tcpPort(1, "")); ok != tc.admits {
			t.Errorf("%s from %v: got %v, want %v", tc.rule, tc.peer.Labels, ok, tc.admits)
		}
	}
}

func TestCiliumDenies(t *testing.T) {
	for _, tc := range []struct {
		name, rule string
		peer       CiliumEndpoint
		port       CiliumPort
		denies     bool
	}{
		{"peers, every port", "{fromEntities: [world]}", outside, tcpPort(22, ""), true},
		{"not the peer", "{fromEntities: [world]}", shopWeb, tcpPort(22, ""), false},
		{"ports, every peer", "{toPorts: [{ports: [{port: '22', protocol: TCP}]}]}", shopWeb, tcpPort(22, ""), true},
		{"another port", "{fromCIDR: [203.0.113.0/24], toPorts: [{ports: [{port: '22', protocol: TCP}]}]}", outside, tcpPort(80, ""), false},
		{"fromCIDR", "{fromCIDR: [203.0.113.0/24], toPorts: [{ports: [{port: '22', protocol: TCP}]}]}", outside, tcpPort(22, ""), true},
		{"an empty deny rule denies nothing", "{}", shopWeb, tcpPort(22, ""), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r cilium.IngressDenyRule
			if err := yaml.UnmarshalStrict([]byte(tc.rule), &r); err != nil {
				t.Fatal(err)
			}
			if got := CiliumIngressDenies("shop", r, tc.peer, tc.port); got != tc.denies {
				t.Errorf("got %v, want %v", got, tc.denies)
			}
		})
	}
}

func TestCiliumEgressAdmits(t *testing.T) {
	for _, tc := range []struct {
		name, rule string
		peer       CiliumEndpoint
		admits     bool
	}{
		{"toFQDNs by name", "{toFQDNs: [{matchName: api.stripe.com}]}", stripe, true},
		{"toFQDNs needs the name", "{toFQDNs: [{matchName: api.stripe.com}]}", CiliumWorld("198.51.100.1", ""), false},
		{"toFQDNs: no pod", "{toFQDNs: [{matchPattern: '*'}]}", shopAPI, false},
		{"toFQDNs with ports", "{toFQDNs: [{matchName: api.stripe.com}], toPorts: [{ports: [{port: '443', protocol: TCP}]}]}", stripe, true},
		{"toFQDNs, another port", "{toFQDNs: [{matchName: api.stripe.com}], toPorts: [{ports: [{port: '80', protocol: TCP}]}]}", stripe, false},
		{"kube-apiserver", "{toEntities: [kube-apiserver]}", apiSrv, true},
		{"kube-apiserver is not any world", "{toEntities: [kube-apiserver]}", outside, false},
		{"world takes the API server outside the cluster", "{toEntities: [world]}", apiSrv, true},
		{"cluster takes the API server", "{toEntities: [cluster]}", apiSrv, true},
		{"toEndpoints in the namespace", "{toEndpoints: [{matchLabels: {app: api}}]}", shopAPI, true},
		{"toCIDRSet", "{toCIDRSet: [{cidr: 198.51.100.0/24}]}", stripe, true},
		{"toCIDRSet, a bare address", "{toCIDRSet: [{cidr: 198.51.100.1}]}", stripe, true},
		{"toCIDR", "{toCIDR: [198.51.100.0/24]}", stripe, true},
		{"toServices are not resolved", "{toServices: [{k8sService: {serviceName: api}}]}", shopAPI, false},
		{"ICMP alone admits no TCP", "{toEntities: [all], icmps: [{fields: [{type: 8}]}]}", stripe, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r cilium.EgressRule
			if err := yaml.UnmarshalStrict([]byte(tc.rule), &r); err != nil {
				t.Fatal(err)
			}
			if _, ok := CiliumEgressAdmits("shop", r, tc.peer, tcpPort(443, "")); ok != tc.admits {
				t.Errorf("got %v, want %v", ok, tc.admits)
			}
		})
	}
}

// The cases of pkg/policy/api FQDNSelector's documentation and matchpattern's tests.
func TestCiliumFQDNMatches(t *testing.T) {
	for _, tc := range []struct {
		name, pattern string
		names         map[string]bool
	}{
		{"api.stripe.com", "", map[string]bool{"api.stripe.com": true, "API.Stripe.com.": true, "x.api.stripe.com": false, "api-stripe.com": false}},
		{"", "*.cilium.io", map[string]bool{"www.cilium.io": true, "blog.cilium.io": true, "cilium.io": false, "a.b.cilium.io": false, "google.com": false}},
		{"", "*cilium.io", map[string]bool{"cilium.io": true, "subcilium.io": true, "sub-cilium.io": true, "www.cilium.io": false}},
		{"", "sub*.cilium.io", map[string]bool{"sub.cilium.io": true, "subdomain.cilium.io": true, "www.cilium.io": false}},
		{"", "**.cilium.io", map[string]bool{"app.cilium.io": true, "test.app.cilium.io": true, "cilium.io": false}},
		{"", "*", map[string]bool{"anything.example": true, "a.b.c": true}},
		{"", "api.(stripe).com", map[string]bool{"api.stripe.com": false}},
	} {
		for name, want := range tc.names {
			if got := CiliumFQDNMatches(cilium.FQDNSelector{MatchName: tc.name, MatchPattern: tc.pattern}, name); got != want {
				t.Errorf("%q%q against %q: got %v, want %v", tc.name, tc.pattern, name, got, want)
			}
		}
	}
}

func TestCiliumHTTPMatches(t *testing.T) {
	headers := func(h ...string) *[]string { return &h }
	matches := func(m ...cilium.HeaderMatch) *[]cilium.HeaderMatch { return &m }
	get := &HTTP{Path: "/data", Method: "GET", Host: "api.shop", Headers: map[string]string{"X-Team": "a"}}
	for _, tc := range []struct {
		rule    cilium.PortRuleHTTP
		req     *HTTP
		want    bool
		unknown string
	}{
		{cilium.PortRuleHTTP{}, &HTTP{Path: "/anything", Method: "DELETE"}, true, ""},
		{cilium.PortRuleHTTP{Path: "/data"}, get, true, ""},
		{cilium.PortRuleHTTP{Path: "/data"}, &HTTP{Path: "/data/x", Method: "GET"}, false, ""},   // the whole path
		{cilium.PortRuleHTTP{Path: "/data"}, &HTTP{Path: "/data?x=1", Method: "GET"}, false, ""}, // the query is part of it
		{cilium.PortRuleHTTP{Path: `/data(\?.*)?`}, &HTTP{Path: "/data?x=1", Method: "GET"}, true, ""},
		{cilium.PortRuleHTTP{Path: "/reports/.*", Method: "GET|HEAD"}, &HTTP{Path: "/reports/2026", Method: "POST"}, false, ""},
		{cilium.PortRuleHTTP{Method: "GET|HEAD"}, &HTTP{Path: "/", Method: "HEAD"}, true, ""},
		{cilium.PortRuleHTTP{Method: "GET"}, &HTTP{Path: "/", Method: "GETX"}, false, ""},
		{cilium.PortRuleHTTP{Path: "(("}, get, false, ""},
		{cilium.PortRuleHTTP{Path: "/data"}, &HTTP{Method: "GET"}, false, "the request's path is not known"},
		{cilium.PortRuleHTTP{Path: "/other"}, &HTTP{Method: "GET"}, false, "the request's path is not known"},
		{cilium.PortRuleHTTP{Path: "/other", Method: "POST"}, &HTTP{Method: "GET"}, false, ""}, // the method alone refuses it
		{cilium.PortRuleHTTP{Host: `api\.shop`}, get, true, ""},
		{cilium.PortRuleHTTP{Host: `api\.shop`}, &HTTP{Path: "/", Method: "GET"}, false, "the request's host is not known"},
		{cilium.PortRuleHTTP{Headers: headers("X-Team: a")}, get, true, ""},
		{cilium.PortRuleHTTP{Headers: headers("x-team b")}, get, false, ""},
		{cilium.PortRuleHTTP{Headers: headers("X-Team")}, get, true, ""},
		{cilium.PortRuleHTTP{Headers: headers("X-Other")}, get, false, ""},
		{cilium.PortRuleHTTP{HeaderMatches: matches(cilium.HeaderMatch{Name: "x-team", Value: "b"})}, get, false, ""},
		{cilium.PortRuleHTTP{HeaderMatches: matches(cilium.HeaderMatch{Name: "x-team", Value: "b", Mismatch: "LOG"})}, get, true, ""},
		{cilium.PortRuleHTTP{HeaderMatches: matches(cilium.HeaderMatch{Name: "x-token", Secret: &cilium.Secret{Name: "t"}})}, get, false,
			"header x-token is matched against a secret's value"},
	} {
		got, unknown := CiliumHTTPMatches(tc.rule, tc.req)
		if got != tc.want || unknown != tc.unknown {
			t.Errorf("%+v against %+v: got %v (%q), want %v (%q)", tc.rule, tc.req, got, unknown, tc.want, tc.unknown)
		}
	}
}

func TestCiliumRefusals(t *testing.T) {
	for _, tc := range []struct {
		name, spec string
		want       []string
	}{
		{"the compiler's default deny", "{endpointSelector: {}, ingress: [{}], egress: [{}]}", nil},
		{"no rules", "{endpointSelector: {}}", []string{"spec has no ingress, ingressDeny, egress or egressDeny rule"}},
		{"a nodeSelector", "{nodeSelector: {}, ingress: [{}]}", []string{"spec.nodeSelector: a namespaced policy selects pods only"}},
		{"fromRequires", "{endpointSelector: {}, ingress: [{fromRequires: [a]}]}", []string{"spec.ingress[0].fromRequires is deprecated: the schema allows no item"}},
		{"ICMP with ports", "{endpointSelector: {}, egressDeny: [{icmps: [{fields: [{type: 8}]}], toPorts: [{ports: [{port: '1'}]}]}]}",
			[]string{"spec.egressDeny[0]: icmps cannot go with toPorts"}},
		{"two kinds of peer", "{endpointSelector: {}, egress: [{toEndpoints: [{}], toFQDNs: [{matchName: a.b}]}]}",
			[]string{"spec.egress[0] combines toEndpoints and toFQDNs: Cilium takes one kind of peer a rule"}},
		{"entity", "{endpointSelector: {}, ingress: [{fromEntities: [everyone]}]}", []string{`spec.ingress[0].fromEntities[0]: unsupported entity "everyone"`}},
		{"HTTP on UDP", "{endpointSelector: {}, ingress: [{toPorts: [{ports: [{port: '80', protocol: UDP}], rules: {http: [{path: /}]}}]}]}",
			[]string{`spec.ingress[0].toPorts[0].ports[0]: HTTP rules apply to TCP only, not "UDP"`}},
		{"HTTP without protocol", "{endpointSelector: {}, ingress: [{toPorts: [{ports: [{port: '80'}], rules: {http: [{path: /}]}}]}]}",
			[]string{`spec.ingress[0].toPorts[0].ports[0]: HTTP rules apply to TCP only, not ""`}},
		{"DNS on ingress", "{endpointSelector: {}, ingress: [{toPorts: [{ports: [{port: '53', protocol: UDP}], rules: {dns: [{matchPattern: '*'}]}}]}]}",
			[]string{"spec.ingress[0].toPorts[0]: DNS rules are not allowed on ingress"}},
		{"bad path", "{endpointSelector: {}, ingress: [{toPorts: [{ports: [{port: '80', protocol: TCP}], rules: {http: [{path: '(('}]}}]}]}",
			[]string{"spec.ingress[0].toPorts[0].rules.http[0].path \"((\": error parsing regexp: missing closing ): `((`"}},
		{"port", "{endpointSelector: {}, egress: [{toPorts: [{ports: [{port: '99999', protocol: TCP}]}]}]}",
			[]string{`spec.egress[0].toPorts[0].ports[0].port "99999" is neither a port number nor a port name`}},
		{"pattern", "{endpointSelector: {}, egress: [{toFQDNs: [{matchPattern: 'a/b'}]}]}",
			[]string{`spec.egress[0].toFQDNs[0].matchPattern "a/b": only 0-9, a-z, A-Z and ., -, _ and * are allowed`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := CiliumRefusals(CiliumPolicyOf(cnp(t, "shop", tc.spec)))
			if !slices.Equal(got, tc.want) {
				t.Errorf("got\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "))
			}
		})
	}
}

func TestCiliumHTTPExample(t *testing.T) {
	for _, rule := range []cilium.PortRuleHTTP{
		{}, {Path: "/data"}, {Path: `/data(\?.*)?`}, {Path: `/shop\.Catalog/.*`}, {Path: `.*\.json(\?.*)?`, Method: "GET|HEAD"},
		{Path: "/v[0-9]+/items/[a-z]{3}"}, {Method: "POST"}, {Path: "^/anchored$"},
	} {
		path, method, ok := CiliumHTTPExample(rule)
		if matched, _ := CiliumHTTPMatches(rule, &HTTP{Path: path, Method: method}); !ok || !matched {
			t.Errorf("%+v: example %s %s (%v) does not match", rule, method, path, ok)
		}
	}
	if _, _, ok := CiliumHTTPExample(cilium.PortRuleHTTP{Path: "(("}); ok {
		t.Error("an expression that does not compile has an example")
	}
}
