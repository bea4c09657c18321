package eval

import (
	"testing"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
)

// seedClusterAs is the seed graph compiled without a mesh into the policies of an API, and its
// three services' pods (those of seedCluster).
func seedClusterAs(t *testing.T, api v1alpha1.NetworkPolicyAPI) (*Cluster, []*Workload) {
	t.Helper()
	c, workloads := seedClusterWith(t, v1alpha1.ServiceGraphSpec{Mesh: v1alpha1.MeshNone, NetworkPolicy: api})
	if api == v1alpha1.NetworkPolicyCilium && len(c.CiliumNetworkPolicies) == 0 {
		t.Fatal("the Cilium graph has no CiliumNetworkPolicy")
	}
	return c, workloads
}

func TestCiliumWidenings(t *testing.T) {
	const (
		cil = v1alpha1.NetworkPolicyCilium
		k8s = v1alpha1.NetworkPolicyKubernetes
	)
	tests := []struct {
		name    string
		spec    string
		example map[v1alpha1.NetworkPolicyAPI]string // by the graph's API; "" when nothing widens
	}{
		{name: "ingress from every entity", spec: "{endpointSelector: {matchLabels: {app: database}}, ingress: [{fromEntities: [all]}]}",
			example: map[v1alpha1.NetworkPolicyAPI]string{cil: "another-namespace/any-pod -> shop/database TCP/5432", k8s: "another-namespace/any-pod -> shop/database TCP/5432"}},
		{name: "ports from anyone", spec: "{endpointSelector: {matchLabels: {app: database}}, ingress: [{toPorts: [{ports: [{port: '5432'}]}]}]}",
			example: map[v1alpha1.NetworkPolicyAPI]string{cil: "another-namespace/any-pod -> shop/database TCP/5432", k8s: "another-namespace/any-pod -> shop/database TCP/5432"}},
		{name: "ingress from pods of another namespace", spec: "{endpointSelector: {matchLabels: {app: database}}, ingress: [{fromEndpoints: [{matchLabels: " +
			"{'k8s:io.kubernetes.pod.namespace': batch, app: report}}], toPorts: [{ports: [{port: '5432', protocol: TCP}]}]}]}",
			example: map[v1alpha1.NetworkPolicyAPI]string{cil: "batch/pod{app=report} -> shop/database TCP/5432", k8s: "batch/pod{app=report} -> shop/database TCP/5432"}},
		{name: "ingress from the namespaces of a team", spec: "{endpointSelector: {matchLabels: {app: database}}, ingress: [{fromEndpoints: [{matchLabels: " +
			"{'k8s:io.cilium.k8s.namespace.labels.team': batch}}], toPorts: [{ports: [{port: '5432'}]}]}]}",
			example: map[v1alpha1.NetworkPolicyAPI]string{cil: "namespace{team=batch}/pod -> shop/database TCP/5432", k8s: "namespace{team=batch}/pod -> shop/database TCP/5432"}},
		{name: "egress to the world", spec: "{endpointSelector: {matchLabels: {app: web}}, egress: [{toEntities: [world], toPorts: [{ports: [{port: '443'}]}]}]}",
			example: map[v1alpha1.NetworkPolicyAPI]string{cil: "shop/web -> 203.0.113.7 (outside the cluster) TCP/443", k8s: "shop/web -> 203.0.113.7 (outside the cluster) TCP/443"}},
		{name: "egress to an address range", spec: "{endpointSelector: {matchLabels: {app: web}}, egress: [{toCIDRSet: [{cidr: 192.0.2.0/24, except: [192.0.2.0/28]}]}]}",
			example: map[v1alpha1.NetworkPolicyAPI]string{cil: "shop/web -> 192.0.2.254 (outside the cluster) TCP/5432", k8s: "shop/web -> 192.0.2.254 (outside the cluster) TCP/5432"}},
		// toFQDNs admits the addresses Cilium's DNS proxy saw looked up: a DNS rule must send the
		// lookups through it.
		{name: "egress to a host looked up", spec: "{endpointSelector: {matchLabels: {app: web}}, egress: [{toEndpoints: [{matchLabels: " +
			"{'k8s:io.kubernetes.pod.namespace': kube-system, k8s-app: kube-dns}}], toPorts: [{ports: [{port: '53', protocol: UDP}], rules: {dns: [{matchPattern: '*'}]}}]}, " +
			"{toFQDNs: [{matchName: api.example.com}], toPorts: [{ports: [{port: '443', protocol: TCP}]}]}]}",
			example: map[v1alpha1.NetworkPolicyAPI]string{cil: "shop/web -> api.example.com (outside the cluster) TCP/443", k8s: "shop/web -> api.example.com (outside the cluster) TCP/443"}},
		{name: "egress to a host never looked up", spec: "{endpointSelector: {matchLabels: {app: web}}, egress: [{toFQDNs: [{matchName: api.example.com}], toPorts: [{ports: [{port: '443', protocol: TCP}]}]}]}"},
		{name: "egress to the API server", spec: "{endpointSelector: {matchLabels: {app: web}}, egress: [{toEntities: [kube-apiserver], toPorts: [{ports: [{port: '443', protocol: TCP}]}]}]}",
			example: map[v1alpha1.NetworkPolicyAPI]string{cil: "shop/web -> the API server 192.0.2.1 TCP/443", k8s: "shop/web -> the API server 192.0.2.1 TCP/443"}},
		{name: "ingress from an address", spec: "{endpointSelector: {matchLabels: {app: api}}, ingress: [{fromCIDR: [198.51.100.9], toPorts: [{ports: [{port: '8080'}]}]}]}",
			example: map[v1alpha1.NetworkPolicyAPI]string{cil: "198.51.100.9 (outside the cluster) -> shop/api TCP/8080", k8s: "198.51.100.9 (outside the cluster) -> shop/api TCP/8080"}},
		// Ports from anyone: in the namespace, the graph's egress policies still refuse them.
		{name: "a port the edge does not name", spec: "{endpointSelector: {matchLabels: {app: api}}, ingress: [{toPorts: [{ports: [{port: '9090', protocol: TCP}]}]}]}",
			example: map[v1alpha1.NetworkPolicyAPI]string{cil: "another-namespace/any-pod -> shop/api TCP/9090", k8s: "another-namespace/any-pod -> shop/api TCP/9090"}},
		{name: "a port range", spec: "{endpointSelector: {matchLabels: {app: api}}, ingress: [{toPorts: [{ports: [{port: '9000', endPort: 9100}]}]}]}",
			example: map[v1alpha1.NetworkPolicyAPI]string{cil: "another-namespace/any-pod -> shop/api TCP/9000", k8s: "another-namespace/any-pod -> shop/api TCP/9000"}},
		{name: "a named port", spec: "{endpointSelector: {matchLabels: {app: api}}, ingress: [{toPorts: [{ports: [{port: metrics}]}]}]}",
			example: map[v1alpha1.NetworkPolicyAPI]string{cil: "another-namespace/any-pod -> shop/api TCP/metrics", k8s: "another-namespace/any-pod -> shop/api TCP/metrics"}},
		{name: "a pod of the namespace, whose egress the graph refuses", spec: "{endpointSelector: {matchLabels: {app: api}}, ingress: [{fromEndpoints: [{matchLabels: " +
			"{app: web}}], toPorts: [{ports: [{port: '9090', protocol: TCP}]}]}]}"},
		// Without a mesh a Cilium graph's edge with a path admits only that path; a NetworkPolicy
		// graph admits every path on the port, so the rule opens nothing there.
		{name: "a path the edge does not name", spec: "{endpointSelector: {matchLabels: {app: database}}, ingress: [{fromEndpoints: [{matchLabels: " +
			"{app: api, 'k8s:io.cilium.k8s.policy.serviceaccount': api}}], toPorts: [{ports: [{port: '5432', protocol: TCP}], rules: {http: [{method: GET, path: '/admin/.*'}]}}]}]}",
			example: map[v1alpha1.NetworkPolicyAPI]string{cil: "shop/pod{app=api}{serviceAccount=api} -> shop/database TCP/5432 GET /admin/x", k8s: ""}},
		{name: "a policy restating an edge", spec: "{endpointSelector: {matchLabels: {app: api}}, ingress: [{fromEndpoints: [{matchLabels: " +
			"{app: web, 'k8s:io.cilium.k8s.policy.serviceaccount': web}}], toPorts: [{ports: [{port: '8080', protocol: TCP}]}]}]}"},
		{name: "the edge's own path", spec: "{endpointSelector: {matchLabels: {app: database}}, ingress: [{fromEndpoints: [{matchLabels: " +
			"{app: api, 'k8s:io.cilium.k8s.policy.serviceaccount': api}}], toPorts: [{ports: [{port: '5432', protocol: TCP}], rules: {http: [{path: '/data'}]}}]}]}"},
		{name: "deny rules only", spec: "{endpointSelector: {}, ingressDeny: [{fromEntities: [all]}], egressDeny: [{toEntities: [world]}]}"},
		{name: "a default deny", spec: "{endpointSelector: {}, ingress: [{}], egress: [{}]}"},
		{name: "a policy Cilium refuses", spec: "{endpointSelector: {matchLabels: {app: database}}, ingress: [{fromEntities: [all], fromCIDR: [10.0.0.0/8]}]}"},
		{name: "HTTP rules on any protocol, which Cilium refuses", spec: "{endpointSelector: {matchLabels: {app: database}}, ingress: [{toPorts: [{ports: [{port: '5432'}], rules: {http: [{path: '/admin/.*'}]}}]}]}"},
	}
	for _, tc := range tests {
		for _, api := range []v1alpha1.NetworkPolicyAPI{cil, k8s} {
			t.Run(tc.name+" on a "+string(api)+" graph", func(t *testing.T) {
				graph, workloads := seedClusterAs(t, api)
				foreign := &Cluster{}
				foreign.Add(cnp(t, "extra", tc.spec))
				got := Widenings(graph, "shop", workloads, foreign)
				want := tc.example[api]
				if want == "" {
					if len(got) > 0 {
						t.Errorf("want nothing, got %v", got)
					}
					return
				}
				if len(got) != 1 || got[0].Object != "CiliumNetworkPolicy shop/extra" || got[0].Layer != "L4" || got[0].Example != want {
					t.Errorf("got %v\nwant one at L4, example %q", got, want)
				}
			})
		}
	}
}

