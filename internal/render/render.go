// Package render turns typed objects into the canonical form that the CLI prints and the
// reconciler applies: unstructured objects built through JSON (Istio specs are protobuf messages
// that only their own MarshalJSON encodes correctly), printed as YAML or JSON with sorted keys.
package render

import (
	"bytes"
	"encoding/json"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/servicegraph/servicegraph-operator/internal/object"
)

// ToUnstructured converts an object through its JSON encoding, then drops what a desired state
// must not carry: status and a null creationTimestamp. The object needs apiVersion and kind.
func ToUnstructured(obj object.Object) (*unstructured.Unstructured, error) {
	data, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("encoding %s: %w", describe(obj), err)
	}
	u := &unstructured.Unstructured{}
	// UnmarshalJSON keeps integers as int64, which unstructured's deep copy requires.
	if err := u.UnmarshalJSON(data); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", describe(obj), err)
	}
	delete(u.Object, "status")
	if meta, ok := u.Object["metadata"].(map[string]any); ok {
		if ts, ok := meta["creationTimestamp"]; ok && ts == nil {
			delete(meta, "creationTimestamp")
		}
	}
	return u, nil
}

// ToUnstructuredList converts objects in order.
func ToUnstructuredList(objs []object.Object) ([]*unstructured.Unstructured, error) {
	out := make([]*unstructured.Unstructured, len(objs))
	for i, o := range objs {
		u, err := ToUnstructured(o)
		if err != nil {
			return nil, err
		}
		out[i] = u
	}
	return out, nil
}

// YAML prints the objects in order as a multi-document YAML stream, each document starting with
// "---", keys sorted. Empty input gives empty output.
func YAML(objs []object.Object) ([]byte, error) {
	us, err := ToUnstructuredList(objs)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	for _, u := range us {
		doc, err := yaml.Marshal(u.Object)
		if err != nil {
			return nil, fmt.Errorf("printing %s: %w", describe(u), err)
		}
		buf.WriteString("---\n")
		buf.Write(doc)
	}
	return buf.Bytes(), nil
}

// JSON prints the objects in order as one indented v1 List, which kubectl applies as a whole.
func JSON(objs []object.Object) ([]byte, error) {
	us, err := ToUnstructuredList(objs)
	if err != nil {
		return nil, err
	}
	items := make([]any, len(us))
	for i, u := range us {
		items[i] = u.Object
	}
	list := map[string]any{"apiVersion": "v1", "kind": "List", "items": items}
	out, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

func describe(obj object.Object) string {
	kind := obj.GetObjectKind().GroupVersionKind().Kind
	return fmt.Sprintf("%s %s/%s", kind, obj.GetNamespace(), obj.GetName())
}
