package compiler

import (
	"path/filepath"
	"testing"

	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/servicegraph/servicegraph-operator/internal/golden"
	"github.com/servicegraph/servicegraph-operator/internal/semantics"
)

// goldenCases pairs each input under testdata/input with the options it compiles under; the
// compiled YAML (what `servicegraph compile` prints) is testdata/golden/<name>.yaml.
var goldenCases = []struct {
	name  string
	opts  func(*Options)
	facts Facts
}{
	{name: "seed"},
	{name: "cross-namespace"},
	{name: "named-ports"},
	{name: "connections"},
	{name: "istio-off", facts: istioOff()},
	{name: "no-dns"},
	{name: "long-names", opts: func(o *Options) { o.TrustDomain = "mesh.example.com" }},
	{name: "audit"},
	{name: "mesh-none"},
	{name: "remote"},
	{name: "external", opts: func(o *Options) { o.ClusterCIDRs = []string{"10.96.0.0/12", "10.244.0.0/16"} },
		facts: Facts{APIServer: []APIServerEndpoint{{Address: "172.18.0.2", Port: 6443}}}},
	{name: "cilium"},
	{name: "cilium-external", opts: func(o *Options) { o.ClusterCIDRs = []string{"10.96.0.0/12", "10.244.0.0/16"} },
		facts: Facts{APIServer: []APIServerEndpoint{{Address: "172.18.0.2", Port: 6443}}}},
	{name: "cilium-ambient", facts: ambientFacts(map[string]string{"istio.io/use-waypoint": "waypoint"}, true)},
	{name: "ambient", facts: ambientFacts(map[string]string{"istio.io/use-waypoint": "waypoint"}, true)},
	{name: "ambient-create", facts: ambientFacts(nil, false)},
	{name: "ambient-mixed", facts: func() Facts {
		f := ambientFacts(nil, true)
		f.NamespaceLabels = nil
		f.Dataplanes = map[string]semantics.Dataplane{"web": semantics.DataplaneAmbient, "api": semantics.DataplaneSidecar, "database": semantics.DataplaneAmbient}
		return f
	}()},
}

// ambientFacts is the seed's namespace in ambient mode: its Services (database's labelled as
// given), the kubelet's probe ports, and a waypoint, ready or not.
func ambientFacts(databaseLabels map[string]string, ready bool) Facts {
	svc := func(name string, port int32, labels map[string]string) KubeService {
		return KubeService{Name: name, Namespace: "shop", Selector: map[string]string{"app": name}, Labels: labels,
			Ports: []KubeServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(port)}}}
	}
	return Facts{
		NamespaceLabels: map[string]string{"istio.io/dataplane-mode": "ambient"},
		Services:        []KubeService{svc("web", 8080, nil), svc("api", 8080, nil), svc("database", 5432, databaseLabels)},
		ProbePorts:      map[string][]intstr.IntOrString{"api": {intstr.FromInt32(8080)}, "database": {intstr.FromString("health")}},
		Waypoints:       map[string]WaypointFacts{"waypoint": {Ready: ready, ServiceAccount: "waypoint"}},
	}
}

func TestGolden(t *testing.T) {
	for _, tc := range goldenCases {
		t.Run(tc.name, func(t *testing.T) {
			opts := DefaultOptions()
			if tc.opts != nil {
				tc.opts(&opts)
			}
			sg := readGraph(t, filepath.Join("testdata", "input", tc.name+".yaml"))
			got := mustYAML(t, mustCompile(t, sg, opts, tc.facts).Objects())
			golden.Check(t, filepath.Join("testdata", "golden", tc.name+".yaml"), got)
		})
	}
}