// Another namespace's policy is not the graph's business, and a NetworkPolicy next to a Cilium
// graph widens it as it widens a NetworkPolicy graph.
func TestCiliumWideningsOtherObjects(t *testing.T) {
	graph, workloads := seedClusterAs(t, v1alpha1.NetworkPolicyCilium)
	elsewhere := cnp(t, "open", "{endpointSelector: {}, ingress: [{fromEntities: [all]}]}")
	elsewhere.Namespace = "elsewhere"
	foreign := &Cluster{}
	foreign.Add(elsewhere)
	if got := Widenings(graph, "shop", workloads, foreign); len(got) > 0 {
		t.Errorf("another namespace's policy: got %v", got)
	}
	foreign = &Cluster{}
	foreign.Add(np(t, indent("podSelector: {matchLabels: {app: database}}\ningress: [{}]")))
	got := Widenings(graph, "shop", workloads, foreign)
	if len(got) != 1 || got[0].Object != "NetworkPolicy shop/np" || got[0].Layer != "L4" {
		t.Errorf("a NetworkPolicy next to a Cilium graph: got %v", got)
	}
}

func TestFillRegex(t *testing.T) {
	for expr, want := range map[string]string{"/admin/.*": "/admin/x", "/orders(\\?.*)?": "/orders", "^/v[0-9]+/items$": "/vx/items", "GET": "GET", "": ""} {
		if got := fillRegex(expr); got != want {
			t.Errorf("fillRegex(%q) = %q, want %q", expr, got, want)
		}
	}
}
