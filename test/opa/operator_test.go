package opa

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/servicegraph/servicegraph-operator/internal/cli"
)

// TestOperatorOutput holds what the operator applies to the example Constraints: the compiler's
// golden outputs, and what the GitOps example's overlays compile to (the objects the Gatekeeper
// step of examples/ci/servicegraph.yaml checks). None may violate a deny constraint, or a cluster
// running these constraints would refuse the operator's own writes; warnings (an unmeshed caller's
// rule without a source, egress to an external host without cidrs: holes by design, which lint
// reports as SG012 and SG013) are logged. Reviews are audit-style, as gator's: no user, no
// operation.
func TestOperatorOutput(t *testing.T) {
	c := newClient(t, exampleConstraints(t)...)
	type source struct {
		name string
		objs []*unstructured.Unstructured
	}
	var sources []source
	goldens, err := filepath.Glob("../../internal/compiler/testdata/golden/*.yaml")
	if err != nil || len(goldens) == 0 {
		t.Fatalf("no golden outputs of the compiler: %v", err)
	}
	for _, f := range goldens {
		sources = append(sources, source{"golden " + filepath.Base(f), readYAMLDocs(t, f)})
	}
	overlays, err := filepath.Glob("../../examples/gitops/overlays/*")
	if err != nil || len(overlays) == 0 {
		t.Fatalf("no GitOps overlays: %v", err)
	}
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	for _, dir := range overlays {
		resources, err := k.Run(filesys.MakeFsOnDisk(), dir)
		if err != nil {
			t.Fatalf("kustomize %s: %v", dir, err)
		}
		rendered, err := resources.AsYaml()
		if err != nil {
			t.Fatal(err)
		}
		var stdout, stderr bytes.Buffer
		if code := cli.Main([]string{"compile", "-f", "-"}, bytes.NewReader(rendered), &stdout, &stderr); code != cli.ExitOK {
			t.Fatalf("compile %s: exit %d: %s", dir, code, stderr.String())
		}
		name := "overlay " + filepath.Base(dir)
		sources = append(sources, source{name, append(splitYAML(t, name, rendered), splitYAML(t, name, stdout.Bytes())...)})
	}

	checked := 0
	var warnings []string
	for _, s := range sources {
		for _, o := range s.objs {
			if agreedRules[o.GetKind()] == nil {
				continue
			}
			checked++
			for _, v := range review(t, c, request(o, "", "")) {
				if v.action == "deny" {
					t.Errorf("%s: %s denies the operator's object: %s", s.name, v.constraint, v.msg)
				} else {
					warnings = append(warnings, s.name+": "+v.action+" "+v.msg)
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no policy object checked")
	}
	t.Logf("%d objects of the operator checked, none denied; %d warnings:\n%s", checked, len(warnings), strings.Join(warnings, "\n"))
}
