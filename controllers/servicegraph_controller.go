// Package controllers holds the ServiceGraph reconciler. It is thin on purpose: the policy logic
// lives in internal/compiler; this package reads, applies, prunes and reports.
package controllers

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/compiler"
)

// FieldOwner is the server-side apply field manager of every generated object.
const FieldOwner = "servicegraph-operator"

// ServiceGraphReconciler compiles ServiceGraphs and keeps the generated policies in sync.
type ServiceGraphReconciler struct {
	client.Client
	// APIReader reads around the cache, which holds only the operator's own objects: it finds
	// foreign objects that sit under a generated name.
	APIReader client.Reader
	Recorder  events.EventRecorder
	Istio     *IstioDetector
	// Options are the cluster facts for the compiler; Istio is decided per reconcile.
	Options compiler.Options
	// RecheckInterval is how often a graph waiting on something outside its spec (Istio not
	// installed, a foreign object in the way) is looked at again.
	RecheckInterval time.Duration
	// Workers bounds the concurrent applies within one phase.
	Workers int

	// creator writes the objects that do not exist yet.
	creator *creator

	// replaced holds, per graph, the resourceVersions its last two status writes replaced (a
	// reconcile makes up to two): a cached graph still at one of them is one the cache has not
	// caught up on.
	replaced sync.Map
}

// +kubebuilder:rbac:groups=policy.servicegraph.io,resources=servicegraphs,verbs=get;list;watch
// +kubebuilder:rbac:groups=policy.servicegraph.io,resources=servicegraphs/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=networking.k8s.io,resources=networkpolicies,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=security.istio.io,resources=peerauthentications;authorizationpolicies,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch

