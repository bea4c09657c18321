package chart

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/servicegraph/servicegraph-operator/test/testenv"
)

// template renders the chart as release servicegraph in servicegraph-system (config/default's
// prefix and namespace), CRDs included, with extra helm arguments.
func template(t *testing.T, args ...string) []*unstructured.Unstructured {
	t.Helper()
	return parseDocs(t, helm(t, append([]string{"template", "servicegraph", chartDir,
		"--namespace", "servicegraph-system", "--include-crds"}, args...)...))
}

func TestLint(t *testing.T) {
	helm(t, "lint", "--strict", chartDir)
	helm(t, "lint", "--strict", chartDir, "--namespace", "platform", "--set", "serviceMonitor.enabled=true",
		"--set", "admission.enabled=true", "--set", "flags.metrics-bind-address=0", "--set", "replicaCount=1")
}

// The one source of truth: with the default values the chart renders config/default's objects,
// but for the labels Helm adds and the Namespace (Helm's --create-namespace makes it).
func TestDefaultsRenderConfigDefault(t *testing.T) {
	chart := byKey(t, template(t))
	config := byKey(t, kustomize(t, "default"))
	for k, want := range config {
		if want.GetKind() == "Namespace" {
			continue
		}
		got, ok := chart[k]
		if !ok {
			t.Errorf("the chart does not render %s", k)
			continue
		}
		if d := cmp.Diff(want.Object, withoutHelmLabels(got).Object); d != "" {
			t.Errorf("%s: chart (+) and config/default (-) differ:\n%s", k, d)
		}
		delete(chart, k)
	}
	for k := range chart {
		t.Errorf("the chart renders %s, which config/default has not", k)
	}
}

// Admission on renders config/admission's objects, for the release config/admission assumes. They
// are compared with the files config/admission/kustomization.yaml lists, read as they are: kubectl
// kustomize rewrites folded CEL expressions with more-indented lines (a blank line appears; CEL
// ignores it), which is the kustomize's doing, not the chart's.
func TestAdmissionRendersConfigAdmission(t *testing.T) {
	chart := byKey(t, parseDocs(t, helm(t, "template", "servicegraph", chartDir, "--namespace", "servicegraph-system",
		"--set", "admission.enabled=true", "--show-only", "templates/admission.yaml")))
	var kustomization struct{ Resources []string }
	testenv.ReadYAML(t, filepath.Join(testenv.Root(), "config", "admission", "kustomization.yaml"), &kustomization)
	var config []*unstructured.Unstructured
	for _, file := range kustomization.Resources {
		data, err := os.ReadFile(filepath.Join(testenv.Root(), "config", "admission", file))
		if err != nil {
			t.Fatal(err)
		}
		config = append(config, parseDocs(t, string(data))...)
	}
	if d := cmp.Diff(byKey(t, config), chart); d != "" {
		t.Errorf("chart (+) and config/admission (-) differ:\n%s", d)
	}
	if len(kustomize(t, "admission")) != len(config) {
		t.Error("kubectl kustomize config/admission renders other objects than its files")
	}
}

