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

// --base proposes the existing graph plus what it does not allow, under its name and its
// services' names; diff shows the connections the addition opens.
func TestDiscoverBase(t *testing.T) {
	log := "../traffic/testdata/accesslog/istio-docs-httpbin.log"
	dir := t.TempDir()
	base := filepath.Join(dir, "base.yaml")
	write := func(path, content string) {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(base, `apiVersion: policy.servicegraph.io/v1alpha1
kind: ServiceGraph
metadata: {name: foo-graph, namespace: foo}
spec:
  services:
  - name: client
    selector: {matchLabels: {app: sleep}}
    serviceAccount: sleep
  - name: httpbin
    selector: {matchLabels: {app: httpbin}}
  edges: [httpbin->client:8080]
`)
	code, proposed, stderr := run(t, "", "discover", "--access-log", log, "-n", "foo", "-f", "testdata/traffic/httpbin.yaml", "--base", base)
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"name: foo-graph", "- name: client", "- httpbin->client:8080", "from: client\n    to: httpbin\n"} {
		if !strings.Contains(proposed, want) {
			t.Errorf("no %q in\n%s", want, proposed)
		}
	}
	if strings.Contains(proposed, "- name: sleep") {
		t.Errorf("the base's service client selects sleep's pods: no second service for them\n%s", proposed)
	}
	workloads, err := os.ReadFile("testdata/traffic/httpbin.yaml")
	if err != nil {
		t.Fatal(err)
	}
	oldDir, newDir := filepath.Join(dir, "old"), filepath.Join(dir, "new")
	for _, d := range []string{oldDir, newDir} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		write(filepath.Join(d, "workloads.yaml"), string(workloads))
	}
	withEdge := filepath.Join(newDir, "graph.yaml")
	write(filepath.Join(oldDir, "graph.yaml"), mustRead(t, base))
	write(withEdge, proposed)
	code, diff, stderr := run(t, "", "diff", oldDir, newDir)
	if code != ExitOK || !strings.Contains(diff, "+  foo/sleep") || !strings.Contains(diff, "TCP/80 /status/418  opens") {
		t.Errorf("diff: exit %d\n%s%s", code, diff, stderr)
	}
	// A base that allows it already: nothing to add.
	code, again, _ := run(t, "", "discover", "--access-log", log, "-n", "foo", "-f", "testdata/traffic/httpbin.yaml", "--base", withEdge)
	if code != ExitOK || strings.Count(again, "from: client") != 1 {
		t.Errorf("exit %d\n%s", code, again)
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// A namespace without traffic gets no graph (one without edges would not compile) but a note; with
// none at all, there is no data: exit 2.
func TestDiscoverQuietNamespace(t *testing.T) {
	log := "../traffic/testdata/accesslog/istio-docs-httpbin.log"
	code, stdout, stderr := run(t, "", "discover", "--access-log", log, "-n", "foo,bar", "-f", "testdata/traffic/httpbin.yaml")
	if code != ExitOK || strings.Count(stdout, "kind: ServiceGraph") != 1 || strings.Contains(stdout, "---") ||
		!strings.Contains(stderr, "no connection of namespace bar") {
		t.Errorf("exit %d\n%s%s", code, stdout, stderr)
	}
	if code, stdout, stderr := run(t, "", "discover", "--access-log", log, "-n", "bar", "-f", "testdata/traffic/httpbin.yaml"); code != ExitNoData || stdout != "" {
		t.Errorf("exit %d\n%s%s", code, stdout, stderr)
	}
}
