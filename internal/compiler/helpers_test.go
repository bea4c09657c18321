package compiler

import (
	"os"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/render"
)

// readGraph reads one ServiceGraph from a YAML file, rejecting unknown fields.
func readGraph(t testing.TB, path string) *v1alpha1.ServiceGraph {
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

// mustCompile compiles a graph that must be valid, in a cluster that serves every output (or, given
// facts, the cluster they describe).
func mustCompile(t testing.TB, sg *v1alpha1.ServiceGraph, opts Options, facts ...Facts) *Result {
	t.Helper()
	res, err := Compile(sg, opts, append(facts, Facts{})[0])
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return res
}

// mustYAML renders objects that must render.
func mustYAML(t testing.TB, objs []Object) string {
	t.Helper()
	out, err := render.YAML(objs)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	return string(out)
}

// newGraph builds a graph in namespace shop from service names and compact edges.
func newGraph(name string, services []string, edges ...string) *v1alpha1.ServiceGraph {
	sg := &v1alpha1.ServiceGraph{}
	sg.Name, sg.Namespace = name, "shop"
	for _, s := range services {
		sg.Spec.Services = append(sg.Spec.Services, v1alpha1.Service{Name: s})
	}
	sg.Spec.Edges = edges
	return sg
}

// istioOff describes a cluster without Istio.
func istioOff() Facts {
	return Facts{Missing: Builtin().KindsOf(LayerIstio)}
}
