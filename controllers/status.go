package controllers

import (
	"context"

	"k8s.io/apimachinery/pkg/api/equality"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/outcome"
)

// markReconciling records that a large new graph is being worked on before any policy is touched
// (see outcome.MarkReconciling).
func (r *ServiceGraphReconciler) markReconciling(ctx context.Context, sg *v1alpha1.ServiceGraph) error {
	before := sg.DeepCopy()
	if !outcome.MarkReconciling(sg) {
		return nil
	}
	return r.patchStatus(ctx, sg, statusPatch(before))
}

// writeStatus writes the status the classification calls for, and nothing when it is already there.
func (r *ServiceGraphReconciler) writeStatus(ctx context.Context, sg *v1alpha1.ServiceGraph, f outcome.Findings, c outcome.Class) error {
	next := sg.DeepCopy()
	outcome.SetStatus(next, f, c)
	r.trafficStatus(ctx, sg, next, f)
	if equality.Semantic.DeepEqual(next.Status, sg.Status) {
		return nil
	}
	return r.patchStatus(ctx, next, statusPatch(sg))
}

// patchStatus writes sg's status and remembers the version it replaced.
func (r *ServiceGraphReconciler) patchStatus(ctx context.Context, sg *v1alpha1.ServiceGraph, patch client.Patch) error {
	replaced := sg.ResourceVersion
	if err := r.Status().Patch(ctx, sg, patch); err != nil || sg.ResourceVersion == replaced {
		// A patch that changed nothing leaves the version as it was: the cache is not behind it.
		return err
	}
	key := client.ObjectKeyFromObject(sg)
	versions := []string{replaced}
	if earlier, ok := r.replaced.Load(key); ok {
		versions = append(versions, earlier.([]string)[0])
	}
	r.replaced.Store(key, versions)
	return nil
}

// statusPatch patches from the graph as read, on the condition that it is still the live version:
// a status computed from a stale cached copy (one that misses the operator's own last write) must
// not overwrite newer conditions, or Ready would flap.
func statusPatch(base *v1alpha1.ServiceGraph) client.Patch {
	return client.MergeFromWithOptions(base.DeepCopy(), client.MergeFromWithOptimisticLock{})
}
