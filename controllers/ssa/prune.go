package ssa

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
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
		live, err := r.list(ctx, r.Client, out, client.InNamespace(r.owner.GetNamespace()),
			client.MatchingLabels{compiler.LabelGraph: r.owner.GetName()})
		if err != nil {
			return set, err
		}
		for _, obj := range live {
			ref := object.Ref(obj)
			if keep[ref] || (only != nil && !only[ref]) || !metav1.IsControlledBy(obj, r.owner) {
				continue
			}
			uid := obj.GetUID()
			if err := r.Client.Delete(ctx, obj, client.Preconditions{UID: &uid}); client.IgnoreNotFound(err) != nil {
				return set, fmt.Errorf("pruning %s/%s: %w", ref.Kind, ref.Name, err)
			}
			set.Add(ref, change.Pruned)
		}
	}
	return set, nil
}
