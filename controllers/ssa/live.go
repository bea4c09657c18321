package ssa

import (
	"context"
	"slices"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/servicegraph/servicegraph-operator/controllers/summary"
	"github.com/servicegraph/servicegraph-operator/internal/compiler"
)

// current reads the live object named like obj from the cache, which holds the summaries of the
// objects labelled as the operator's; nil when it has none. A name taken by an object the cache
// does not hold (a foreign one, or one of the operator's the cache has not seen yet) shows when
// the create is refused.
func (r *run) current(ctx context.Context, obj compiler.Object) (client.Object, error) {
	gvk := obj.GetObjectKind().GroupVersionKind()
	summaries, err := r.Summaries.For(ctx, gvk)
	if err != nil {
		return nil, err
	}
	have := summary.New(gvk)
	if err := summaries.Get(ctx, client.ObjectKeyFromObject(obj), have); err != nil {
		return nil, client.IgnoreNotFound(err)
	}
	return have, nil
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

// strangers tells whether the namespace may hold objects of out's kind that the owner does not
// control, from the caches alone: one without the operator's label (the foreign cache knows its
// name) or one wearing it that another graph controls.
func (r *run) strangers(ctx context.Context, out *compiler.Output, namespace string) (bool, error) {
	if r.Foreign == nil {
		return true, nil
	}
	foreign := &metav1.PartialObjectMetadataList{}
	foreign.SetGroupVersionKind(out.GVK.GroupVersion().WithKind(out.GVK.Kind + "List"))
	if err := r.Foreign.List(ctx, foreign, client.InNamespace(namespace)); err != nil || len(foreign.Items) > 0 {
		return true, err
	}
	summaries, err := r.Summaries.For(ctx, out.GVK)
	if err != nil {
		return true, err
	}
	ours := summary.NewList(out.GVK)
	if err := summaries.List(ctx, ours, client.InNamespace(namespace), client.UnsafeDisableDeepCopy); err != nil {
		return true, err
	}
	return slices.ContainsFunc(ours.Items, func(o summary.Object) bool { return !metav1.IsControlledBy(&o, r.owner) }), nil
}
