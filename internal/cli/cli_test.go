package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	goldenfile "github.com/servicegraph/servicegraph-operator/internal/golden"
)

// run runs the command line and returns its exit status, stdout and stderr.
func run(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := Main(args, strings.NewReader(stdin), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// golden compares got with testdata/<name>, or rewrites it under -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	goldenfile.Check(t, filepath.Join("testdata", name), got)
}

// A directory: every manifest below it, non-ServiceGraph documents and other files skipped, graphs
// sorted by namespace and name, a graph without namespace in "default", Lists looked into.
func TestCompileDirectory(t *testing.T) {
	code, stdout, stderr := run(t, "", "compile", "-f", "testdata/graphs")
	if code != ExitOK || stderr != "" {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	golden(t, "graphs.golden.yaml", stdout)
}

// Invalid input: exit 1, every error on stderr naming the file, the graph and the edge, and
// nothing on stdout.
func TestCompileInvalid(t *testing.T) {
	code, stdout, stderr := run(t, "", "compile", "-f", "testdata/invalid")
	if code != ExitInvalid || stdout != "" {
		t.Fatalf("exit %d, stdout %q; want 1 and nothing", code, stdout)
	}
	golden(t, "invalid.golden.txt", stderr)
}

// Standard input and a file give the same output; so do a file given twice (a duplicate graph is
// an error, not silently merged).
func TestCompileStdin(t *testing.T) {
	sample, err := os.ReadFile("testdata/graphs/shop.yaml")
	if err != nil {
		t.Fatal(err)
	}
	_, fromFile, _ := run(t, "", "compile", "-f", "testdata/graphs/shop.yaml")
	code, fromStdin, stderr := run(t, string(sample), "compile", "-f", "-")
	if code != ExitOK || fromStdin != fromFile || fromFile == "" {
		t.Errorf("stdin: exit %d, stderr %q, output differs from the file's: %v", code, stderr, fromStdin != fromFile)
	}
	code, stdout, stderr := run(t, string(sample), "compile", "-f", "-", "-f", "testdata/graphs/shop.yaml")
	want := "testdata/graphs/shop.yaml: ServiceGraph shop/shop: also defined in <stdin>\n"
	if code != ExitInvalid || stdout != "" || stderr != want {
		t.Errorf("duplicate: exit %d stdout %q stderr %q, want %q", code, stdout, stderr, want)
	}
}

func TestCompileFlags(t *testing.T) {
	code, stdout, _ := run(t, "", "compile", "--istio=false", "-f", "testdata/graphs/shop.yaml")
	if code != ExitOK || strings.Contains(stdout, "istio") || !strings.Contains(stdout, "kind: NetworkPolicy") {
		t.Errorf("--istio=false: exit %d, output:\n%s", code, stdout)
	}
	code, stdout, _ = run(t, "", "compile", "--trust-domain", "mesh.example", "-f", "testdata/graphs/shop.yaml")
	if code != ExitOK || !strings.Contains(stdout, "- mesh.example/ns/shop/sa/web\n") {
		t.Errorf("--trust-domain: exit %d, output:\n%s", code, stdout)
	}
	for _, flags := range [][]string{{"-o", "json"}, {"--output", "json"}, {"--output=json"}, {"-output=yaml", "-o=json"}} {
		code, stdout, _ = run(t, "", append(append([]string{"compile"}, flags...), "-f", "testdata/graphs/shop.yaml")...)
		if code != ExitOK || !strings.HasPrefix(stdout, "{\n  \"apiVersion\": \"v1\",\n  \"items\": [") {
			t.Errorf("%v: exit %d, output:\n%.200s", flags, code, stdout)
		}
	}
	code, stdout, _ = run(t, "", "compile", "--output", "yaml", "--istio=true", "-f", "testdata/graphs/shop.yaml")
	if code != ExitOK || !strings.HasPrefix(stdout, "---\n") || !strings.Contains(stdout, "kind: PeerAuthentication") {
		t.Errorf("--output yaml --istio=true: exit %d, output:\n%.200s", code, stdout)
	}
}

func TestUsage(t *testing.T) {
	tests := []struct {
		args       []string
		code       int
		wantStderr string
	}{
		{nil, ExitUsage, "Usage: servicegraph COMMAND"},
		{[]string{"frobnicate"}, ExitUsage, `unknown command "frobnicate"`},
		{[]string{"compile"}, ExitUsage, "-f is required"},
		{[]string{"compile", "-f", "x", "extra"}, ExitUsage, `unexpected argument "extra"`},
		{[]string{"compile", "--bogus"}, ExitUsage, "flag provided but not defined: -bogus"},
		{[]string{"compile", "-o", "xml", "-f", "x"}, ExitUsage, `-o must be yaml or json, not "xml"`},
		{[]string{"compile", "--output", "xml", "-f", "x"}, ExitUsage, `-o must be yaml or json, not "xml"`},
		{[]string{"compile", "-h"}, ExitOK, "Usage: servicegraph compile"},
		{[]string{"compile", "-f", "testdata/does-not-exist.yaml"}, ExitInvalid, "stat testdata/does-not-exist.yaml: no such file or directory"},
		{[]string{"compile", "-f", "testdata/graphs/payments/notes.txt"}, ExitInvalid, "testdata/graphs/payments/notes.txt: document 1: not a Kubernetes object"},
		{[]string{"compile", "-f", "testdata/no-graph.yaml"}, ExitInvalid, "no ServiceGraph found in testdata/no-graph.yaml"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, stdout, stderr := run(t, "", tc.args...)
			if code != tc.code || stdout != "" || !strings.Contains(stderr, tc.wantStderr) {
				t.Errorf("exit %d (want %d), stdout %q, stderr:\n%s\nwant it to contain %q", code, tc.code, stdout, stderr, tc.wantStderr)
			}
		})
	}
	if code, stdout, _ := run(t, "", "help"); code != ExitOK || !strings.Contains(stdout, "compile") || !strings.Contains(stdout, "lint") || !strings.Contains(stdout, "graph") {
		t.Errorf("help: exit %d, stdout %q", code, stdout)
	}
}
