package cli

import (
	"encoding/json"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/servicegraph/servicegraph-operator/internal/object"
)

// unmarshalStrict decodes every document of every manifest in the repository (the corpus of
// others' manifests included) into the same object as yaml.UnmarshalStrict, or fails with the same
// message; so do documents made to need what only the yaml.v2 pass does (a number for a string)
// or to be refused by it.
func TestUnmarshalStrictAsYAML(t *testing.T) {
	docs := manifestDocuments(t)
	long := strings.Repeat("k", 1100)
	docs = append(docs,
		[]byte("apiVersion: v1\nkind: Service\nmetadata: {name: 123, namespace: true}\n"),
		[]byte("apiVersion: v1\nkind: Service\nmetadata: {name: 1.5}\nspec: {ports: [{port: '80'}]}\n"),
		[]byte("apiVersion: v1\nkind: Service\nmetadata: {name: \"a\\x7fb\"}\n"),
		[]byte("apiVersion: v1\nkind: Service\nmetadata: {name: \"a\\u0085b\\ufeff\"}\n"),
		[]byte("apiVersion: v1\nkind: Service\nmetadata: {name: \"a\\u2028b\\tc\\u00a0\"}\n"),
		[]byte("apiVersion: v1\nkind: Service\nmetadata:\n  labels: {? "+long+" : x}\n"),
		[]byte("apiVersion: v1\nkind: Service\nmetadata: {name: a, nmae: b}\n"),
		[]byte("apiVersion: v1\nkind: Service\nmetadata: {Name: a}\nstatus: {loadBalancer: 1}\n"),
	)
	compared := 0
	for _, raw := range docs {
		data, err := yaml.YAMLToJSON(raw)
		if err != nil || !strings.HasPrefix(string(data), "{") {
			continue
		}
		var meta metav1.TypeMeta
		if json.Unmarshal(data, &meta) != nil {
			continue
		}
		newObject := newObjectOf(meta)
		if newObject == nil {
			continue
		}
		data = withoutStatus(data)
		got, want := newObject(), newObject()
		gotErr, wantErr := unmarshalStrict(data, got), yaml.UnmarshalStrict(data, want)
		if gotErr != nil || wantErr != nil {
			if gotErr == nil || wantErr == nil || gotErr.Error() != wantErr.Error() {
				t.Errorf("%s: error %v, yaml.UnmarshalStrict's %v", raw, gotErr, wantErr)
			}
			continue
		}
		gotJSON, _ := json.Marshal(got)
		wantJSON, _ := json.Marshal(want)
		if string(gotJSON) != string(wantJSON) {
			t.Errorf("%s: decoded to\n%s\nyaml.UnmarshalStrict to\n%s", raw, gotJSON, wantJSON)
		}
		compared++
	}
	t.Logf("compared %d documents", compared)
	if compared < 300 {
		t.Errorf("compared %d documents, want the repository's hundreds", compared)
	}
}

// newObjectOf is the typed object any command reads a document of type t into.
func newObjectOf(t metav1.TypeMeta) func() object.Object {
	for _, k := range []kinds{graphKinds, lintKinds, checkKinds} {
		if f := k[t]; f != nil && f() != nil {
			if _, workload := f().(*corev1.PodTemplate); !workload { // read leniently, by lint.ReadWorkload
				return f
			}
		}
	}
	return nil
}
