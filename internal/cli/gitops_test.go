package cli

import (
	"path/filepath"
	"testing"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// Every overlay of the GitOps example renders with kustomize (as `kubectl kustomize` does), and
// what it renders compiles and lints clean at --fail-on error: the pull-request check of
// examples/ci/servicegraph.yaml passes on the example as shipped.
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
		})
	}
}
