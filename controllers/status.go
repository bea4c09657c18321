package controllers

import (
	"context"

	"k8s.io/apimachinery/pkg/api/equality"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/outcome"
)

// markReconciling records that a new generation is being worked on before any policy is touched.
func (r *ServiceGraphReconciler) markReconciling(ctx context.Context, sg *v1alpha1.ServiceGraph) error {
	before := sg.DeepCopy()
	if !outcome.MarkReconciling(sg) {
		return nil
	}
	return r.Status().Patch(ctx, sg, statusPatch(before))
}

// writeStatus writes the status the classification calls for, and nothing when it is already there.
func (r *ServiceGraphReconciler) writeStatus(ctx context.Context, sg *v1alpha1.ServiceGraph, f outcome.Findings, c outcome.Class) error {
	next := sg.DeepCopy()
	outcome.SetStatus(next, f, c)
	if equality.Semantic.DeepEqual(next.Status, sg.Status) {
		return nil
	}
	return r.Status().Patch(ctx, next, statusPatch(sg))
}

// statusPatch patches from the graph as read, on the condition that it is still the live version:
// a status computed from a stale cached copy (one that misses the operator's own last write) must
// not overwrite newer conditions, or Ready would flap.
func statusPatch(base *v1alpha1.ServiceGraph) client.Patch {
	return client.MergeFromWithOptions(base.DeepCopy(), client.MergeFromWithOptimisticLock{})
}
