package controllers

import (
	"context"
	"crypto/sha256"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/compiler"
	"github.com/servicegraph/servicegraph-operator/internal/graph"
	"github.com/servicegraph/servicegraph-operator/internal/object"
	"github.com/servicegraph/servicegraph-operator/internal/outcome"
	"github.com/servicegraph/servicegraph-operator/internal/semantics"
)

// A rollout brings a graph thousands of pod events, and what they change is mostly its coverage.
// A reconcile that only pod events asked for, of a graph whose last full reconcile was clean at
// the same generation, gathers what the compiler reads from pods; when that is as it was, it
// writes the coverage (if it changed) and stops: nothing is compiled, compared or applied. Every
// other reason to reconcile (a watch event, a retry, a recheck) marks the graph for a full
// reconcile on its way into the work queue (see markingQueue).

var compiles = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "servicegraph_compiles_total",
	Help: "Compilations of each ServiceGraph; a reconcile for pod changes that leave its policies as they are compiles nothing.",
}, []string{"namespace", "name"})

func init() {
	metrics.Registry.MustRegister(compiles)
}

// podPath holds, per graph, the marks for a full reconcile and what its last clean full
// reconcile saw of the pods.
type podPath struct {
	// queue is the controller's marking queue once it is made: until then every reconcile is full.
	queue atomic.Pointer[markingQueue]
	mu    sync.Mutex
	// marks are when a full reconcile comes due: now for an event or a retry, later for a recheck.
	marks map[client.ObjectKey]time.Time
	memos sync.Map // client.ObjectKey → *podMemo
}

// podMemo is what a pods-only reconcile needs of the last clean full reconcile, never the
// compiled objects: about 1.5 KiB for a 10-service graph.
type podMemo struct {
	uid        types.UID
	generation int64
	// sum is the digest of the pods' facts the compiler and the widening judgement read (podSum).
	sum [sha256.Size]byte
	// services are the local services (name and selector), waypoints those the graph's services
	// go through: what the coverage needs.
	services  []flatService
	waypoints []string
	// dataplanes are the compiled data planes the status shows; istio tells whether the mesh's
	// layer was on, so that the pods' data planes and sidecars were read.
	dataplanes map[string]semantics.Dataplane
	istio      bool
}

// flatService is a local service's name and selector (key, value, key, value…): a map per
// service would make up most of a small graph's memo.
type flatService struct {
	name     string
	selector []string
}

func flatten(services []graph.Service) []flatService {
	out := make([]flatService, len(services))
	for i, s := range services {
		out[i] = flatService{name: s.Name, selector: make([]string, 0, 2*len(s.Labels))}
		for _, k := range slices.Sorted(maps.Keys(s.Labels)) {
			out[i].selector = append(out[i].selector, k, s.Labels[k])
		}
	}
	return out
}

func unflatten(namespace string, flat []flatService) []graph.Service {
	out := make([]graph.Service, len(flat))
	for i, f := range flat {
		labels := make(map[string]string, len(f.selector)/2)
		for j := 0; j < len(f.selector); j += 2 {
			labels[f.selector[j]] = f.selector[j+1]
		}
		out[i] = graph.Service{Name: f.name, Namespace: namespace, Labels: labels}
	}
	return out
}

// mark makes the graph's first reconcile from after on a full one.
func (p *podPath) mark(key client.ObjectKey, after time.Duration) {
	due := time.Now().Add(after)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.marks == nil {
		p.marks = map[client.ObjectKey]time.Time{}
	}
	if was, ok := p.marks[key]; !ok || due.Before(was) {
		p.marks[key] = due
	}
}

// take removes the graph's mark and returns it.
func (p *podPath) take(key client.ObjectKey) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	due, ok := p.marks[key]
	delete(p.marks, key)
	return due, ok
}

// requeueQuietly adds the graph to the marking queue without a mark, and reports whether there is
// one.
func (p *podPath) requeueQuietly(key client.ObjectKey, after time.Duration) bool {
	q := p.queue.Load()
	if q == nil {
		return false
	}
	q.addQuietly(reconcile.Request{NamespacedName: key}, after, nil)
	return true
}

// forget drops what is kept of a deleted graph.
func (p *podPath) forget(key client.ObjectKey) {
	p.take(key)
	p.memos.Delete(key)
	compiles.DeleteLabelValues(key.Namespace, key.Name)
}

// podsOnlyAllowed decides, before anything is read, whether a reconcile may take the pods-only
// path: the queue marks graphs, no full reconcile has come due, and the memo is of this very
// graph at this generation.
func podsOnlyAllowed(wired bool, due time.Time, marked bool, now time.Time, m *podMemo, sg *v1alpha1.ServiceGraph) bool {
	return wired && (!marked || now.Before(due)) && m != nil && m.uid == sg.UID && m.generation == sg.Generation
}

