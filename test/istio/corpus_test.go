package istio

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"istio.io/istio/pilot/pkg/config/kube/crd"
	"istio.io/istio/pkg/config"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/compiler"
	"github.com/servicegraph/servicegraph-operator/internal/graph"
	"github.com/servicegraph/servicegraph-operator/internal/render"
	"github.com/servicegraph/servicegraph-operator/test/world"
)

// root is the operator's repository.
const root = "../.."

// randomWorlds is how many random worlds (fixed seeds) join the golden graphs and the seed.
const randomWorlds = 60

// graphCase is a graph Istio judges, with a name for failures.
type graphCase struct {
	name string
	sg   *v1alpha1.ServiceGraph
}

// corpus is every golden input of the compiler, the sample (the seed scenario), and the graphs of
// random worlds: named ports, peers in other namespaces both ways, HTTP and GRPC ports with paths,
// UDP and SCTP; every third world also in Audit mode.
func corpus(t *testing.T) []graphCase {
	t.Helper()
	var out []graphCase
	files, err := filepath.Glob(filepath.Join(root, "internal", "compiler", "testdata", "input", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("golden inputs: %v", err)
	}
	for _, f := range append(files, filepath.Join(root, "config", "samples", "policy_v1alpha1_servicegraph.yaml")) {
		out = append(out, graphCase{name: filepath.Base(f), sg: readGraph(t, f)})
	}
	rng := rand.New(rand.NewPCG(16, 2026))
	for i := range randomWorlds {
		w := world.Random(rng, world.Options{MaxServices: 20, Namespaces: 3})
		w.Istio = true
		for _, sg := range w.Graphs(rng) {
			out = append(out, graphCase{name: fmt.Sprintf("world-%02d/%s", i, sg.Namespace), sg: sg})
			if i%3 == 0 {
				audit := sg.DeepCopy()
				audit.Spec.Enforcement = v1alpha1.EnforcementAudit
				out = append(out, graphCase{name: fmt.Sprintf("world-%02d/%s/audit", i, sg.Namespace), sg: audit})
			}
		}
	}
	return out
}

func readGraph(t *testing.T, path string) *v1alpha1.ServiceGraph {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sg := &v1alpha1.ServiceGraph{}
	if err := yaml.Unmarshal(data, sg); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return sg
}

// compiled compiles a graph for a cluster with Istio and returns the result and its Istio objects
// as Istio's own configuration parser reads them from the YAML the operator applies.
func compiled(t *testing.T, c graphCase) (*compiler.Result, []config.Config) {
	t.Helper()
	res, err := compiler.Compile(c.sg, compiler.DefaultOptions(), compiler.Facts{})
	if err != nil {
		t.Fatalf("%s: %v", c.name, err)
	}
	var istio []compiler.Object
	for _, obj := range res.Objects() {
		if strings.HasSuffix(obj.GetObjectKind().GroupVersionKind().Group, "istio.io") {
			istio = append(istio, obj)
		}
	}
	data, err := render.YAML(istio)
	if err != nil {
		t.Fatal(err)
	}
	configs, _, err := crd.ParseInputs(string(data))
	if err != nil {
		t.Fatalf("%s: Istio cannot parse the objects: %v", c.name, err)
	}
	if len(configs) != len(istio) {
		t.Fatalf("%s: Istio parsed %d of %d objects", c.name, len(configs), len(istio))
	}
	return res, configs
}

// graphOf is the validated graph with its defaults, as the compiler read it.
func graphOf(t *testing.T, sg *v1alpha1.ServiceGraph) *graph.Graph {
	t.Helper()
	g, err := graph.Build(sg)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// istioSrc is the istio.io/istio module's directory, for its CRDs.
func istioSrc(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "istio.io/istio").Output()
	if err != nil {
		t.Fatalf("locating istio.io/istio: %v", err)
	}
	return strings.TrimSpace(string(out))
}