// Reconcile brings one ServiceGraph's generated policies to the compiled desired state and
// reports the outcome in its status.
func (r *ServiceGraphReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var sg v1alpha1.ServiceGraph
	if err := r.Get(ctx, req.NamespacedName, &sg); err != nil {
		if apierrors.IsNotFound(err) {
			forget(req.Namespace, req.Name)
			r.replaced.Delete(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if r.cacheBehind(&sg) {
		// Events on the objects just written arrive before the status write: working from the
		// graph as it was would redo the reconcile only to have its status write refused.
		logf.FromContext(ctx).V(1).Info("cached graph predates the last status write; looking again shortly", "resourceVersion", sg.ResourceVersion)
		return ctrl.Result{RequeueAfter: staleRetry}, nil
	}
	if !sg.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil // owner references let the garbage collector remove the policies
	}
	if err := r.markReconciling(ctx, &sg); err != nil {
		return staleOr(err)
	}

	out := r.converge(ctx, &sg)
	r.record(ctx, &sg, out)
	if err := r.writeStatus(ctx, &sg, out); err != nil {
		return staleOr(err)
	}
	return r.result(out)
}

// converge compiles the graph and applies and prunes its objects, unless the graph is not the
// active one of its namespace or its spec does not compile: then nothing generated is touched.
func (r *ServiceGraphReconciler) converge(ctx context.Context, sg *v1alpha1.ServiceGraph) (out outcome) {
	active, err := r.activeGraph(ctx, sg)
	if err != nil || active != sg.Name {
		out.activeGraph, out.err = active, err
		return out
	}
	if out.istio, err = r.Istio.Installed(); err != nil {
		out.err = err
		return out
	}
	pods, err := r.podsOf(ctx, sg.Namespace)
	if err != nil {
		out.err = err
		return out
	}
	effective := sg
	if out.istio && wantsStrictEnforced(sg) {
		if out.unmeshed, err = r.unmeshed(ctx, pods); err == nil {
			effective, err = r.effectiveMTLS(ctx, sg, out.unmeshed)
		}
		if err != nil {
			out.err = err
			return out
		}
	}
	opts := r.Options
	opts.Istio = out.istio
	if out.desired, out.compileErr = compiler.Compile(effective, opts); out.compileErr != nil {
		return out
	}
	out.coverage = coverage(out.desired.Graph, pods)
	out.drift = isSettled(sg)
	if out.desired.Enforcement == v1alpha1.EnforcementAudit {
		out.err = r.rollBack(ctx, sg, effective, opts, &out)
		return out
	}
	if out.applied, out.conflicts, err = r.apply(ctx, sg, out.desired.Phases()); err != nil || len(out.conflicts) > 0 {
		out.err = err
		return out
	}
	out.pruned, out.err = r.prune(ctx, sg, out.desired, out.istio, nil)
	return out
}

// rollBack converges a graph in Audit mode. Going to Audit loosens every policy, so it runs in the
// reverse order of a rollout: default-deny goes first, then mutual TLS relaxes, then the
// AuthorizationPolicies turn dry-run. It also records what Enforce would apply (the plan).
func (r *ServiceGraphReconciler) rollBack(ctx context.Context, sg, effective *v1alpha1.ServiceGraph, opts compiler.Options, out *outcome) error {
	enforce := effective.DeepCopy()
	enforce.Spec.Enforcement = v1alpha1.EnforcementEnforce
	plan, err := compiler.Compile(enforce, opts)
	if err != nil {
		return err
	}
	out.plan = plan
	denies := map[v1alpha1.ObjectReference]bool{}
	for _, obj := range plan.Deny {
		denies[refTo(obj)] = true
	}
	if out.pruned, err = r.prune(ctx, sg, out.desired, out.istio, denies); err != nil {
		return err
	}
	phases := out.desired.Phases()
	slices.Reverse(phases)
	out.applied, out.conflicts, err = r.apply(ctx, sg, phases)
	return err
}

func (r *ServiceGraphReconciler) cacheBehind(sg *v1alpha1.ServiceGraph) bool {
	v, ok := r.replaced.Load(client.ObjectKeyFromObject(sg))
	return ok && slices.Contains(v.([]string), sg.ResourceVersion)
}

// staleOr looks again shortly when a status write found the cached graph stale (the cache has not
// caught up with a write yet): that is no failure, so it neither backs off nor counts as an error.
func staleOr(err error) (ctrl.Result, error) {
	if apierrors.IsConflict(err) {
		return ctrl.Result{RequeueAfter: staleRetry}, nil
	}
	return ctrl.Result{}, err
}

// staleRetry is long enough for the cache to see the operator's own write.
const staleRetry = 200 * time.Millisecond

// result turns the outcome into what the work queue should do next.
func (r *ServiceGraphReconciler) result(out outcome) (ctrl.Result, error) {
	switch {
	case errors.As(out.err, new(rejectedError)):
		return ctrl.Result{}, reconcile.TerminalError(out.err)
	case out.err != nil:
		return ctrl.Result{}, out.err
	case out.compileErr != nil:
		// Retrying cannot fix a spec; the next spec change triggers a new reconcile.
		return ctrl.Result{}, reconcile.TerminalError(out.compileErr)
	case len(out.conflicts) > 0, out.desired != nil && !out.istio, len(out.unmeshed) > 0:
		return ctrl.Result{RequeueAfter: r.RecheckInterval}, nil
	}
	return ctrl.Result{}, nil
}

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

// SetupWithManager watches ServiceGraphs and the objects generated from them. The generated Istio
// objects are watched once the Istio API is served (see IstioDetector).
func (r *ServiceGraphReconciler) SetupWithManager(mgr ctrl.Manager) error {
	c, err := ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.ServiceGraph{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Owns(&networkingv1.NetworkPolicy{}, builder.WithPredicates(skipCreates)).
		WatchesMetadata(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(r.graphsOfPod)).
		// Creating or deleting a graph can change which graph of the namespace is active.
		Watches(&v1alpha1.ServiceGraph{}, handler.EnqueueRequestsFromMapFunc(r.siblings),
			builder.WithPredicates(predicate.Funcs{
				UpdateFunc: func(event.UpdateEvent) bool { return false },
			})).
		Named("servicegraph").
		Build(r)
	if err != nil {
		return err
	}
	r.Istio.attach(c)
	return nil
}

// skipCreates drops the create events of generated objects: the operator created them in the
// reconcile that is about to report them (or, at start-up, the graphs are enqueued anyway), and a
// second look would re-read the whole graph for nothing.
var skipCreates = predicate.Funcs{CreateFunc: func(event.CreateEvent) bool { return false }}

// siblings enqueues the other ServiceGraphs of a namespace.
func (r *ServiceGraphReconciler) siblings(ctx context.Context, obj client.Object) []reconcile.Request {
	return r.graphsIn(ctx, obj.GetNamespace(), obj.GetName())
}

// graphsIn enqueues the ServiceGraphs of a namespace but the one named except.
func (r *ServiceGraphReconciler) graphsIn(ctx context.Context, namespace, except string) []reconcile.Request {
	var list v1alpha1.ServiceGraphList
	if err := r.List(ctx, &list, client.InNamespace(namespace)); err != nil {
		logf.FromContext(ctx).Error(err, "listing ServiceGraphs", "namespace", namespace)
		return nil
	}
	var reqs []reconcile.Request
	for _, sg := range list.Items {
		if sg.Name != except {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&sg)})
		}
	}
	return reqs
}

// isSettled tells whether the graph's current generation was already applied successfully; a
// write to a generated object is then a drift correction.
func isSettled(sg *v1alpha1.ServiceGraph) bool {
	return sg.Status.ObservedGeneration == sg.Generation &&
		meta.IsStatusConditionTrue(sg.Status.Conditions, v1alpha1.ConditionReady)
}
