package object

import (
	"os/exec"
	"strings"
	"testing"
)

// pure are the packages that decide: they must import no client library, so they stay pure
// functions of their inputs (and cheap to build and test).
var pure = []string{
	"github.com/servicegraph/servicegraph-operator/api/...",
	"github.com/servicegraph/servicegraph-operator/internal/change",
	"github.com/servicegraph/servicegraph-operator/internal/compiler",
	"github.com/servicegraph/servicegraph-operator/internal/graph",
	"github.com/servicegraph/servicegraph-operator/internal/lint",
	"github.com/servicegraph/servicegraph-operator/internal/object",
	"github.com/servicegraph/servicegraph-operator/internal/outcome",
	"github.com/servicegraph/servicegraph-operator/internal/render",
}

var clientLibraries = []string{"k8s.io/client-go/", "sigs.k8s.io/controller-runtime/"}

func TestPureCoreImportsNoClientLibrary(t *testing.T) {
	for _, pkg := range pure {
		out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", pkg).Output()
		if err != nil {
			t.Fatalf("go list %s: %v", pkg, err)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, lib := range clientLibraries {
				if strings.HasPrefix(dep, lib) {
					t.Errorf("%s depends on %s", pkg, dep)
				}
			}
		}
	}
}
