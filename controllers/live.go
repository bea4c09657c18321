package controllers

import (
	"context"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/sets"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// takenNames tells which names of a kind are in use in one namespace, read around the cache (which
// holds only the operator's own objects) with one metadata-only list per kind, at most once per
// reconcile and only when a desired object is missing from the cache. One GET per missing object
// would double the requests of a cold rollout.
type takenNames struct {
	reader    client.Reader
	namespace string

	mu    sync.Mutex
	lists map[schema.GroupVersionKind]func() (sets.Set[string], error)
}

func newTakenNames(reader client.Reader, namespace string) *takenNames {
	return &takenNames{reader: reader, namespace: namespace, lists: map[schema.GroupVersionKind]func() (sets.Set[string], error){}}
}

// has tells whether an object of kind gvk named name exists, as of the first call for that kind.
func (t *takenNames) has(ctx context.Context, gvk schema.GroupVersionKind, name string) (bool, error) {
	t.mu.Lock()
	list, ok := t.lists[gvk]
	if !ok {
		list = sync.OnceValues(func() (sets.Set[string], error) { return t.list(ctx, gvk) })
		t.lists[gvk] = list
	}
	t.mu.Unlock()
	names, err := list()
	return names.Has(name), err
}

func (t *takenNames) list(ctx context.Context, gvk schema.GroupVersionKind) (sets.Set[string], error) {
	var list metav1.PartialObjectMetadataList
	list.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
	if err := t.reader.List(ctx, &list, client.InNamespace(t.namespace)); err != nil {
		return nil, err
	}
	names := sets.New[string]()
	for _, item := range list.Items {
		names.Insert(item.Name)
	}
	return names, nil
}
