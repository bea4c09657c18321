package compiler

import (
	"path/filepath"
	"testing"

	"github.com/servicegraph/servicegraph-operator/internal/golden"
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
