package compiler

import (
	"regexp"
	"testing"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/cilium"
)

// TestNetworkPolicyAPIChoice: which layer-3/4 kinds a graph gets, by what it asks for and what the
// cluster serves. A graph never goes without default-deny: asking for Cilium where it is not served
// keeps Kubernetes NetworkPolicies, and the graph waits.
func TestNetworkPolicyAPIChoice(t *testing.T) {
	noCilium := Facts{Missing: Builtin().KindsOf(LayerCilium)}
	tests := []struct {
		name      string
		api       v1alpha1.NetworkPolicyAPI
		facts     Facts
		kinds     []string
		waitingOn *Layer
	}{
		{"unset is Kubernetes", "", Facts{}, []string{"NetworkPolicy"}, nil},
		{"Kubernetes without Cilium served", v1alpha1.NetworkPolicyKubernetes, noCilium, []string{"NetworkPolicy"}, nil},
		{"Cilium served", v1alpha1.NetworkPolicyCilium, Facts{}, []string{"CiliumNetworkPolicy"}, nil},
		{"Cilium not served: NetworkPolicies meanwhile", v1alpha1.NetworkPolicyCilium, noCilium, []string{"NetworkPolicy"}, LayerCilium},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sg := newGraph("shop", []string{"web", "api"}, "web->api:8080")
			sg.Spec.NetworkPolicy = tc.api
			res := mustCompile(t, sg, DefaultOptions(), tc.facts)
			var kinds []string
			for _, obj := range res.Deny {
				if k := obj.GetObjectKind().GroupVersionKind().Kind; k != "PeerAuthentication" && k != "AuthorizationPolicy" {
					kinds = append(kinds, k)
				}
			}
			if len(kinds) != len(tc.kinds) || kinds[0] != tc.kinds[0] {
				t.Errorf("default-deny kinds %v, want %v", kinds, tc.kinds)
			}
			if got := res.Waiting(); got != tc.waitingOn {
				t.Errorf("waiting on %v, want %v", got, tc.waitingOn)
			}
			// Whatever is generated, the other kind is listed (and its stale objects pruned) when served.
			if !res.Served(NetworkPolicies) || res.Served(CiliumNetworkPolicies) == (len(tc.facts.Missing) > 0) {
				t.Errorf("served: NetworkPolicy %v, CiliumNetworkPolicy %v", res.Served(NetworkPolicies), res.Served(CiliumNetworkPolicies))
			}
		})
	}
}

// TestCiliumPath: a graph path, as Istio matches it (exact, prefix, suffix; the query string left
// out), is the regular expression Cilium's proxy matches against the whole :path header.
func TestCiliumPath(t *testing.T) {
	tests := []struct {
		path        string
		match, miss []string
	}{
		{"/data", []string{"/data", "/data?x=1"}, []string{"/data/1", "/datax", "/dat", "x/data"}},
		{"/api/*", []string{"/api/", "/api/v1/x", "/api/x?y"}, []string{"/api", "/apix", "/x/api/"}},
		{"*.json", []string{"/a.json", ".json", "/a/b.json?x=1"}, []string{"/a.jsonx", "/a_json"}},
		{"*", []string{"/", "/anything?x"}, nil},
		{"/a+b(c)", []string{"/a+b(c)"}, []string{"/aab(c)", "/a+bc"}},
	}
	for _, tc := range tests {
		expr := CiliumPath(tc.path)
		if expr == "" {
			expr = ".*" // Cilium leaves an empty path out: any path
		}
		re := regexp.MustCompile("^(?:" + expr + ")$") // Cilium's proxy matches the whole value
		for _, p := range tc.match {
			if !re.MatchString(p) {
				t.Errorf("%q (%s) does not match %q", tc.path, CiliumPath(tc.path), p)
			}
		}
		for _, p := range tc.miss {
			if re.MatchString(p) {
				t.Errorf("%q (%s) matches %q", tc.path, CiliumPath(tc.path), p)
			}
		}
	}
}

