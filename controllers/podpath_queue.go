package controllers

import (
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// markingQueue is the controller's work queue (controller-runtime's priority queue). Whatever
// adds a graph to it marks the graph for a full reconcile: every watch's events (the graph's,
// its generated objects', Services', foreign policies', the traffic observer's), retries after
// errors, and requeues, marked for when they come due. Only pod events and the looks again at a
// graph whose cached copy is behind, added with addQuietly, leave no mark. A watch added later,
// or a new kind of requeue, is full by default, so drift detection never depends on remembering
// to mark.
type markingQueue struct {
	priorityqueue.PriorityQueue[reconcile.Request]
	marks *podPath
}

// newQueue makes the controller's queue a marking one; it is controller.Options.NewQueue.
func (p *podPath) newQueue(log logr.Logger) func(string, workqueue.TypedRateLimiter[reconcile.Request]) workqueue.TypedRateLimitingInterface[reconcile.Request] {
	return func(name string, rateLimiter workqueue.TypedRateLimiter[reconcile.Request]) workqueue.TypedRateLimitingInterface[reconcile.Request] {
		q := markingQueue{marks: p, PriorityQueue: priorityqueue.New(name, func(o *priorityqueue.Opts[reconcile.Request]) {
			o.Log = log.WithValues("controller", name)
			o.RateLimiter = rateLimiter
		})}
		p.queue.Store(&q)
		return q
	}
}

func (q markingQueue) Add(req reconcile.Request) {
	q.marks.mark(req.NamespacedName, 0)
	q.PriorityQueue.Add(req)
}

func (q markingQueue) AddAfter(req reconcile.Request, after time.Duration) {
	q.marks.mark(req.NamespacedName, after)
	q.PriorityQueue.AddAfter(req, after)
}

func (q markingQueue) AddRateLimited(req reconcile.Request) {
	q.marks.mark(req.NamespacedName, 0)
	q.PriorityQueue.AddRateLimited(req)
}

func (q markingQueue) AddWithOpts(o priorityqueue.AddOpts, reqs ...reconcile.Request) {
	after := o.After
	if o.RateLimited {
		after = 0 // the backoff may be shorter; a retry is full either way
	}
	for _, req := range reqs {
		q.marks.mark(req.NamespacedName, after)
	}
	q.PriorityQueue.AddWithOpts(o, reqs...)
}

// addQuietly adds a graph without a mark.
func (q markingQueue) addQuietly(req reconcile.Request, after time.Duration, priority *int) {
	q.PriorityQueue.AddWithOpts(priorityqueue.AddOpts{After: after, Priority: priority}, req)
}
