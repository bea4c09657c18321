// Package summary caches the operator's generated objects as their metadata and a digest of
// their content (their spec). A typed cache of ~25 objects per graph held ~260 KiB per graph, and
// decoding Istio's specs through their reflective JSON decoder was most of a restart's CPU; a
// summary is read with a plain JSON decoder that keeps the content's bytes only long enough to
// hash them.
//
// The digest is taken from the bytes the API server sent, never from anything stored in the object
// (an annotation, a field manager), so a change to the content by any writer changes it: drift
// stays as visible as with the typed cache.
//
// The types here are read from the API server, never served: no CRD is generated for them.
// +kubebuilder:skip
package summary

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"unique"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

// Digest is the SHA-256 of an object's content: its top-level fields but apiVersion, kind,
// metadata and status (a spec, or a ConfigMap's data), each field's name and JSON encoding in
// the order of the names.
type Digest [sha256.Size]byte

// DigestOf digests the content of an object's JSON encoding.
func DigestOf(object []byte) (Digest, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(object, &fields); err != nil {
		return Digest{}, err
	}
	return digestFields(fields), nil
}

func digestFields(fields map[string]json.RawMessage) Digest {
	h := sha256.New()
	for _, name := range slices.Sorted(maps.Keys(fields)) {
		if name == "apiVersion" || name == "kind" || name == "metadata" || name == "status" {
			continue
		}
		value := bytes.TrimSpace(fields[name])
		if bytes.Equal(value, []byte("null")) || bytes.Equal(value, []byte("{}")) {
			continue // absent, null and empty are the same content (an allow-nothing policy's spec)
		}
		// Lengths keep the boundaries: no two different lists of fields hash the same bytes.
		fmt.Fprintf(h, "%d:%s%d:", len(name), name, len(value))
		h.Write(value)
	}
	var d Digest
	h.Sum(d[:0])
	return d
}

// Object is a generated object as the cache keeps it.
// +kubebuilder:object:generate=false
type Object struct {
	metav1.TypeMeta
	metav1.ObjectMeta
	// Content digests the object's content as the API server last sent it.
	Content Digest
}

// metadata is what a summary keeps of an object's metadata: decoding only these fields skips the
// managed fields, the largest part of most objects' metadata, without allocating them.
type metadata struct {
	Name              string                  `json:"name"`
	Namespace         string                  `json:"namespace"`
	UID               types.UID               `json:"uid"`
	ResourceVersion   string                  `json:"resourceVersion"`
	Generation        int64                   `json:"generation"`
	DeletionTimestamp *metav1.Time            `json:"deletionTimestamp"`
	Labels            map[string]string       `json:"labels"`
	Annotations       map[string]string       `json:"annotations"`
	OwnerReferences   []metav1.OwnerReference `json:"ownerReferences"`
}

// UnmarshalJSON keeps the metadata the operator reads (identity, labels, annotations, owner) and
// the digest of the content, and drops the rest (managed fields, the content itself, status).
// The strings many objects share (their namespace, labels, owner) are interned: a graph's ~25
// objects then hold one copy of each.
func (o *Object) UnmarshalJSON(data []byte) error {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		return err
	}
	var typeMeta metav1.TypeMeta
	var m metadata
	for name, into := range map[string]any{"apiVersion": &typeMeta.APIVersion, "kind": &typeMeta.Kind, "metadata": &m} {
		if raw, ok := fields[name]; ok {
			if err := json.Unmarshal(raw, into); err != nil {
				return fmt.Errorf("decoding %s: %w", name, err)
			}
		}
	}
	*o = Object{
		TypeMeta: metav1.TypeMeta{APIVersion: intern(typeMeta.APIVersion), Kind: intern(typeMeta.Kind)},
		ObjectMeta: metav1.ObjectMeta{
			Name: m.Name, Namespace: intern(m.Namespace), UID: m.UID, ResourceVersion: m.ResourceVersion,
			Generation: m.Generation, DeletionTimestamp: m.DeletionTimestamp,
			Labels: internMap(m.Labels), Annotations: internMap(m.Annotations), OwnerReferences: controllerOnly(m.OwnerReferences),
		},
		Content: digestFields(fields),
	}
	return nil
}

func intern(s string) string { return unique.Make(s).Value() }

func internMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[intern(k)] = intern(v)
	}
	return out
}

// controllerOnly keeps the controller reference, the only one the operator reads.
func controllerOnly(refs []metav1.OwnerReference) []metav1.OwnerReference {
	for _, ref := range refs {
		if ref.Controller != nil && *ref.Controller {
			return []metav1.OwnerReference{{APIVersion: intern(ref.APIVersion), Kind: intern(ref.Kind), Name: intern(ref.Name),
				UID: types.UID(intern(string(ref.UID))), Controller: ref.Controller, BlockOwnerDeletion: ref.BlockOwnerDeletion}}
		}
	}
	return nil
}

// DeepCopyObject implements runtime.Object.
func (o *Object) DeepCopyObject() runtime.Object {
	out := &Object{TypeMeta: o.TypeMeta, Content: o.Content}
	o.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	return out
}

// List is a list of summaries.
// +kubebuilder:object:generate=false
type List struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata"`
	Items           []Object `json:"items"`
}

// DeepCopyObject implements runtime.Object.
func (l *List) DeepCopyObject() runtime.Object {
	out := &List{TypeMeta: l.TypeMeta}
	l.ListMeta.DeepCopyInto(&out.ListMeta)
	out.Items = make([]Object, len(l.Items))
	for i := range l.Items {
		out.Items[i] = *l.Items[i].DeepCopyObject().(*Object)
	}
	return out
}

// NewScheme knows one kind, gvk, as summaries: a scheme has one Go type per kind, so each kind's
// summaries get a scheme (and a cache) of their own.
func NewScheme(gvk schema.GroupVersionKind) *runtime.Scheme {
	s := runtime.NewScheme()
	s.AddKnownTypeWithName(gvk, &Object{})
	s.AddKnownTypeWithName(gvk.GroupVersion().WithKind(gvk.Kind+"List"), &List{})
	metav1.AddToGroupVersion(s, gvk.GroupVersion())
	metav1.AddToGroupVersion(s, schema.GroupVersion{Version: "v1"})
	return s
}

// New returns an empty summary of kind gvk, to read into.
func New(gvk schema.GroupVersionKind) *Object {
	o := &Object{}
	o.SetGroupVersionKind(gvk)
	return o
}

// NewList returns an empty list of summaries of kind gvk, to read into.
func NewList(gvk schema.GroupVersionKind) *List {
	l := &List{}
	l.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
	return l
}
