package controllers

import (
	"context"
	"maps"
	"time"

	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"
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

// delayedEnqueue enqueues, PodEventDelay after a pod event, the graphs its namespace has, without
// marking them for a full reconcile (see podsOnly).
func delayedEnqueue(graphs func(context.Context, client.Object) []reconcile.Request) handler.EventHandler {
	return podEvents{graphs: graphs}
}

// podEvents is a handler of its own rather than handler.Funcs, which hands its functions the
// queue wrapped (to give the initial list's events a low priority), so the marking queue would
// not be recognised. It gives those events the same low priority.
type podEvents struct {
	graphs func(context.Context, client.Object) []reconcile.Request
}

func (h podEvents) add(ctx context.Context, obj client.Object, q workqueue.TypedRateLimitingInterface[reconcile.Request], priority *int) {
	for _, req := range h.graphs(ctx, obj) {
		if mq, ok := q.(markingQueue); ok {
			mq.addQuietly(req, PodEventDelay, priority)
		} else {
			q.AddAfter(req, PodEventDelay)
		}
	}
}

func (h podEvents) Create(ctx context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	var priority *int
	if e.IsInInitialList {
		priority = ptr.To(handler.LowPriority)
	}
	h.add(ctx, e.Object, q, priority)
}

func (h podEvents) Update(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	h.add(ctx, e.ObjectNew, q, nil)
}

func (h podEvents) Delete(ctx context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	h.add(ctx, e.Object, q, nil)
}

func (h podEvents) Generic(ctx context.Context, e event.GenericEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	h.add(ctx, e.Object, q, nil)
}
