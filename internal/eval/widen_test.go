package eval

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/compiler"
)

// seedCluster is the seed graph's compiled objects and its three services' pods.
func seedCluster(t *testing.T) (*Cluster, []*Workload) {
	t.Helper()
	return seedClusterWith(t, v1alpha1.ServiceGraphSpec{})
}

// seedClusterWith is seedCluster for the seed graph with the spec's mesh and networkPolicy.
func seedClusterWith(t *testing.T, spec v1alpha1.ServiceGraphSpec) (*Cluster, []*Workload) {
	t.Helper()
	spec.Services = []v1alpha1.Service{{Name: "web"}, {Name: "api"}, {Name: "database"}}
	spec.Edges = []string{"web->api:8080", "api->database:5432/data"}
	sg := &v1alpha1.ServiceGraph{ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: "shop"}, Spec: spec}
	res, err := compiler.Compile(sg, compiler.DefaultOptions(), compiler.Facts{})
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{}
	for _, o := range res.Objects() {
		c.Add(o)
	}
	database := &Workload{Namespace: "shop", Name: "database", Labels: map[string]string{"app": "database"}, IP: "10.0.0.3", ServiceAccount: "database", Meshed: true,
		Ports: []corev1.ContainerPort{{ContainerPort: 5432}}}
	return c, []*Workload{web, api, database}
}

func TestWidenings(t *testing.T) {
	tests := []struct {
		name    string
		objects []any
		layer   string // "" when nothing widens
		example string
	}{
		{name: "allow-all ingress to a service", layer: "L4", example: "another-namespace/any-pod -> shop/database TCP/5432",
			objects: []any{np(t, indent("podSelector: {matchLabels: {app: database}}\ningress: [{}]"))}},
		{name: "ingress from the namespaces of a team", layer: "L4", example: "namespace{team=batch}/pod -> shop/database TCP/5432",
			objects: []any{np(t, indent("podSelector: {matchLabels: {app: database}}\ningress: [{from: [{namespaceSelector: {matchLabels: {team: batch}}}], ports: [{port: 5432}]}]"))}},
		{name: "ingress from an address range", layer: "L4", example: "10.0.0.1 (outside the cluster) -> shop/api TCP/8080",
			objects: []any{np(t, indent("podSelector: {matchLabels: {app: api}}\ningress: [{from: [{ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}}], ports: [{port: 8080}]}]"))}},
		{name: "a named port", layer: "L4", example: "another-namespace/any-pod -> shop/api TCP/http",
			objects: []any{np(t, indent("podSelector: {matchLabels: {app: api}}\ningress: [{ports: [{port: http}]}]"))}},
		{name: "egress to everything", layer: "L4", example: "shop/web -> another-namespace/any-pod TCP/5432",
			objects: []any{np(t, indent("podSelector: {matchLabels: {app: web}}\npolicyTypes: [Egress]\negress: [{}]"))}},
		{name: "egress to an outside address", layer: "L4", example: "shop/web -> 192.0.2.1 (outside the cluster) TCP/443",
			objects: []any{np(t, indent("podSelector: {matchLabels: {app: web}}\npolicyTypes: [Egress]\negress: [{to: [{ipBlock: {cidr: 192.0.2.0/24}}], ports: [{port: 443}]}]"))}},
		{name: "pods no service has yet", layer: "L4", example: "another-namespace/any-pod -> shop/pod{app=legacy} TCP/5432",
			objects: []any{np(t, indent("podSelector: {matchLabels: {app: legacy}}\ningress: [{}]"))}},
		{name: "a policy restating an edge", objects: []any{np(t, indent("podSelector: {matchLabels: {app: api}}\ningress: [{from: [{podSelector: {matchLabels: {app: web}}}], ports: [{port: 8080}]}]"))}},
		{name: "a default-deny", objects: []any{np(t, indent("podSelector: {}\npolicyTypes: [Ingress, Egress]"))}},
		{name: "another namespace's policy", objects: []any{func() any {
			p := np(t, indent("podSelector: {}\ningress: [{}]"))
			p.Namespace = "elsewhere"
			return p
		}()}},
		{name: "ALLOW anyone", layer: "authorization", example: "another-namespace/any-pod -> shop/database TCP/5432",
			objects: []any{ap(t, "open", "shop", indent("selector: {matchLabels: {app: database}}\nrules: [{}]"))}},
		{name: "ALLOW a principal the graph does not name", layer: "authorization", example: "batch/pod{serviceAccount=report} -> shop/database TCP/5432",
			objects: []any{ap(t, "report", "shop", indent("selector: {matchLabels: {app: database}}\nrules: [{from: [{source: {principals: [cluster.local/ns/batch/sa/report]}}]}]"))}},
		{name: "ALLOW a path the edge does not", layer: "authorization", example: "shop/any-pod -> shop/database TCP/5432 GET /admin/x",
			objects: []any{ap(t, "admin", "shop", indent("selector: {matchLabels: {app: database}}\nrules: [{from: [{source: {namespaces: [shop]}}], to: [{operation: {paths: [/admin/*]}}]}]"))}},
		{name: "ALLOW what an edge allows", objects: []any{ap(t, "same", "shop", indent("selector: {matchLabels: {app: api}}\nrules: [{from: [{source: {principals: [cluster.local/ns/shop/sa/web]}}], to: [{operation: {ports: ['8080']}}]}]"))}},
		{name: "DENY", objects: []any{ap(t, "deny", "shop", indent("action: DENY\nrules: [{}]"))}},
		{name: "allow-nothing", objects: []any{ap(t, "nothing", "shop", indent("{}"))}},
		{name: "PERMISSIVE for a workload", layer: "mTLS", example: "another-namespace/any-pod-without-sidecar (no sidecar) -> shop/database TCP/1",
			objects: []any{pa(t, "loose", "shop", indent("selector: {matchLabels: {app: database}}\nmtls: {mode: PERMISSIVE}"))}},
		{name: "DISABLE on one port", layer: "mTLS", example: "another-namespace/any-pod-without-sidecar (no sidecar) -> shop/api TCP/9090",
			objects: []any{pa(t, "metrics", "shop", indent("selector: {matchLabels: {app: api}}\nportLevelMtls: {9090: {mode: DISABLE}}"))}},
		{name: "STRICT for a workload", objects: []any{pa(t, "strict", "shop", indent("selector: {matchLabels: {app: database}}\nmtls: {mode: STRICT}"))}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			graph, workloads := seedCluster(t)
			foreign := &Cluster{}
			foreign.Add(tc.objects...)
			got := Widenings(graph, "shop", workloads, foreign)
			if tc.layer == "" {
				if len(got) > 0 {
					t.Errorf("want nothing, got %v", got)
				}
				return
			}
			if len(got) != 1 || got[0].Layer != tc.layer || got[0].Example != tc.example {
				t.Errorf("got %v\nwant one at %s, example %q", got, tc.layer, tc.example)
			}
			// The example is a connection the graph refuses and the object lets through.
			if len(got) == 1 && !strings.HasPrefix(got[0].String(), got[0].Object+" opens ") {
				t.Errorf("String(): %s", got[0])
			}
		})
	}
}

