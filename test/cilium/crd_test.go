package cilium

import (
	"sync"
	"testing"

	crds "github.com/cilium/cilium/pkg/k8s/apis/cilium.io/client/crds/v2"
	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/yaml"
)

// crdValidator is the OpenAPI schema of Cilium's own CiliumNetworkPolicy CRD (v2, as the module
// ships it), as the API server applies it: a CiliumNetworkPolicy it refuses never reaches the agent.
var crdValidator = sync.OnceValues(func() (validation.SchemaCreateValidator, error) {
	data, err := crds.EmbedFS.ReadFile("ciliumnetworkpolicies.yaml")
	if err != nil {
		return nil, err
	}
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := yaml.Unmarshal(data, crd); err != nil {
		return nil, err
	}
	for _, v := range crd.Spec.Versions {
		if v.Name != "v2" {
			continue
		}
		internal := &apiextensions.JSONSchemaProps{}
		if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(v.Schema.OpenAPIV3Schema, internal, nil); err != nil {
			return nil, err
		}
		sv, _, err := validation.NewSchemaValidator(internal)
		return sv, err
	}
	panic("Cilium's CRD has no v2")
})

// checkSchema fails the test when Cilium's CRD schema refuses the object (its JSON as applied).
func checkSchema(t *testing.T, name string, obj map[string]any) {
	t.Helper()
	v, err := crdValidator()
	if err != nil {
		t.Fatalf("Cilium's CRD: %v", err)
	}
	if errs := validationErrors(obj, v); len(errs) > 0 {
		t.Errorf("%s: Cilium's CRD schema refuses it: %v", name, errs.ToAggregate())
	}
}

func validationErrors(obj map[string]any, v validation.SchemaCreateValidator) field.ErrorList {
	return validation.ValidateCustomResource(nil, obj, v)
}