// memorable tells whether a full reconcile leaves a graph whose pods can change only its coverage
// until their facts do: it compiled, is the active graph, and everything was applied.
func memorable(f outcome.Findings) bool {
	return f.Desired != nil && f.ActiveGraph == "" && f.Err == nil && len(f.Changes.Conflicts) == 0
}

// podsOnly reconciles a graph the pods-only way when it may, and reports whether it did; when it
// reports false, the full reconcile follows.
func (r *ServiceGraphReconciler) podsOnly(ctx context.Context, sg *v1alpha1.ServiceGraph) (ctrl.Result, bool, error) {
	key := client.ObjectKeyFromObject(sg)
	due, marked := r.podPath.take(key)
	var m *podMemo
	if v, ok := r.podPath.memos.Load(key); ok {
		m = v.(*podMemo)
	}
	if !podsOnlyAllowed(r.podPath.queue.Load() != nil, due, marked, time.Now(), m, sg) {
		r.podPath.memos.Delete(key) // the full reconcile leaves a new one if it ends clean
		return ctrl.Result{}, false, nil
	}
	sum, cov, err := r.seePods(ctx, sg, m)
	if err != nil || sum != m.sum {
		r.podPath.memos.Delete(key)
		return ctrl.Result{}, false, nil
	}
	next := coverageStatus(sg, cov, m.dataplanes)
	if !equality.Semantic.DeepEqual(next.Status, sg.Status) {
		if err := r.patchStatus(ctx, next, statusPatch(sg)); err != nil {
			r.podPath.memos.Delete(key) // the next reconcile is full, whatever mark this one took
			res, err := r.staleOr(key, err)
			return res, true, err
		}
	}
	if marked {
		// The pod event took the place of a pending recheck in the queue: put it back.
		return ctrl.Result{RequeueAfter: max(time.Until(due), time.Nanosecond)}, true, nil
	}
	return ctrl.Result{}, true, nil
}

// observePods computes a compiled graph's coverage, and the memo of what a full reconcile saw of
// the pods. Graphs with services in ambient mode get none: their policies follow the pods' specs
// (probe and named ports), which pod metadata does not show.
func (r *ServiceGraphReconciler) observePods(sg *v1alpha1.ServiceGraph, d *compiler.Result, facts compiler.Facts, pods []metav1.PartialObjectMetadata) (*v1alpha1.Coverage, *podMemo) {
	services := localServices(d.Graph)
	match := matchPods(services, pods)
	cov := coverageOf(sg.Namespace, services, match, d.Waypoints, len(pods))
	if facts.ProbePorts != nil || facts.NamedPorts != nil {
		return cov, nil
	}
	return cov, &podMemo{uid: sg.UID, generation: sg.Generation, sum: podSum(facts.Dataplanes, facts.Unmeshed, match.strays),
		services: flatten(services), waypoints: d.Waypoints, dataplanes: d.Dataplanes,
		istio: layerOn(facts.Missing, r.outputs().KindsOf(compiler.LayerIstio))}
}

// remember keeps the memo of a full reconcile whose status was written, when the graph may take
// the pods-only path next.
func (r *ServiceGraphReconciler) remember(sg *v1alpha1.ServiceGraph, f outcome.Findings, m *podMemo) {
	if m != nil && memorable(f) {
		r.podPath.memos.Store(client.ObjectKeyFromObject(sg), m)
	}
}

// seePods gathers what facts gathers from the pods (their data planes, and the mTLS preflight's
// unmeshed pods) without trying every pod against every service, and the coverage.
func (r *ServiceGraphReconciler) seePods(ctx context.Context, sg *v1alpha1.ServiceGraph, m *podMemo) ([sha256.Size]byte, *v1alpha1.Coverage, error) {
	pods, err := r.podsOf(ctx, sg.Namespace)
	if err != nil {
		return [sha256.Size]byte{}, nil, err
	}
	services := unflatten(sg.Namespace, m.services)
	match := matchPods(services, pods)
	var dataplanes map[string]semantics.Dataplane
	var unmeshed []string
	if m.istio {
		var ns corev1.Namespace
		if err := r.Get(ctx, client.ObjectKey{Name: sg.Namespace}, &ns); client.IgnoreNotFound(err) != nil {
			return [sha256.Size]byte{}, nil, err
		}
		dataplanes = map[string]semantics.Dataplane{}
		for i := range services {
			if d, ok := serviceDataplane(match.byService[i], ns.Labels); ok {
				dataplanes[services[i].Name] = d
			}
		}
		if compiler.WantsStrict(&sg.Spec) {
			if unmeshed, err = r.unmeshed(ctx, pods); err != nil {
				return [sha256.Size]byte{}, nil, err
			}
		}
	}
	return podSum(dataplanes, unmeshed, match.strays), coverageOf(sg.Namespace, services, match, m.waypoints, len(pods)), nil
}

