// Package render turns typed objects into the canonical form that the CLI prints and the
// reconciler applies: unstructured objects built through JSON (Istio specs are protobuf messages
// that only their own MarshalJSON encodes correctly), printed as YAML or JSON with sorted keys.
// YAML prints those same bytes straight from the typed objects (yamlwriter.go, encode.go).
package render

import (
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sync"

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
// "---", keys sorted. Empty input gives empty output. Each document is the bytes yamlViaJSON
// prints; the direct encoder writes them without the round trip through JSON and a map where it
// covers the object, which it does for every object the compiler makes. Documents do not depend on
// each other, so a large input is printed in parts on all processors and joined.
func YAML(objs []object.Object) ([]byte, error) {
	chunks, err := yamlChunks(objs)
	if err != nil {
		return nil, err
	}
	return slices.Concat(chunks...), nil
}

// WriteYAML writes to w what YAML returns, without joining it in memory first (4.7 MB for 1,000
// services); it writes nothing when an object cannot be printed.
func WriteYAML(w io.Writer, objs []object.Object) error {
	chunks, err := yamlChunks(objs)
	if err != nil {
		return err
	}
	for _, chunk := range chunks {
		if _, err := w.Write(chunk); err != nil {
			return err
		}
	}
	return nil
}

// yamlChunks prints the objects' documents, in order, into chunks.
func yamlChunks(objs []object.Object) ([][]byte, error) {
	parts := max(min(partsPerProc*runtime.GOMAXPROCS(0), len(objs)/minPart), 1)
	chunks, errs := make([][][]byte, parts), make([]error, parts)
	var wg sync.WaitGroup
	for p := range parts {
		wg.Go(func() { chunks[p], errs[p] = yamlPart(objs[p*len(objs)/parts : (p+1)*len(objs)/parts]) })
	}
	wg.Wait()
	if err := firstError(errs); err != nil { // the first object's to fail, as in one part
		return nil, err
	}
	return slices.Concat(chunks...), nil
}

// minPart is the fewest objects worth a part of their own; a few parts a processor keep them all
// busy when some objects cost more than others (a graph's AuthorizationPolicies follow its
// NetworkPolicies).
const (
	minPart      = 64
	partsPerProc = 4
)

func firstError(errs []error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// chunkSize is the size of the buffers a part writes its documents into, whole documents each:
// joined once at the end, where one growing buffer would be copied at every growth.
const chunkSize = 512 << 10

// yamlPart prints objects in one part, through one writer, into chunks.
func yamlPart(objs []object.Object) ([][]byte, error) {
	var chunks [][]byte
	var out []byte // the first chunk grows as a small output needs
	w := newYAMLWriter()
	for _, obj := range objs {
		if len(out) > chunkSize*7/8 {
			chunks, out = append(chunks, out), make([]byte, 0, chunkSize)
		}
		out = append(out, "---\n"...)
		doc, err := w.document(out, obj)
		if err != nil { // an object the direct encoder does not cover, or one that fails either way
			doc, err = yamlViaJSON(out, obj)
		}
		if err != nil {
			return nil, err
		}
		out = doc
	}
	return append(chunks, out), nil
}

// yamlViaJSON appends obj's document to out as ToUnstructured and sigs.k8s.io/yaml print it.
func yamlViaJSON(out []byte, obj object.Object) ([]byte, error) {
	u, err := ToUnstructured(obj)
	if err != nil {
		return nil, err
	}
	doc, err := yaml.Marshal(u.Object)
	if err != nil {
		return nil, fmt.Errorf("printing %s: %w", describe(u), err)
	}
	return append(out, doc...), nil
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