// The chart's copies of config/'s generated files are current (`make chart-sync` refreshes them).
func TestCopiesAreCurrent(t *testing.T) {
	for copy, source := range map[string]string{
		"crds/policy.servicegraph.io_servicegraphs.yaml": "config/crd/bases/policy.servicegraph.io_servicegraphs.yaml",
		"files/rbac/role.yaml":                           "config/rbac/role.yaml",
		"files/admission/params.yaml":                    "config/admission/params.yaml",
		"files/admission/enforced_namespaces.yaml":       "config/admission/enforced_namespaces.yaml",
		"files/admission/unsafe_policies.yaml":           "config/admission/unsafe_policies.yaml",
	} {
		got, err := os.ReadFile(filepath.Join(chartDir, copy))
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(filepath.Join(testenv.Root(), source))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("charts/servicegraph-operator/%s differs from %s: run `make chart-sync`", copy, source)
		}
	}
	entries, err := os.ReadDir(filepath.Join(testenv.Root(), "config", "crd", "bases"))
	if err != nil {
		t.Fatal(err)
	}
	crds, err := os.ReadDir(filepath.Join(chartDir, "crds"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(crds) {
		t.Errorf("config/crd/bases has %d CRDs, the chart's crds/ %d: run `make chart-sync`", len(entries), len(crds))
	}
}

// The image the chart deploys by default is config/manager's.
func TestAppVersionIsConfigImage(t *testing.T) {
	var chart struct{ AppVersion string }
	testenv.ReadYAML(t, filepath.Join(chartDir, "Chart.yaml"), &chart)
	var values struct {
		Image struct{ Repository, Tag string }
	}
	testenv.ReadYAML(t, filepath.Join(chartDir, "values.yaml"), &values)
	var kustomization struct {
		Images []struct{ Name, NewName, NewTag string }
	}
	testenv.ReadYAML(t, filepath.Join(testenv.Root(), "config", "manager", "kustomization.yaml"), &kustomization)
	if len(kustomization.Images) != 1 {
		t.Fatalf("config/manager sets %d images, want 1", len(kustomization.Images))
	}
	img := kustomization.Images[0]
	if chart.AppVersion != img.NewTag || values.Image.Repository != img.NewName || values.Image.Tag != "" {
		t.Errorf("chart image %s:%s (appVersion %s), config/manager %s:%s", values.Image.Repository, values.Image.Tag, chart.AppVersion, img.NewName, img.NewTag)
	}
}

// Non-default values: another release name and namespace, every optional part on.
func TestNonDefaultValues(t *testing.T) {
	objs := byKey(t, parseDocs(t, helm(t, "template", "ops", chartDir, "--namespace", "platform",
		"--set", "flags.trust-domain=example.org", "--set", "flags.cluster-cidrs=10.244.0.0/16\\,10.96.0.0/12",
		"--set", "flags.max-concurrent-reconciles=16", "--set", "flags.audit-queue-size=1000000",
		"--set", "replicaCount=3", "--set", "image.repository=registry.example/sg", "--set", "image.tag=v1.2.3",
		"--set", "extraArgs={--zap-log-level=debug}", "--set", "serviceMonitor.enabled=true",
		"--set", "metrics.readers[0].name=prometheus", "--set", "metrics.readers[0].namespace=monitoring",
		"--set", "admission.enabled=true", "--set", "admission.validationActions={Warn,Audit}",
		"--set", "nodeSelector.kubernetes\\.io/os=linux")))
	dep := objs["Deployment platform/ops-servicegraph-controller-manager"]
	if dep == nil {
		t.Fatalf("no Deployment ops-servicegraph-controller-manager in platform; rendered %v", slices.Sorted(maps.Keys(objs)))
	}
	container := nested(t, dep, "spec", "template", "spec", "containers").([]any)[0].(map[string]any)
	args := strings.Join(toStrings(container["args"]), " ")
	for _, want := range []string{"--trust-domain=example.org", "--cluster-cidrs=10.244.0.0/16,10.96.0.0/12",
		"--max-concurrent-reconciles=16", "--audit-queue-size=1000000", "--leader-elect=true"} {
		if !strings.Contains(args, want) {
			t.Errorf("args %q lack %s", args, want)
		}
	}
	if !strings.HasSuffix(args, "--zap-log-level=debug") {
		t.Errorf("extraArgs do not come last: %s", args)
	}
	if container["image"] != "registry.example/sg:v1.2.3" || fmt.Sprint(nested(t, dep, "spec", "replicas")) != "3" {
		t.Errorf("image %v, replicas %v", container["image"], nested(t, dep, "spec", "replicas"))
	}
	if nested(t, dep, "spec", "template", "spec", "nodeSelector", "kubernetes.io/os") != "linux" {
		t.Error("nodeSelector not rendered")
	}
	subject := map[string]any{"kind": "ServiceAccount", "name": "ops-servicegraph-controller-manager", "namespace": "platform"}
	for _, k := range []string{"ClusterRoleBinding /ops-servicegraph-manager-rolebinding", "RoleBinding default/ops-servicegraph-manager-rolebinding",
		"RoleBinding platform/ops-servicegraph-leader-election-rolebinding", "ClusterRoleBinding /ops-servicegraph-metrics-auth-rolebinding"} {
		if b := objs[k]; b == nil || !cmp.Equal(nested(t, b, "subjects"), []any{subject}) {
			t.Errorf("%s does not bind the release's ServiceAccount: %v", k, b)
		}
	}
	reader := objs["ClusterRoleBinding /ops-servicegraph-metrics-reader"]
	if reader == nil || !cmp.Equal(nested(t, reader, "subjects"), []any{map[string]any{"kind": "ServiceAccount", "name": "prometheus", "namespace": "monitoring"}}) {
		t.Errorf("metrics-reader binding: %v", reader)
	}
	if sm := objs["ServiceMonitor platform/ops-servicegraph-controller-manager-metrics"]; sm == nil {
		t.Error("no ServiceMonitor")
	}
	params := objs["ConfigMap platform/servicegraph-admission"]
	if params == nil || nested(t, params, "data", "operator") != "system:serviceaccount:platform:ops-servicegraph-controller-manager" {
		t.Errorf("admission parameters do not name the release's ServiceAccount: %v", params)
	}
	binding := objs["ValidatingAdmissionPolicyBinding /servicegraph-enforced-namespaces"]
	if binding == nil || nested(t, binding, "spec", "paramRef", "namespace") != "platform" ||
		!cmp.Equal(nested(t, binding, "spec", "validationActions"), []any{"Warn", "Audit"}) {
		t.Errorf("admission binding: %v", binding)
	}

	// Metrics off: no port, no Service, no ServiceMonitor target.
	off := byKey(t, parseDocs(t, helm(t, "template", "ops", chartDir, "--namespace", "platform", "--set", "flags.metrics-bind-address=0")))
	if _, ok := off["Service platform/ops-servicegraph-controller-manager-metrics"]; ok {
		t.Error("metrics off still renders the metrics Service")
	}
	c := nested(t, off["Deployment platform/ops-servicegraph-controller-manager"], "spec", "template", "spec", "containers").([]any)[0].(map[string]any)
	if _, ok := c["ports"]; ok || !slices.Contains(toStrings(c["args"]), "--metrics-bind-address=0") {
		t.Errorf("metrics off: ports %v, args %v", c["ports"], c["args"])
	}
}

func nested(t *testing.T, o *unstructured.Unstructured, path ...string) any {
	t.Helper()
	if o == nil {
		t.Fatalf("no object to read %v from", path)
	}
	v, _, err := unstructured.NestedFieldNoCopy(o.Object, path...)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func toStrings(v any) []string {
	var out []string
	for _, s := range v.([]any) {
		out = append(out, s.(string))
	}
	return out
}
