package cilium

import (
	"strings"
	"testing"

	cmtypes "github.com/cilium/cilium/pkg/clustermesh/types"
	ciliumv2 "github.com/cilium/cilium/pkg/k8s/apis/cilium.io/v2"
	"sigs.k8s.io/yaml"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/cilium"
	"github.com/servicegraph/servicegraph-operator/internal/compiler"
	"github.com/servicegraph/servicegraph-operator/internal/render"
)

// noMesh compiles for Cilium without a mesh, on a cluster that serves everything.
var noMesh = variant{"mesh=None", v1alpha1.MeshNone, compiler.DefaultOptions(), compiler.Facts{}}

// TestServiceAccountLimitIsCiliums: a caller's ServiceAccount is a label value in Cilium's
// selectors. At 63 characters the graph compiles and Cilium takes and resolves its policies; one
// more, and Cilium's CRD schema and its parser refuse the policy, which is why the graph refuses
// such a ServiceAccount with networkPolicy Cilium.
func TestServiceAccountLimitIsCiliums(t *testing.T) {
	sg := readGraph(t, root+"/internal/compiler/testdata/input/seed.yaml")
	sg.Spec.Services[0].ServiceAccount = strings.Repeat("w", 63) // web, api's caller
	js, resources := compileAll(t, []*v1alpha1.ServiceGraph{sg}, noMesh)
	judge(t, js, resources)

	var api *cilium.CiliumNetworkPolicy
	for _, o := range js[0].res.Objects() {
		if p, ok := o.(*cilium.CiliumNetworkPolicy); ok && p.Name == "shop-svc-api" {
			api = p.DeepCopy()
		}
	}
	api.Spec.Ingress[0].FromEndpoints[0].MatchLabels["k8s:io.cilium.k8s.policy.serviceaccount"] = strings.Repeat("w", 64)
	u, err := render.ToUnstructured(api)
	if err != nil {
		t.Fatal(err)
	}
	v, err := crdValidator()
	if err != nil {
		t.Fatal(err)
	}
	if errs := validationErrors(u.Object, v); len(errs) == 0 {
		t.Error("Cilium's CRD schema takes a 64-character ServiceAccount")
	}
	data, _ := u.MarshalJSON()
	theirs := &ciliumv2.CiliumNetworkPolicy{}
	if err := yaml.Unmarshal(data, theirs); err != nil {
		t.Fatal(err)
	}
	if _, err := theirs.Parse(logger, cmtypes.LocalClusterNameForPolicies(cmtypes.DefaultPolicyConfig, clusterName)); err == nil {
		t.Error("Cilium's parser takes a 64-character ServiceAccount")
	}

	sg.Spec.Services[0].ServiceAccount = strings.Repeat("w", 64)
	sg.Spec.NetworkPolicy = v1alpha1.NetworkPolicyCilium
	if _, err := compiler.Compile(sg, compiler.DefaultOptions(), compiler.Facts{}); err == nil {
		t.Error("the graph takes a 64-character ServiceAccount with networkPolicy Cilium")
	}
}

// TestPathWithQueryIsRefused: Cilium's proxy matches a path's expression against the whole
// request target, query string included, so a graph path with "?" would let requests through
// that Istio's reading (the path without its query) never matches; the graph refuses it with
// networkPolicy Cilium.
func TestPathWithQueryIsRefused(t *testing.T) {
	rules := envoyRules(t, compiler.CiliumPath("/search?q=1"))
	if !envoyAllows(t, rules, "GET", "/search?q=1") {
		t.Fatal("Cilium's rule does not match the query string: the refusal would not be needed")
	}
	for _, path := range []string{"/search?q=1", "/a#b"} {
		sg := readGraph(t, root+"/internal/compiler/testdata/input/seed.yaml")
		sg.Spec.Edges = []string{"web->api:8080" + path}
		sg.Spec.NetworkPolicy = v1alpha1.NetworkPolicyCilium
		if _, err := compiler.Compile(sg, compiler.DefaultOptions(), compiler.Facts{}); err == nil {
			t.Errorf("the graph takes path %q with networkPolicy Cilium", path)
		}
	}
}

// TestOneCallerSeveralEdgesOnAPort: edges from one caller that share a port but not their other
// ports become separate Cilium rules for the same selector, and Cilium adds up their HTTP rules
// per port (a rule without any makes the port HTTP-only, every request allowed). What passes must
// still be what the graph says: a TCP edge leaves the port open to anything, HTTP edges add up.
func TestOneCallerSeveralEdgesOnAPort(t *testing.T) {
	for _, edges := range [][]string{
		{"web->api:8080/a", "web->api:8080,9090"},
		{"web->api:8080,9090", "web->api:8080/a"},
		{"web->api:8080/a", "web->api:8080,9090/b"},
		{"web->api:8080/a", "web->api:9090,8080/b", "web->api:8080,7070"},
		{"web->api:http/a", "web->api:http,9090/b"},
	} {
		t.Run(strings.Join(edges, " "), func(t *testing.T) {
			sg := readGraph(t, root+"/internal/compiler/testdata/input/seed.yaml")
			sg.Spec.Edges = edges
			for _, v := range variants(compiler.DefaultOptions(), compiler.Facts{}) {
				js, resources := compileAll(t, []*v1alpha1.ServiceGraph{sg}, v)
				judge(t, js, resources)
			}
		})
	}
}
