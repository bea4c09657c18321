package istio

import (
	"path/filepath"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	istiocrd "istio.io/istio/pkg/config/crd"
	"istio.io/istio/pkg/config/schema/collections"

	"github.com/servicegraph/servicegraph-operator/internal/render"
)

// TestIstioValidatesEveryObject runs every generated PeerAuthentication and AuthorizationPolicy
// through the checks istiod's validating webhook runs (schema.ValidateConfig of each kind) and
// through Istio's CRD schema with its OpenAPI and CEL rules (pkg/config/crd): none may be refused,
// and none may draw a warning.
func TestIstioValidatesEveryObject(t *testing.T) {
	crds, err := istiocrd.NewValidatorFromFiles(filepath.Join(istioSrc(t), "manifests", "charts", "base", "files", "crd-all.gen.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	validated := 0
	for _, c := range corpus(t) {
		res, configs := compiled(t, c)
		for _, cfg := range configs {
			s, ok := collections.Pilot.FindByGroupVersionAliasesKind(cfg.GroupVersionKind)
			if !ok {
				t.Fatalf("%s: Istio knows no %v", c.name, cfg.GroupVersionKind)
			}
			warning, err := s.ValidateConfig(cfg)
			if err != nil {
				t.Errorf("%s: %s %s: istiod would refuse it: %v", c.name, cfg.GroupVersionKind.Kind, cfg.Name, err)
			}
			if warning != nil {
				t.Errorf("%s: %s %s: istiod warns: %v", c.name, cfg.GroupVersionKind.Kind, cfg.Name, warning)
			}
			validated++
		}
		for _, obj := range res.Objects() {
			if res.Outputs.Of(obj).Layer.Name != "Istio" {
				continue
			}
			u, err := render.ToUnstructured(obj)
			if err != nil {
				t.Fatal(err)
			}
			if err := crds.ValidateCustomResource(&unstructured.Unstructured{Object: u.Object}); err != nil {
				t.Errorf("%s: Istio's CRD schema refuses it: %v", c.name, err)
			}
		}
	}
	t.Logf("%d Istio objects validated by istiod's checks and by Istio's CRD schema", validated)
	if validated < 300 {
		t.Errorf("only %d objects validated", validated)
	}
}
