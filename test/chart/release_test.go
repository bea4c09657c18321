package chart

import (
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/servicegraph/servicegraph-operator/test/testenv"
)

// `make release-manifests` writes dist/install.yaml; it applies server-side (twice: a re-apply
// conflicts with nothing) to a fresh control plane, and the operator it describes reconciles the
// seed graph.
func TestReleaseManifest(t *testing.T) {
	make := exec.Command("make", "-s", "release-manifests")
	make.Dir = testenv.Root()
	if out, err := make.CombinedOutput(); err != nil {
		t.Fatalf("make release-manifests: %v\n%s", err, out)
	}
	install := filepath.Join(testenv.Root(), "dist", "install.yaml")
	c := startCluster(t)
	for range 2 {
		kubectl(t, c, "apply", "--server-side", "-f", install)
	}
	kubectl(t, c, "wait", "--for=condition=Established", "crd/servicegraphs.policy.servicegraph.io", "--timeout=30s")
	d := deployment(t, c, "servicegraph-system", "servicegraph-controller-manager")
	restrictedPodAdmitted(t, c, d) // the manifest's Namespace enforces the restricted standard
	log := &testenv.Log{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("manager log:\n%s", log.String())
		}
	})
	runOperator(t, c, d, log)
	start := time.Now()
	seedGraphReady(t, c)
	t.Logf("seed graph Ready %v after the apply", time.Since(start))
}
