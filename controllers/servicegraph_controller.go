// Package controllers holds the ServiceGraph reconciler. It is thin on purpose: the policy logic
// lives in internal/compiler, the classification of what happened in internal/outcome, and the
// write path in controllers/ssa; this package gathers facts, runs the plan and reports.
package controllers

import (
	"context"
	"slices"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/controllers/ssa"
	"github.com/servicegraph/servicegraph-operator/internal/audit"
	"github.com/servicegraph/servicegraph-operator/internal/compiler"
	"github.com/servicegraph/servicegraph-operator/internal/outcome"
)

// FieldOwner is the field manager of every write the operator makes.
const FieldOwner = "servicegraph-operator"

// ServiceGraphReconciler compiles ServiceGraphs and keeps the generated policies in sync.
type ServiceGraphReconciler struct {
	client.Client
	// APIReader reads around the cache, which holds only the operator's own objects.
	APIReader client.Reader
	// Foreign holds the metadata of the policies the operator did not generate (see
	// ForeignCacheOptions); nil leaves them unjudged.
	Foreign client.Reader
	// Audit receives one record per change the operator makes to the cluster.
	Audit    audit.Sink
	Recorder events.EventRecorder
	// APIs tells which outputs' APIs the cluster serves.
	APIs *APIDetector
	// Options configure the compiler; Options.Outputs are the kinds generated.
	Options compiler.Options
	// Writer applies and prunes the generated objects.
	Writer *ssa.Manager
	// RecheckInterval is how often a graph waiting on something no watch reports (an API being
	// installed, a foreign object in the way) is looked at again.
	RecheckInterval time.Duration
	// Concurrency is how many graphs reconcile at once.
	Concurrency int
	// Traffic, when set, holds each namespace's observed traffic, which TrafficCovered judges.
	Traffic *trafficObserver

	// podPath lets reconciles that only pod events asked for skip the compile (see podsOnly).
	podPath podPath

	// replaced holds, per graph, the resourceVersions its last two status writes replaced (a
	// reconcile makes up to two): a cached graph still at one of them is one the cache has not
	// caught up on. (controller-runtime's read-your-writes consistency does the same by blocking
	// reads, but measured on the 1,000-service benchmark it tripled the manager's live heap, made
	// a quiet reconcile 60% costlier and doubled the time to Ready of an edge change.)
	replaced sync.Map
}

// +kubebuilder:rbac:groups=policy.servicegraph.io,resources=servicegraphs,verbs=get;list;watch
// +kubebuilder:rbac:groups=policy.servicegraph.io,resources=servicegraphs/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=services,verbs=list;watch

