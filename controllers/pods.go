package controllers

import (
	"context"
	"maps"
	"time"

	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/servicegraph/servicegraph-operator/internal/object"
)

// podChanged tells whether a pod update changes what the operator reads of pods: their labels
// (which service they belong to), Istio's marks (sidecar or ambient) and the owner named in
// messages, and whether they are going away. A kubelet's status, condition and IP updates, which
// make most of a rollout's events, change none of them.
func podChanged(old, new client.Object) bool {
	return !maps.Equal(old.GetLabels(), new.GetLabels()) ||
		old.GetAnnotations()[object.AnnotationSidecarStatus] != new.GetAnnotations()[object.AnnotationSidecarStatus] ||
		old.GetAnnotations()[object.AnnotationAmbient] != new.GetAnnotations()[object.AnnotationAmbient] ||
		(old.GetDeletionTimestamp() == nil) != (new.GetDeletionTimestamp() == nil) ||
		ownerName(old) != ownerName(new)
}

func ownerName(o client.Object) string {
	for _, ref := range o.GetOwnerReferences() {
		if ref.Controller != nil && *ref.Controller {
			return ref.Kind + "/" + ref.Name
		}
	}
	return ""
}

// podUpdates passes pod creations, deletions and the updates podChanged keeps.
var podUpdates = predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool { return podChanged(e.ObjectOld, e.ObjectNew) }}

// PodEventDelay is how long a pod event waits before its graphs reconcile. Events arriving
// meanwhile join the wait, so a rollout costs a graph at most one reconcile (and one coverage
// status write) per delay, and the coverage and mTLS preflight lag by that much at most.
const PodEventDelay = 2 * time.Second

// delayedEnqueue enqueues, PodEventDelay after a pod event, the graphs its namespace has.
func delayedEnqueue(graphs func(context.Context, client.Object) []reconcile.Request) handler.EventHandler {
	add := func(ctx context.Context, obj client.Object, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
		for _, req := range graphs(ctx, obj) {
			q.AddAfter(req, PodEventDelay)
		}
	}
	return handler.Funcs{
		CreateFunc: func(ctx context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(ctx, e.Object, q)
		},
		UpdateFunc: func(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(ctx, e.ObjectNew, q)
		},
		DeleteFunc: func(ctx context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(ctx, e.Object, q)
		},
		GenericFunc: func(ctx context.Context, e event.GenericEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(ctx, e.Object, q)
		},
	}
}
