package cilium

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cilium/cilium/pkg/policy/api"
	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/cilium"
	"github.com/servicegraph/servicegraph-operator/internal/compiler"
	"github.com/servicegraph/servicegraph-operator/internal/graph"
)

// root is the operator's repository.
const root = "../.."

// variant is how a graph is compiled: its mesh setting and the cluster's facts.
type variant struct {
	name  string
	mesh  v1alpha1.Mesh
	opts  compiler.Options
	facts compiler.Facts
}

// variants are a graph without a mesh (Cilium enforces paths and methods) and with Istio
// (Cilium must not), both with spec.networkPolicy Cilium on a cluster that serves it.
func variants(opts compiler.Options, facts compiler.Facts) []variant {
	return []variant{{"mesh=None", v1alpha1.MeshNone, opts, facts}, {"mesh=Istio", v1alpha1.MeshIstio, opts, facts}}
}

// compileAll compiles the graphs for Cilium and returns them judged, with their
// CiliumNetworkPolicies as Cilium's watcher reads them.
func compileAll(t *testing.T, graphs []*v1alpha1.ServiceGraph, v variant) ([]judged, []namedResource) {
	t.Helper()
	var js []judged
	var resources []namedResource
	for _, sg := range graphs {
		sg = sg.DeepCopy()
		sg.Spec.NetworkPolicy, sg.Spec.Mesh = v1alpha1.NetworkPolicyCilium, v.mesh
		res, err := compiler.Compile(sg, v.opts, v.facts)
		if err != nil {
			t.Fatalf("%s: %v", sg.Name, err)
		}
		if !res.Generated(compiler.CiliumNetworkPolicies) || res.Generated(compiler.NetworkPolicies) {
			t.Fatalf("%s: CiliumNetworkPolicies are not what is generated", sg.Name)
		}
		j := judged{g: res.Graph, res: res, istio: !slices.Contains(res.Off, compiler.LayerIstio) && !slices.Contains(res.Disabled, compiler.LayerIstio)}
		for _, obj := range res.Objects() {
			if p, ok := obj.(*cilium.CiliumNetworkPolicy); ok {
				r := asCilium(t, p)
				if j.istio && hasHTTP(r.rules) {
					t.Errorf("%s: HTTP rules in Cilium while Istio enforces layer 7 (Cilium cannot read inside mutual TLS)", p.Name)
				}
				resources = append(resources, r)
			}
		}
		for _, a := range v.facts.APIServer {
			j.apiServer = append(j.apiServer, a.Port)
		}
		js = append(js, j)
	}
	return js, resources
}

// judge has Cilium resolve the policies for every pod of the graphs' namespaces and compares
// the table with what the graphs say, both ways.
func judge(t *testing.T, js []judged, resources []namedResource) (*cluster, Table) {
	t.Helper()
	var graphs []*graph.Graph
	for _, j := range js {
		graphs = append(graphs, j.g)
	}
	c := newCluster(t, graphs, fqdnSelectors(resources))
	var eps []*endpoint
	for _, ep := range c.endpoints {
		if ep.pod && slices.ContainsFunc(js, func(j judged) bool { return j.g.Namespace == ep.namespace }) {
			eps = append(eps, ep)
		}
	}
	got := newEngine(c, resources).table(t, eps)
	if diff := cmp.Diff(expected(c, js).Lines(), got.Lines()); diff != "" {
		t.Errorf("what Cilium lets through differs from the graph (-graph +Cilium):\n%s", diff)
	}
	return c, got
}

// goldenCase is an input of the compiler's golden tests with the options and facts it compiles
// under there (internal/compiler/golden_test.go), less what this suite cannot judge.
type goldenCase struct {
	name     string
	opts     func(*compiler.Options)
	facts    compiler.Facts
	excluded string // why its golden form is not judged here
}

var apiServerFacts = compiler.Facts{APIServer: []compiler.APIServerEndpoint{{Address: "172.18.0.2", Port: 6443}}}

func clusterCIDRs(o *compiler.Options) { o.ClusterCIDRs = []string{"10.96.0.0/12", "10.244.0.0/16"} }

// ambientReason is why a graph in ambient mode is judged here without it: ztunnel and the
// waypoint carry its traffic on HBONE (15008), so which pod may call which is decided by mesh
// identities at ztunnel and the waypoint (test/istio judges those), not by Cilium's layer 3/4.
const ambientReason = "ambient mode: traffic rides HBONE through ztunnel and the waypoint, judged by test/istio; judged here without ambient facts"

var goldenCases = map[string]goldenCase{
	"external":        {opts: clusterCIDRs, facts: apiServerFacts},
	"cilium-external": {opts: clusterCIDRs, facts: apiServerFacts},
	"istio-off":       {facts: compiler.Facts{Missing: compiler.Builtin().KindsOf(compiler.LayerIstio)}},
	"ambient":         {excluded: ambientReason},
	"ambient-create":  {excluded: ambientReason},
	"ambient-mixed":   {excluded: ambientReason},
	"cilium-ambient":  {excluded: ambientReason},
}

// TestGoldenInputsAsCiliumResolvesThem runs every golden input of the compiler through Cilium
// without a mesh and with Istio.
func TestGoldenInputsAsCiliumResolvesThem(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(root, "internal", "compiler", "testdata", "input", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("golden inputs: %v", err)
	}
	excluded := 0
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		gc := goldenCases[name]
		if gc.excluded != "" {
			excluded++
			t.Logf("%s: its golden facts not judged (%s)", name, gc.excluded)
		}
		opts := compiler.DefaultOptions()
		if gc.opts != nil {
			gc.opts(&opts)
		}
		sg := readGraph(t, f)
		for _, v := range variants(opts, gc.facts) {
			t.Run(name+"/"+v.name, func(t *testing.T) {
				js, resources := compileAll(t, []*v1alpha1.ServiceGraph{sg}, v)
				judge(t, js, resources)
			})
		}
	}
	t.Logf("%d golden inputs judged in 2 variants each; %d of them not in the ambient mode of their golden facts", len(files), excluded)
}

func readGraph(t *testing.T, path string) *v1alpha1.ServiceGraph {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sg := &v1alpha1.ServiceGraph{}
	if err := yaml.UnmarshalStrict(data, sg); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return sg
}

func hasHTTP(rules api.Rules) bool {
	for _, r := range rules {
		for _, in := range r.Ingress {
			if slices.ContainsFunc(in.ToPorts, func(p api.PortRule) bool { return p.Rules != nil && len(p.Rules.HTTP) > 0 }) {
				return true
			}
		}
		for _, out := range r.Egress {
			if slices.ContainsFunc(out.ToPorts, func(p api.PortRule) bool { return p.Rules != nil && len(p.Rules.HTTP) > 0 }) {
				return true
			}
		}
	}
	return false
}

func subset(want, have map[string]string) bool {
	for k, v := range want {
		if hv, ok := have[k]; !ok || hv != v {
			return false
		}
	}
	return true
}

func intOrString(p int32) intstr.IntOrString { return intstr.FromInt32(p) }

// contains is whether the endpoint's address lies in one of the ranges.
func contains(cidrs []string, e *endpoint) bool {
	return slices.ContainsFunc(cidrs, func(c string) bool { return netip.MustParsePrefix(c).Contains(e.addr) })
}