// An object that opens a layer is judged on its own: two foreign policies are two findings, and
// the result does not depend on their order.
func TestWideningsJudgeEachObject(t *testing.T) {
	graph, workloads := seedCluster(t)
	a := np(t, indent("podSelector: {matchLabels: {app: database}}\ningress: [{}]"))
	b := ap(t, "open", "shop", indent("rules: [{}]"))
	one, other := &Cluster{}, &Cluster{}
	one.Add(a, b)
	other.Add(b, a)
	x, y := Widenings(graph, "shop", workloads, one), Widenings(graph, "shop", workloads, other)
	if len(x) != 2 || x[0].Object != "AuthorizationPolicy shop/open" || x[1].Object != "NetworkPolicy shop/np" {
		t.Fatalf("got %v", x)
	}
	for i := range x {
		if x[i] != y[i] {
			t.Errorf("order matters: %v vs %v", x, y)
		}
	}
}

func TestAddressIn(t *testing.T) {
	for _, tc := range []struct {
		cidr   string
		except []string
		want   string
	}{
		{"10.0.0.0/8", nil, "10.0.0.1"},
		{"10.0.0.0/8", []string{"10.0.0.0/16"}, "10.255.255.254"},
		{"10.0.0.0/31", []string{"10.0.0.0/32"}, "10.0.0.1"},
		{"192.0.2.7/32", nil, "192.0.2.7"},
		{"2001:db8::/32", nil, "2001:db8::1"},
		{"0.0.0.0/0", []string{"0.0.0.0/1", "128.0.0.0/1"}, ""},
	} {
		got, ok := addressIn(tc.cidr, tc.except)
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("addressIn(%s, %v) = %q, %v; want %q", tc.cidr, tc.except, got, ok, tc.want)
		}
	}
}

// indent makes a spec's lines the body of spec:.
func indent(spec string) string {
	return "  " + strings.ReplaceAll(strings.TrimSuffix(spec, "\n"), "\n", "\n  ") + "\n"
}

// A foreign ALLOW that admits web to database (which the graph refuses) is caught however the
// policy spells web's identity: every form Istio accepts for it.
func TestWideningsInEverySpelling(t *testing.T) {
	for _, source := range []string{
		"principals: [cluster.local/ns/shop/sa/web]",
		"principals: ['*/sa/web']",
		"principals: ['*/ns/shop/sa/web']",
		"principals: ['cluster.local/ns/shop/*']",
		"principals: ['*']",
		"serviceAccounts: [web]",
		"serviceAccounts: [shop/web]",
		"namespaces: [shop]",
		"namespaces: ['sh*']",
		"namespaces: ['*']",
		"trustDomains: [cluster.local]",
		"trustDomains: ['*.local']",
		"namespaces: [shop], principals: ['*/sa/web']",
		"serviceAccounts: [web], trustDomains: [cluster.local]",
		"notNamespaces: [other]",
	} {
		for _, selector := range []string{"selector: {matchLabels: {app: database}}\n", ""} {
			t.Run(source+" "+selector, func(t *testing.T) {
				graph, workloads := seedCluster(t)
				foreign := &Cluster{}
				foreign.Add(ap(t, "open", "shop", indent(selector+"rules: [{from: [{source: {"+source+"}}]}]")))
				got := Widenings(graph, "shop", workloads, foreign)
				if len(got) != 1 || got[0].Layer != "authorization" {
					t.Fatalf("got %v, want one widening at authorization", got)
				}
			})
		}
	}
	// The same spellings in when conditions.
	for _, cond := range []string{"{key: source.principal, values: [cluster.local/ns/shop/sa/web]}", "{key: source.serviceAccount, values: [web]}", "{key: source.namespace, values: [shop]}"} {
		t.Run(cond, func(t *testing.T) {
			graph, workloads := seedCluster(t)
			foreign := &Cluster{}
			foreign.Add(ap(t, "open", "shop", indent("selector: {matchLabels: {app: database}}\nrules: [{when: ["+cond+"]}]")))
			if got := Widenings(graph, "shop", workloads, foreign); len(got) != 1 {
				t.Fatalf("got %v, want one widening", got)
			}
		})
	}
}