// TestCiliumHTTP: the HTTP rules of one Cilium rule are the union of its edges' paths × methods,
// and none (anything goes) as soon as one of its edges restricts nothing.
func TestCiliumHTTP(t *testing.T) {
	sg := newGraph("shop", []string{"web", "api"}, "web->api:8080/a")
	sg.Spec.Mesh = v1alpha1.MeshNone
	sg.Spec.NetworkPolicy = v1alpha1.NetworkPolicyCilium
	sg.Spec.Connections = []v1alpha1.Connection{{From: "web", To: "api", Ports: []v1alpha1.ConnectionPort{{Port: intstr.FromInt32(8080)}}, Methods: []string{"GET", "POST"}, Paths: []string{"/b"}}}
	api := ciliumPolicyOf(t, mustCompile(t, sg, DefaultOptions()), "shop-svc-api")
	got := api.Spec.Ingress[0].ToPorts[0].Rules.HTTP
	want := []cilium.PortRuleHTTP{{Path: `/a(\?.*)?`}, {Path: `/b(\?.*)?`, Method: "GET"}, {Path: `/b(\?.*)?`, Method: "POST"}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Errorf("HTTP rules %+v, want %+v", got, want)
	}

	sg.Spec.Edges = append(sg.Spec.Edges, "web->api:8080")
	api = ciliumPolicyOf(t, mustCompile(t, sg, DefaultOptions()), "shop-svc-api")
	if r := api.Spec.Ingress[0].ToPorts[0].Rules; r != nil {
		t.Errorf("an edge without paths leaves the port open, got %+v", r)
	}

	// Cilium adds up one caller's HTTP rules on a port across rules: an edge without paths on the
	// port, in a rule of other ports, still leaves the port open to any traffic.
	sg.Spec.Connections = nil
	sg.Spec.Edges = []string{"web->api:8080/a", "web->api:8080,9090"}
	api = ciliumPolicyOf(t, mustCompile(t, sg, DefaultOptions()), "shop-svc-api")
	for _, r := range api.Spec.Ingress {
		for _, pr := range r.ToPorts {
			if pr.Rules != nil {
				t.Errorf("a TCP edge on 8080 made HTTP-only: %+v", api.Spec.Ingress)
			}
		}
	}
	// Ports with different HTTP rules get port rules of their own: 9090 is open through the second
	// edge, 8080 takes /a only.
	sg.Spec.Edges = []string{"web->api:8080,9090/a", "web->api:9090"}
	api = ciliumPolicyOf(t, mustCompile(t, sg, DefaultOptions()), "shop-svc-api")
	want8080 := []cilium.PortRule{{Ports: []cilium.PortProtocol{{Port: "8080", Protocol: "TCP"}}, Rules: &cilium.L7Rules{HTTP: []cilium.PortRuleHTTP{{Path: `/a(\?.*)?`}}}},
		{Ports: []cilium.PortProtocol{{Port: "9090", Protocol: "TCP"}}}}
	if got := api.Spec.Ingress[0].ToPorts; !equality.Semantic.DeepEqual(got, want8080) {
		t.Errorf("port rules %+v, want %+v", got, want8080)
	}

	sg.Spec.Edges = []string{"web->api:8080/a"}
	sg.Spec.Connections = nil
	sg.Spec.Mesh = ""
	api = ciliumPolicyOf(t, mustCompile(t, sg, DefaultOptions()), "shop-svc-api")
	if r := api.Spec.Ingress[0].ToPorts[0].Rules; r != nil {
		t.Errorf("with Istio, Istio enforces paths; got Cilium HTTP rules %+v", r)
	}
}

func ciliumPolicyOf(t *testing.T, res *Result, name string) *cilium.CiliumNetworkPolicy {
	t.Helper()
	for _, obj := range res.Objects() {
		if p, ok := obj.(*cilium.CiliumNetworkPolicy); ok && p.Name == name {
			return p
		}
	}
	t.Fatalf("no CiliumNetworkPolicy %s", name)
	return nil
}
