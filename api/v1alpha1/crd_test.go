package v1alpha1_test

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"
)

// Argo CD diffs lists in custom resources as whole units: a default the API server fills in inside
// a list item shows as a permanent OutOfSync. The generated CRD must have none.
func TestNoDefaultsInsideListItems(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	path := filepath.Join(filepath.Dir(file), "..", "..", "config", "crd", "bases", "policy.servicegraph.io_servicegraphs.yaml")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.Unmarshal(data, &crd); err != nil {
		t.Fatal(err)
	}
	if len(crd.Spec.Versions) == 0 {
		t.Fatal("the CRD has no version")
	}
	for _, v := range crd.Spec.Versions {
		if found := defaultsInListItems("", v.Schema.OpenAPIV3Schema, false); len(found) > 0 {
			t.Errorf("%s: defaults inside list items: %v", v.Name, found)
		}
	}
}

// The check above must be able to fail.
func TestDefaultsInListItemsFindsOne(t *testing.T) {
	schema := &apiextensionsv1.JSONSchemaProps{Properties: map[string]apiextensionsv1.JSONSchemaProps{
		"spec": {Properties: map[string]apiextensionsv1.JSONSchemaProps{
			"mtls": {Default: &apiextensionsv1.JSON{Raw: []byte(`"STRICT"`)}},
			"edges": {Items: &apiextensionsv1.JSONSchemaPropsOrArray{Schema: &apiextensionsv1.JSONSchemaProps{
				Properties: map[string]apiextensionsv1.JSONSchemaProps{
					"protocol": {Default: &apiextensionsv1.JSON{Raw: []byte(`"TCP"`)}},
				},
			}}},
		}},
	}}
	found := defaultsInListItems("", schema, false)
	if len(found) != 1 || found[0] != ".spec.edges[].protocol" {
		t.Errorf("found %v, want [.spec.edges[].protocol]", found)
	}
}

func defaultsInListItems(path string, s *apiextensionsv1.JSONSchemaProps, inItem bool) []string {
	if s == nil {
		return nil
	}
	var found []string
	if inItem && s.Default != nil {
		found = append(found, path)
	}
	for name, p := range s.Properties {
		found = append(found, defaultsInListItems(path+"."+name, &p, inItem)...)
	}
	if s.Items != nil {
		found = append(found, defaultsInListItems(path+"[]", s.Items.Schema, true)...)
	}
	if s.AdditionalProperties != nil {
		found = append(found, defaultsInListItems(path+"{}", s.AdditionalProperties.Schema, inItem)...)
	}
	return found
}
