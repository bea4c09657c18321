package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// runMain makes the test binary act as the command when a test re-executes it under another name.
const runMain = "SERVICEGRAPH_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMain) == "1" {
		main()
	}
	os.Exit(m.Run())
}

// As a kubectl plugin the binary is found as kubectl-servicegraph and kubectl passes the
// arguments after "kubectl servicegraph": the program's own name must not matter.
func TestKubectlPluginName(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	sample, err := filepath.Abs("../../config/samples/policy_v1alpha1_servicegraph.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var outputs []string
	for _, name := range []string{"servicegraph", "kubectl-servicegraph"} {
		link := filepath.Join(dir, name)
		if err := os.Symlink(self, link); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(link, "lint", "-f", sample)
		cmd.Env = append(os.Environ(), runMain+"=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s lint: %v\n%s", name, err, out)
		}
		outputs = append(outputs, string(out))
	}
	if outputs[0] != outputs[1] || !strings.Contains(outputs[0], "0 errors, 0 warnings, 0 notes in 1 object") {
		t.Errorf("outputs differ or are unexpected:\n%s\n%s", outputs[0], outputs[1])
	}
}
