package ssa

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/controllers/summary"
	"github.com/servicegraph/servicegraph-operator/internal/change"
	"github.com/servicegraph/servicegraph-operator/internal/compiler"
	"github.com/servicegraph/servicegraph-operator/internal/object"
)

// prune deletes the objects the owner generated earlier that desired no longer holds (only those
// in only, when it is set), for every output whose API is served. Each deletion is conditional on
// the UID read, so an object recreated meanwhile is not deleted.
func (r *run) prune(ctx context.Context, desired *compiler.Result, only map[v1alpha1.ObjectReference]bool) (change.Set, error) {
	keep := map[v1alpha1.ObjectReference]bool{}
	for _, obj := range desired.Objects() {
		keep[object.Ref(obj)] = true
	}
	var set change.Set
	for _, out := range desired.Outputs {
		if !desired.Served(out) {
			continue
		}
		summaries, err := r.Summaries.For(ctx, out.GVK)
		if err != nil {
			return set, err
		}
		live := summary.NewList(out.GVK)
		if err := summaries.List(ctx, live, client.InNamespace(r.owner.GetNamespace()),
			client.MatchingLabels{compiler.LabelGraph: r.owner.GetName()}); err != nil {
			return set, err
		}
		for i := range live.Items {
			obj := &live.Items[i]
			ref := v1alpha1.ObjectReference{Group: out.GVK.Group, Kind: out.GVK.Kind, Name: obj.Name}
			if keep[ref] || (only != nil && !only[ref]) || !metav1.IsControlledBy(obj, r.owner) {
				continue
			}
			gone := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Name: obj.Name, Namespace: obj.Namespace}}
			gone.SetGroupVersionKind(out.GVK)
			uid := obj.GetUID()
			if err := r.Client.Delete(ctx, gone, client.Preconditions{UID: &uid}); client.IgnoreNotFound(err) != nil {
				return set, fmt.Errorf("pruning %s/%s: %w", ref.Kind, ref.Name, err)
			}
			set.Add(ref, change.Pruned)
		}
	}
	return set, nil
}
