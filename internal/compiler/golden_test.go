package compiler

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// goldenCases pairs each input under testdata/input with the options it compiles under; the
// compiled YAML (what `servicegraph compile` prints) is testdata/golden/<name>.yaml.
var goldenCases = []struct {
	name string
	opts func(*Options)
}{
	{name: "seed"},
	{name: "cross-namespace"},
	{name: "named-ports"},
	{name: "connections"},
	{name: "istio-off", opts: func(o *Options) { o.Istio = false }},
	{name: "no-dns"},
	{name: "long-names", opts: func(o *Options) { o.TrustDomain = "mesh.example.com" }},
	{name: "audit"},
}

func TestGolden(t *testing.T) {
	for _, tc := range goldenCases {
		t.Run(tc.name, func(t *testing.T) {
			opts := DefaultOptions()
			if tc.opts != nil {
				tc.opts(&opts)
			}
			sg := readGraph(t, filepath.Join("testdata", "input", tc.name+".yaml"))
			got := mustYAML(t, mustCompile(t, sg, opts).Objects())
			path := filepath.Join("testdata", "golden", tc.name+".yaml")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("%s differs from the compiled output (-want +got; go test -update rewrites it):\n%s", path, diff)
			}
		})
	}
}