// Reconcile brings one ServiceGraph's generated policies to the compiled desired state and
// reports the outcome in its status.
func (r *ServiceGraphReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var sg v1alpha1.ServiceGraph
	if err := r.Get(ctx, req.NamespacedName, &sg); err != nil {
		if apierrors.IsNotFound(err) {
			forget(req.Namespace, req.Name)
			r.replaced.Delete(req.NamespacedName)
			r.Writer.Forget(req.NamespacedName)
			r.podPath.forget(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if r.cacheBehind(&sg) {
		// Events on the objects just written arrive before the status write: working from the
		// graph as it was would redo the reconcile only to have its status write refused.
		logf.FromContext(ctx).V(1).Info("cached graph predates the last status write; looking again shortly", "resourceVersion", sg.ResourceVersion)
		return r.lookAgain(req.NamespacedName), nil
	}
	if !sg.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil // owner references let the garbage collector remove the policies
	}
	if err := r.markReconciling(ctx, &sg); err != nil {
		return r.staleOr(req.NamespacedName, err)
	}
	if res, done, err := r.podsOnly(ctx, &sg); done {
		return res, err
	}
	found, seen := r.converge(ctx, &sg)
	class := outcome.Classify(found)
	r.record(ctx, &sg, found, class)
	if err := r.writeStatus(ctx, &sg, found, class); err != nil {
		return r.staleOr(req.NamespacedName, err)
	}
	r.remember(&sg, found, seen)
	return r.result(class)
}

// converge compiles the graph with the facts of the cluster and runs the plan, unless the graph
// is not the active one of its namespace or its spec does not compile: then nothing generated is
// touched. It also returns what it saw of the pods, for the pods-only reconciles that may follow.
func (r *ServiceGraphReconciler) converge(ctx context.Context, sg *v1alpha1.ServiceGraph) (outcome.Findings, *podMemo) {
	f := outcome.Findings{Outputs: r.outputs(), Drift: outcome.Settled(sg)}
	active, err := r.activeGraph(ctx, sg)
	if err != nil || active != sg.Name {
		f.ActiveGraph, f.Err = active, err
		return f, nil
	}
	facts, pods, err := r.facts(ctx, sg)
	if err != nil {
		f.Err = err
		return f, nil
	}
	compiles.WithLabelValues(sg.Namespace, sg.Name).Inc()
	if f.Desired, f.CompileErr = compiler.Compile(sg, r.Options, facts); f.CompileErr != nil {
		return f, nil
	}
	var seen *podMemo
	f.Coverage, seen = r.observePods(sg, f.Desired, facts, pods)
	f.Changes, f.Err = r.Writer.Execute(ctx, sg, f.Desired)
	f.Rejected = ssa.IsRejected(f.Err)
	if f.Err == nil && (len(f.Desired.Enroll) > 0 || slices.ContainsFunc(facts.Services, func(ks compiler.KubeService) bool { return ks.Labels != nil })) {
		f.Err = r.enroll(ctx, sg, f.Desired, facts.Services)
	}
	if f.Err == nil && r.Foreign != nil {
		f.Widenings, f.Err = r.widenings(ctx, sg, f.Desired, facts.Missing, pods)
		f.WideningsJudged = f.Err == nil
	}
	return f, seen
}

func (r *ServiceGraphReconciler) outputs() compiler.Registry {
	if r.Options.Outputs == nil {
		return compiler.Builtin()
	}
	return r.Options.Outputs
}

// result turns the classification into what the work queue does next.
func (r *ServiceGraphReconciler) result(c outcome.Class) (ctrl.Result, error) {
	switch c.Retry {
	case outcome.RetryNever:
		return ctrl.Result{}, reconcile.TerminalError(c.Err)
	case outcome.RetryBackoff:
		return ctrl.Result{}, c.Err
	case outcome.RetryRecheck:
		return ctrl.Result{RequeueAfter: r.RecheckInterval}, nil
	}
	return ctrl.Result{}, nil
}

func (r *ServiceGraphReconciler) cacheBehind(sg *v1alpha1.ServiceGraph) bool {
	v, ok := r.replaced.Load(client.ObjectKeyFromObject(sg))
	return ok && slices.Contains(v.([]string), sg.ResourceVersion)
}

// staleOr looks again shortly when a status write found the cached graph stale (the cache has not
// caught up with a write yet): that is no failure, so it neither backs off nor counts as an error.
func (r *ServiceGraphReconciler) staleOr(key client.ObjectKey, err error) (ctrl.Result, error) {
	if apierrors.IsConflict(err) {
		return r.lookAgain(key), nil
	}
	return ctrl.Result{}, err
}

// lookAgain has a graph whose cached copy is behind looked at again after staleRetry, without
// marking it for a full reconcile: a mark that brought this reconcile is still there (it is taken
// later), and a full reconcile that failed left no memo, so the next one is full anyway. Marked,
// every pod event arriving while the cache lags (it does after each status write of a big graph)
// would bring a full reconcile.
func (r *ServiceGraphReconciler) lookAgain(key client.ObjectKey) ctrl.Result {
	if r.podPath.requeueQuietly(key, staleRetry) {
		return ctrl.Result{}
	}
	return ctrl.Result{RequeueAfter: staleRetry}
}

// staleRetry is long enough for the cache to see the operator's own write.
const staleRetry = 200 * time.Millisecond

// activeGraph names the ServiceGraph of sg's namespace that owns the namespace's policies: the
// oldest, then the first by name. Only one may, or two graphs would fight over default-deny.
func (r *ServiceGraphReconciler) activeGraph(ctx context.Context, sg *v1alpha1.ServiceGraph) (string, error) {
	var list v1alpha1.ServiceGraphList
	if err := r.List(ctx, &list, client.InNamespace(sg.Namespace)); err != nil {
		return "", err
	}
	active := sg
	for i := range list.Items {
		other := &list.Items[i]
		if !other.DeletionTimestamp.IsZero() {
			continue
		}
		if other.CreationTimestamp.Before(&active.CreationTimestamp) ||
			(other.CreationTimestamp.Equal(&active.CreationTimestamp) && other.Name < active.Name) {
			active = other
		}
	}
	return active.Name, nil
}