// coverageStatus is sg with the coverage, its data planes and its condition replaced, the way a
// full reconcile reports them.
func coverageStatus(sg *v1alpha1.ServiceGraph, cov *v1alpha1.Coverage, dataplanes map[string]semantics.Dataplane) *v1alpha1.ServiceGraph {
	next := sg.DeepCopy()
	next.Status.Coverage = cov
	outcome.SetDataplanes(next, dataplanes)
	status, reason, msg := outcome.CoverageCondition(cov)
	meta.SetStatusCondition(&next.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionCoverage, Status: status, Reason: reason,
		Message: outcome.Shorten(msg, maxConditionMessage), ObservedGeneration: next.Generation})
	return next
}

// localServices are the graph's local services, with only what selecting their pods needs.
func localServices(g *graph.Graph) []graph.Service {
	var out []graph.Service
	for i := range g.Services {
		if s := &g.Services[i]; g.Local(s) {
			out = append(out, graph.Service{Name: s.Name, Namespace: s.Namespace, Labels: s.Labels})
		}
	}
	return out
}

// podMatch is which pods each service selects (in the services' order) and the pods none does,
// each in the pods' order.
type podMatch struct {
	byService [][]metav1.PartialObjectMetadata
	strays    []metav1.PartialObjectMetadata
}

// matchPods matches pods to services through an index on one label of each selector (every pod a
// selector selects carries all its labels): a rollout of a 1,000-service graph's 3,000 pods would
// otherwise try 3 million pairs. An empty selector selects nothing, as compiler.Selects has it
// (graph.Build refuses one anyway).
func matchPods(services []graph.Service, pods []metav1.PartialObjectMetadata) podMatch {
	index := map[[2]string][]int{}
	for i, s := range services {
		if len(s.Labels) == 0 {
			continue
		}
		k := slices.Min(slices.Collect(maps.Keys(s.Labels)))
		index[[2]string{k, s.Labels[k]}] = append(index[[2]string{k, s.Labels[k]}], i)
	}
	m := podMatch{byService: make([][]metav1.PartialObjectMetadata, len(services))}
	for _, p := range pods {
		selected := false
		for k, v := range p.Labels {
			for _, i := range index[[2]string{k, v}] {
				if compiler.Selects(services[i].Labels, p.Labels) {
					m.byService[i] = append(m.byService[i], p)
					selected = true
				}
			}
		}
		if !selected {
			m.strays = append(m.strays, p)
		}
	}
	return m
}

// coverageOf is outcome.Coverage from a podMatch: the strays are judged by outcome.Coverage alone
// (covered when on a waypoint), the matched pods are covered.
func coverageOf(namespace string, services []graph.Service, m podMatch, waypoints []string, pods int) *v1alpha1.Coverage {
	cov := outcome.Coverage(&graph.Graph{Namespace: namespace}, m.strays, waypoints)
	for i, s := range services {
		cov.Services = append(cov.Services, v1alpha1.ServiceCoverage{Name: s.Name, Pods: int32(len(m.byService[i]))})
	}
	cov.CoveredPods += int32(pods - len(m.strays))
	return cov
}

// podSum digests what the compiler reads from pods (the services' data planes, the unmeshed pods
// of the mTLS preflight) and what the widening judgement reads of the pods no service selects
// (their names, labels and Istio marks). Pods coming and going within the services change none.
func podSum(dataplanes map[string]semantics.Dataplane, unmeshed []string, strays []metav1.PartialObjectMetadata) [sha256.Size]byte {
	h := sha256.New()
	for _, name := range slices.Sorted(maps.Keys(dataplanes)) {
		fmt.Fprintf(h, "dataplane %q %q\n", name, dataplanes[name])
	}
	for _, name := range unmeshed {
		fmt.Fprintf(h, "unmeshed %q\n", name)
	}
	for _, p := range strays {
		fmt.Fprintf(h, "stray %q %t", p.Name, object.IstioMarked(p.Annotations))
		for _, k := range slices.Sorted(maps.Keys(p.Labels)) {
			fmt.Fprintf(h, " %q=%q", k, p.Labels[k])
		}
		fmt.Fprintln(h)
	}
	return [sha256.Size]byte(h.Sum(nil))
}
