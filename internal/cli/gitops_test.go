package cli

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// Every overlay of the GitOps example renders with kustomize (as `kubectl kustomize` does), and
// what it renders compiles and lints clean at --fail-on error, and diffs as the pull-request
// comment does: the pull-request check of examples/ci/servicegraph.yaml passes on the example as
// shipped.
func TestGitOpsOverlays(t *testing.T) {
	overlays, err := filepath.Glob("../../examples/gitops/overlays/*")
	if err != nil || len(overlays) == 0 {
		t.Fatalf("no overlays: %v", err)
	}
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	for _, dir := range overlays {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			resources, err := k.Run(filesys.MakeFsOnDisk(), dir)
			if err != nil {
				t.Fatalf("kustomize: %v", err)
			}
			rendered, err := resources.AsYaml()
			if err != nil {
				t.Fatal(err)
			}
			if code, _, stderr := run(t, string(rendered), "compile", "-f", "-"); code != ExitOK {
				t.Errorf("compile: exit %d:\n%s", code, stderr)
			}
			if code, stdout, stderr := run(t, string(rendered), "lint", "-f", "-", "--fail-on", "error"); code != ExitOK {
				t.Errorf("lint: exit %d:\n%s%s", code, stdout, stderr)
			}
			file := filepath.Join(t.TempDir(), "rendered.yaml")
			if err := os.WriteFile(file, rendered, 0o600); err != nil {
				t.Fatal(err)
			}
			if code, stdout, stderr := run(t, "", "diff", file, file, "--format", "markdown"); code != ExitOK || stdout != "**servicegraph diff**: no connectivity change\n" {
				t.Errorf("diff with itself: exit %d:\n%s%s", code, stdout, stderr)
			}
			empty := filepath.Join(t.TempDir(), "new-overlay.yaml")
			if err := os.WriteFile(empty, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			if code, stdout, stderr := run(t, "", "diff", empty, file, "--format", "markdown"); code != ExitOK || !strings.Contains(stdout, "| - | `") {
				t.Errorf("diff of a new overlay: exit %d:\n%.500s%s", code, stdout, stderr)
			}
		})
	}
}

// The prod overlay's strategic-merge patch names one service, one external peer and one edge; with
// the schema the base declares, kustomize merges them into the base's lists by name (the patched
// service changes, the others stay) instead of replacing each list whole.
func TestGitOpsStrategicMergeByName(t *testing.T) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	resources, err := k.Run(filesys.MakeFsOnDisk(), "../../examples/gitops/overlays/prod")
	if err != nil {
		t.Fatalf("kustomize: %v", err)
	}
	rendered, err := resources.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	var sg v1alpha1.ServiceGraph
	if err := yaml.UnmarshalStrict(rendered, &sg); err != nil {
		t.Fatal(err)
	}
	accounts := map[string]string{}
	for _, s := range sg.Spec.Services {
		accounts[s.Name] = s.ServiceAccount
	}
	want := map[string]string{"web": "", "api": "api", "database": "postgres", "cache": ""}
	if !maps.Equal(accounts, want) {
		t.Errorf("services (name: serviceAccount) = %v, want %v", accounts, want)
	}
	if !slices.Contains(sg.Spec.Edges, "api->payments:443") || !slices.Contains(sg.Spec.Edges, "web->api:8080") || len(sg.Spec.Edges) != 4 {
		t.Errorf("edges = %v, want the base's three and the patch's one", sg.Spec.Edges)
	}
}

// The schema's keyed lists are the CRD's: a list kustomize merges by name is one the API server
// also keys by name (server-side apply merges it the same way).
func TestGitOpsSchemaAgreesWithCRD(t *testing.T) {
	data, err := os.ReadFile("../../examples/gitops/base/servicegraph-schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var schema struct {
		Definitions map[string]struct {
			Properties map[string]struct {
				MergeKey string `json:"x-kubernetes-patch-merge-key"`
			} `json:"properties"`
		} `json:"definitions"`
	}
	if err := json.Unmarshal(data, &schema); err != nil {
		t.Fatal(err)
	}
	crdData, err := os.ReadFile("../../config/crd/bases/policy.servicegraph.io_servicegraphs.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.Unmarshal(crdData, &crd); err != nil {
		t.Fatal(err)
	}
	spec := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"].Properties
	keyed := 0
	for name, p := range schema.Definitions["io.servicegraph.policy.v1alpha1.ServiceGraphSpec"].Properties {
		if p.MergeKey == "" {
			continue
		}
		keyed++
		field := spec[name]
		if field.XListType == nil || *field.XListType != "map" || !slices.Equal(field.XListMapKeys, []string{p.MergeKey}) {
			t.Errorf("spec.%s: the schema merges by %q, the CRD lists it as %v keyed by %v", name, p.MergeKey, field.XListType, field.XListMapKeys)
		}
	}
	for name, field := range spec {
		if field.XListType != nil && *field.XListType == "map" && schema.Definitions["io.servicegraph.policy.v1alpha1.ServiceGraphSpec"].Properties[name].MergeKey == "" {
			t.Errorf("spec.%s is keyed in the CRD but kustomize would replace it whole: add it to the schema", name)
		}
	}
	if keyed == 0 {
		t.Error("the schema keys no list")
	}
}
