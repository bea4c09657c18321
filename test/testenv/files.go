package testenv

import (
	"os"
	"testing"

	"sigs.k8s.io/yaml"
)

// ReadYAML decodes a YAML file of the repository (a chart's values, a kustomization, a test
// table) into `into`, failing the test when it cannot.
func ReadYAML(t testing.TB, path string, into any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, into); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
