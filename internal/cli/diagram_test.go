package cli

import (
	"os"
	"strings"
	"testing"
)

const seedGraph = "../../config/samples/policy_v1alpha1_servicegraph.yaml"

// The seed scenario and the multi-namespace fixture, in both formats.
func TestGraphGolden(t *testing.T) {
	inputs := map[string]string{"seed": seedGraph, "graphs": "testdata/graphs"}
	for name, path := range inputs {
		for format, ext := range map[string]string{"mermaid": "mmd", "dot": "dot"} {
			t.Run(name+" "+format, func(t *testing.T) {
				code, stdout, stderr := run(t, "", "graph", "-f", path, "--format", format)
				if code != ExitOK || stderr != "" {
					t.Fatalf("exit %d, stderr:\n%s", code, stderr)
				}
				golden(t, "graph/"+name+".golden."+ext, stdout)
			})
		}
	}
}

// Mermaid is the default format; the order of inputs never shows; an edge that two graphs both
// write (the two sides of a cross-namespace edge) is drawn once.
func TestGraphDeterministic(t *testing.T) {
	_, forward, _ := run(t, "", "graph", "-f", "testdata/graphs/shop.yaml", "-f", "testdata/graphs/payments", "--format", "mermaid")
	_, backward, _ := run(t, "", "graph", "-f", "testdata/graphs/payments", "-f", "testdata/graphs/shop.yaml")
	if forward != backward || !strings.HasPrefix(forward, "flowchart LR\n") {
		t.Errorf("outputs differ:\n%s\n%s", forward, backward)
	}
	shop := `apiVersion: policy.servicegraph.io/v1alpha1
kind: ServiceGraph
metadata: {name: shop, namespace: shop}
spec:
  services: [{name: api}, {name: gateway, namespace: payments}]
  edges: [api -> payments/gateway:443]
`
	code, stdout, stderr := run(t, shop, "graph", "-f", "-", "-f", "testdata/graphs/payments")
	if code != ExitOK || strings.Count(stdout, "-->") != 2 {
		t.Errorf("exit %d, stderr %q, want 2 arrows:\n%s", code, stderr, stdout)
	}
}

func TestGraphErrors(t *testing.T) {
	code, stdout, stderr := run(t, "", "graph", "-f", "testdata/invalid/bad.yaml")
	want, err := os.ReadFile("testdata/invalid.golden.txt")
	if err != nil {
		t.Fatal(err)
	}
	if code != ExitInvalid || stdout != "" || !strings.Contains(string(want), stderr) || stderr == "" {
		t.Errorf("invalid graph: exit %d, stdout %q, stderr:\n%s", code, stdout, stderr)
	}
	for _, args := range [][]string{{"graph"}, {"graph", "-f", "x", "--format", "svg"}} {
		if code, _, stderr := run(t, "", args...); code != ExitUsage || !strings.Contains(stderr, "Usage: servicegraph graph") {
			t.Errorf("%v: exit %d, stderr:\n%s", args, code, stderr)
		}
	}
}

// Paths may hold characters that Mermaid and DOT read as markup or quotes; names that are
// Mermaid keywords stay labels, never IDs.
func TestGraphEscaping(t *testing.T) {
	in := `apiVersion: policy.servicegraph.io/v1alpha1
kind: ServiceGraph
metadata: {name: g, namespace: end}
spec:
  services: [{name: end}, {name: graph}]
  connections: [{from: end, to: graph, ports: [{port: 80, protocol: HTTP}], paths: ['/q"#<b>\x']}]
`
	_, mermaid, _ := run(t, in, "graph", "-f", "-")
	if !strings.Contains(mermaid, `s1 -->|"80(HTTP) /q#quot;#35;#lt;b#gt;\x"| s2`) || !strings.Contains(mermaid, "subgraph ns1 [end]\n    s1[end]\n") {
		t.Errorf("mermaid:\n%s", mermaid)
	}
	_, dot, _ := run(t, in, "graph", "-f", "-", "--format", "dot")
	if !strings.Contains(dot, `"end/end" -> "end/graph" [label="80(HTTP) /q\"#<b>\\x"];`) {
		t.Errorf("dot:\n%s", dot)
	}
}
