package cilium

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/cilium/cilium/pkg/identity"
	cilium "github.com/cilium/proxy/go/cilium/api"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/compiler"
)

// seedWithStripe is the seed scenario (config/samples: web -> api:8080, api -> database:5432/data)
// with the payment provider api.stripe.com that api calls on 443.
func seedWithStripe(t *testing.T) *v1alpha1.ServiceGraph {
	t.Helper()
	sg := readGraph(t, filepath.Join(root, "config", "samples", "policy_v1alpha1_servicegraph.yaml"))
	if !slices.Contains(sg.Spec.Edges, "api→database:5432/data") {
		t.Fatalf("the sample is no longer the seed: %v", sg.Spec.Edges)
	}
	sg.Spec.External = append(sg.Spec.External, v1alpha1.External{Name: "stripe", Hosts: []string{"api.stripe.com"}})
	sg.Spec.Edges = append(sg.Spec.Edges, "api->stripe:443")
	return sg
}

// TestSeedSurvivesInCilium is issue 28's acceptance: the seed graph with stripe, compiled with
// networkPolicy Cilium and mesh None, as Cilium's engine resolves it: the database takes 5432
// from api only, through the proxy with one HTTP rule, on path /data (as Cilium's Envoy rules
// read it: /data with any query string, nothing below it); api reaches api.stripe.com on 443 by
// name and nothing else outside the cluster. The docs' seed with a payment provider
// (testdata/input/cilium.yaml, with more edges) keeps both too.
func TestSeedSurvivesInCilium(t *testing.T) {
	for _, tc := range []struct {
		name string
		sg   *v1alpha1.ServiceGraph
		// exact: /data is database's only HTTP rule for api (the seed), else one of them.
		exact bool
	}{
		{"config/samples+stripe", seedWithStripe(t), true},
		{"testdata/input/cilium.yaml", readGraph(t, filepath.Join(root, "internal", "compiler", "testdata", "input", "cilium.yaml")), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := variant{"mesh=None", v1alpha1.MeshNone, compiler.DefaultOptions(), compiler.Facts{}}
			js, resources := compileAll(t, []*v1alpha1.ServiceGraph{tc.sg}, v)
			c, tab := judge(t, js, resources)

			// The node reaches every pod (allow-localhost, Cilium's on Kubernetes): not a peer of the graph.
			in := slices.DeleteFunc(linesOf(tab, "shop/database in "), func(l string) bool { return l == "shop/database in ANY/ANY reserved:host => L4" })
			if len(in) != 1 || !strings.HasPrefix(in[0], "shop/database in TCP/5432 shop/api => http ") {
				t.Fatalf("database's ingress is %q, want TCP/5432 from shop/api alone, with HTTP rules", in)
			}
			data := `http * /data(\?.*)?`
			if rules := strings.Split(strings.TrimPrefix(in[0], "shop/database in TCP/5432 shop/api => "), " | "); tc.exact && !slices.Equal(rules, []string{data}) || !slices.Contains(rules, data) {
				t.Errorf("database's HTTP rules for api are %q, want %q among them (alone for the seed)", rules, data)
			}
			envoy := envoyRulesFor(t, newEngine(c, resources), c.byKey["shop/database"], c.byKey["shop/api"], 5432)
			for req, want := range map[string]bool{"/data": true, "/data?id=7": true, "/data/7": false, "/datax": false, "/": false} {
				if got := envoyAllows(t, envoy, "POST", req); got != want {
					t.Errorf("Envoy's rules for api on database:5432 let %s through: %v, want %v", req, got, want)
				}
			}

			var outside []string
			for _, l := range linesOf(tab, "shop/api out ") {
				if peer := strings.Fields(l)[3]; !strings.HasPrefix(peer, "shop/") && !strings.HasPrefix(peer, "kube-system/") {
					outside = append(outside, l)
				}
			}
			if diff := cmp.Diff([]string{"shop/api out TCP/443 dns:api.stripe.com => L4"}, outside); diff != "" {
				t.Errorf("api's egress outside the cluster (-want +Cilium):\n%s", diff)
			}
		})
	}
}

// linesOf are the table's lines that start with the prefix.
func linesOf(tab Table, prefix string) []string {
	var out []string
	for _, l := range tab.Lines() {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return out
}

// envoyRulesFor are the HTTP rules Cilium hands its Envoy for a peer on a port of an endpoint's
// ingress, as merged by the policy engine.
func envoyRulesFor(t *testing.T, e *engine, ep, peer *endpoint, port uint16) *cilium.HttpNetworkPolicyRules {
	t.Helper()
	sp, _, err := e.repo.ComputeSelectorPolicy(&identity.Identity{ID: ep.id, LabelArray: ep.lbls, Labels: ep.lbls.Labels()})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Detach()
	for f, tuple := range sp.RedirectFilters() {
		if f.Ingress && f.Port == port && tuple.Selector.Selects(peer.id) {
			if r := tuple.Policy.EnvoyHTTPRules(); r != nil {
				return r
			}
		}
	}
	t.Fatalf("no HTTP rules for %s on %s:%d", peer.key, ep.key, port)
	return nil
}
