package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Istio's access-log sample, with the pods exported from the cluster: the caller and the
// destination are found by their addresses, the port is the pod's, and audit judges the graph
// that lacks the edge.
func TestDiscoverAndAuditAccessLog(t *testing.T) {
	log := "../traffic/testdata/accesslog/istio-docs-httpbin.log"
	code, stdout, stderr := run(t, "", "discover", "--access-log", log, "-n", "foo", "-f", "testdata/traffic/httpbin.yaml")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"- name: httpbin\n", "- name: sleep\n", "from: sleep\n    to: httpbin\n    ports:\n    - port: 80\n", "paths: [/status/418]", "methods: [GET]"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("no %q in\n%s", want, stdout)
		}
	}
	graph := filepath.Join(t.TempDir(), "graph.yaml")
	if err := os.WriteFile(graph, []byte(stdout), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, stderr := run(t, "", "audit", "--access-log", log, "-f", graph, "-f", "testdata/traffic/httpbin.yaml"); code != ExitCovered {
		t.Errorf("audit of the proposal: exit %d\n%s%s", code, out, stderr)
	}
	without, _, _ := strings.Cut(stdout, "  connections:")
	if err := os.WriteFile(graph, []byte(without+"  edges: [httpbin->sleep:8080]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := run(t, "", "audit", "--access-log", log, "-f", graph, "-f", "testdata/traffic/httpbin.yaml")
	if code != ExitRefused || !strings.Contains(out, "foo/sleep -> foo/httpbin TCP/80 /status/418") || !strings.Contains(out, "foo: httpbin->sleep:8080") {
		t.Errorf("audit without the edge: exit %d\n%s%s", code, out, stderr)
	}
}
