package chart

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/servicegraph/servicegraph-operator/test/testenv"
)

// The chart's README documents every value and every flag, and its Argo CD health check is the
// script config/argocd ships (and test/argocd runs).
func TestChartREADME(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(chartDir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := string(data)
	var values map[string]any
	testenv.ReadYAML(t, filepath.Join(chartDir, "values.yaml"), &values)
	for key, v := range values {
		if !strings.Contains(readme, "`"+key) && !strings.Contains(readme, ", `"+key) {
			t.Errorf("README.md does not document value %s", key)
		}
		if key == "flags" {
			for flag := range v.(map[string]any) {
				if !strings.Contains(readme, "| `"+flag+"` |") {
					t.Errorf("README.md's flag table lacks %s", flag)
				}
			}
		}
	}

	script, err := os.ReadFile(filepath.Join(testenv.Root(), "config", "argocd", "resource_customizations",
		"policy.servicegraph.io", "ServiceGraph", "health.lua"))
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, block := range regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(readme, -1) {
		var cm struct {
			Kind     string
			Metadata struct{ Name string }
			Data     map[string]string
		}
		if yaml.Unmarshal([]byte(block[1]), &cm) != nil || cm.Kind != "ConfigMap" || cm.Metadata.Name != "argocd-cm" {
			continue
		}
		found = true
		if got := cm.Data["resource.customizations.health.policy.servicegraph.io_ServiceGraph"]; got != string(script) {
			t.Errorf("README.md's Argo CD health check differs from health.lua:\n%s", got)
		}
	}
	if !found {
		t.Error("README.md has no argocd-cm snippet")
	}
}
