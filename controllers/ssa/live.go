package ssa

import (
	"context"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/sets"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/servicegraph/servicegraph-operator/controllers/summary"
	"github.com/servicegraph/servicegraph-operator/internal/compiler"
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

// current reads the live object named like obj: its summary from the cache, which holds only
// objects labelled as the operator's, else the object in full straight from the API server when
// the name is taken there (by a foreign object, or by one of the operator's that the cache has not
// seen yet). It returns nil when there is none.
func (r *run) current(ctx context.Context, obj compiler.Object) (client.Object, error) {
	gvk := obj.GetObjectKind().GroupVersionKind()
	summaries, err := r.Summaries.For(ctx, gvk)
	if err != nil {
		return nil, err
	}
	have := summary.New(gvk)
	key := client.ObjectKeyFromObject(obj)
	err = summaries.Get(ctx, key, have)
	if !apierrors.IsNotFound(err) {
		return have, err
	}
	if exists, err := r.taken.has(ctx, gvk, key.Name); err != nil || !exists {
		return nil, err
	}
	full, err := r.read(ctx, obj)
	if full == nil || err != nil {
		return nil, err // a nil *Object would not be a nil client.Object
	}
	return full, nil
}

// list reads the objects of an output's kind.
func (r *run) list(ctx context.Context, reader client.Reader, out *compiler.Output, opts ...client.ListOption) ([]client.Object, error) {
	fresh, err := r.Client.Scheme().New(out.GVK.GroupVersion().WithKind(out.GVK.Kind + "List"))
	if err != nil {
		return nil, err
	}
	list := fresh.(client.ObjectList)
	if err := reader.List(ctx, list, opts...); err != nil {
		return nil, err
	}
	items, err := meta.ExtractList(list)
	if err != nil {
		return nil, err
	}
	objs := make([]client.Object, len(items))
	for i, item := range items {
		objs[i] = item.(client.Object)
		// Typed list items carry no kind; the change set and the status name objects by it.
		objs[i].GetObjectKind().SetGroupVersionKind(out.GVK)
	}
	return objs, nil
}
