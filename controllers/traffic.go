package controllers

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/outcome"
	"github.com/servicegraph/servicegraph-operator/internal/semantics"
	"github.com/servicegraph/servicegraph-operator/internal/traffic"
)

// TrafficConfig turns on the TrafficCovered condition: the graph judged against the connections
// Istio's metrics in Prometheus observed.
type TrafficConfig struct {
	// PrometheusURL is the server holding Istio's standard metrics; empty leaves the condition out.
	PrometheusURL string
	// BearerTokenFile and CAFile authenticate to it (the token is read on every query: it rotates).
	BearerTokenFile, CAFile string
	// Interval is how often each namespace with graphs is queried; Window how far back a query looks.
	Interval, Window time.Duration
}

// Defaults of TrafficConfig. The window matches `servicegraph audit --since`: a day also catches
// the daily jobs an hour would miss, which is what "may I enforce?" is about.
const (
	DefaultTrafficInterval = 5 * time.Minute
	DefaultTrafficWindow   = 24 * time.Hour
)

var refusedGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
	Name: "servicegraph_observed_refused_connections",
	Help: "Distinct connections Istio's metrics observed over the traffic window that each ServiceGraph, as Enforce mode applies it, refuses (absent while there is no data).",
}, []string{"namespace", "graph"})

func init() {
	metrics.Registry.MustRegister(refusedGauge)
}

// trafficObserver reads, every interval, each namespace with graphs: one Prometheus query for the
// counts of its connections (never one per edge or per reconcile), its pods in full and those of
// its peers (the inventory), and the policies no graph generated there and in Istio's root
// namespace. Reconciles judge their graph against the last observation; the graphs of a namespace
// whose observation changed are enqueued.
type trafficObserver struct {
	prom     *traffic.Prometheus
	cache    client.Reader // ServiceGraphs, Services (selectors and ports), namespaces' labels
	api      client.Reader // pods in full and foreign policies: the cache holds neither
	interval time.Duration
	window   time.Duration
	log      logr.Logger
	events   chan event.GenericEvent
	kick     chan struct{}
	now      func() time.Time

	mu     sync.Mutex
	byNS   map[string]*observed
	wanted map[string]bool
}

type observed struct {
	obs         traffic.Observation
	fingerprint string
}

// trafficWorkers bound the namespaces read at once: a Prometheus that times out must not take a
// whole interval per namespace.
const trafficWorkers = 4

func newTrafficObserver(cfg TrafficConfig, cache, api client.Reader) (*trafficObserver, error) {
	cfg.Interval = cmp.Or(cfg.Interval, DefaultTrafficInterval)
	cfg.Window = cmp.Or(cfg.Window, DefaultTrafficWindow)
	prom, err := traffic.OpenPrometheus(cfg.PrometheusURL, traffic.SourceOptions{Window: cfg.Window, BearerTokenFile: cfg.BearerTokenFile, CAFile: cfg.CAFile})
	if err != nil {
		return nil, err
	}
	return &trafficObserver{prom: prom, cache: cache, api: api, interval: cfg.Interval, window: cfg.Window,
		log: logf.Log.WithName("traffic"), events: make(chan event.GenericEvent, 1024), kick: make(chan struct{}, 1), now: time.Now,
		byNS: map[string]*observed{}, wanted: map[string]bool{}}, nil
}

// NeedLeaderElection: only the leader reconciles, so only it needs the observations.
func (o *trafficObserver) NeedLeaderElection() bool { return true }

// Start reads every namespace with graphs at once and then every interval, and a namespace a
// reconcile asks for (a new graph's) as soon as it asks.
func (o *trafficObserver) Start(ctx context.Context) error {
	ticker := time.NewTicker(o.interval)
	defer ticker.Stop()
	o.observeAll(ctx)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
			o.observeAll(ctx)
		case <-o.kick:
			o.mu.Lock()
			wanted := o.wanted
			o.wanted = map[string]bool{}
			o.mu.Unlock()
			graphs, err := o.graphs(ctx)
			if err != nil {
				continue
			}
			o.mu.Lock()
			for ns := range graphs {
				if _, seen := o.byNS[ns]; seen || !wanted[ns] {
					delete(graphs, ns)
				}
			}
			o.mu.Unlock()
			o.observe(ctx, graphs)
		}
	}
}

// source enqueues the graphs whose namespace's observation changed.
func (o *trafficObserver) source() source.Source {
	return source.Channel(o.events, &handler.EnqueueRequestForObject{})
}

// observation is the last one of a namespace; false when it was never read.
func (o *trafficObserver) observation(namespace string) (traffic.Observation, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if seen, ok := o.byNS[namespace]; ok {
		return seen.obs, true
	}
	o.wanted[namespace] = true
	select {
	case o.kick <- struct{}{}:
	default: // a kick is pending already
	}
	return traffic.Observation{}, false
}

// graphs lists the ServiceGraphs by namespace.
func (o *trafficObserver) graphs(ctx context.Context) (map[string][]v1alpha1.ServiceGraph, error) {
	var list v1alpha1.ServiceGraphList
	if err := o.cache.List(ctx, &list); err != nil {
		o.log.Error(err, "listing ServiceGraphs")
		return nil, err
	}
	out := map[string][]v1alpha1.ServiceGraph{}
	for _, sg := range list.Items {
		out[sg.Namespace] = append(out[sg.Namespace], sg)
	}
	return out, nil
}

// observeAll reads every namespace with graphs and forgets the others.
func (o *trafficObserver) observeAll(ctx context.Context) {
	graphs, err := o.graphs(ctx)
	if err != nil {
		return
	}
	o.mu.Lock()
	for ns := range o.byNS {
		if _, ok := graphs[ns]; !ok {
			delete(o.byNS, ns)
		}
	}
	o.mu.Unlock()
	o.observe(ctx, graphs)
}

// observe reads the namespaces given, trafficWorkers at a time, and enqueues the graphs of those
// whose observation changed.
func (o *trafficObserver) observe(ctx context.Context, graphs map[string][]v1alpha1.ServiceGraph) {
	if len(graphs) == 0 {
		return
	}
	rd := &clusterReads{api: o.api, cache: o.cache, pods: map[string][]corev1.Pod{}}
	if err := rd.readNamespaces(ctx); err != nil {
		o.log.Error(err, "listing namespaces")
		return
	}
	namespaces := make(chan string)
	var wg sync.WaitGroup
	for range min(trafficWorkers, len(graphs)) {
		wg.Go(func() {
			for ns := range namespaces {
				if o.observeOne(ctx, rd, ns) {
					o.enqueue(ctx, graphs[ns])
				}
			}
		})
	}
	for _, ns := range sortedKeys(graphs) {
		namespaces <- ns
	}
	close(namespaces)
	wg.Wait()
}

// observeOne reads one namespace and tells whether its observation changed. A failed query keeps
// the last answer and counts the failure (traffic.Observation.Usable decides what that means); a
// failure to read the cluster changes nothing (it is not Prometheus' fault) and is tried again at
// the next interval.
func (o *trafficObserver) observeOne(ctx context.Context, rd *clusterReads, ns string) bool {
	o.mu.Lock()
	var next traffic.Observation
	var before string
	if seen, ok := o.byNS[ns]; ok {
		next, before = seen.obs, seen.fingerprint
	}
	o.mu.Unlock()
	next.Window = o.window
	qctx, cancel := context.WithTimeout(ctx, min(max(o.interval, 5*time.Second), 30*time.Second))
	flows, err := o.prom.Flows(qctx, []string{ns}, true)
	cancel()
	log := o.log.WithValues("namespace", ns)
	switch {
	case ctx.Err() != nil:
		return false // shutting down
	case err != nil:
		if next.Failures == 0 {
			next.FailingSince, next.Err = o.now(), err
		}
		next.Failures++
		// An outage fails every namespace every interval: the first failure and the one that turns
		// the condition Unknown are news, the others are not.
		v := 1
		if next.Failures == 1 || next.Failures == traffic.FailuresBeforeUnknown {
			v = 0
		}
		log.V(v).Info("Prometheus query failed", "error", err.Error(), "failures", next.Failures)
	default:
		inv, policies, err := rd.inventory(ctx, ns, flows)
		if err != nil {
			log.Error(err, "reading the namespace's workloads and policies for the traffic judgement")
			return false
		}
		if next.Failures > 0 {
			log.Info("Prometheus answers again", "failures", next.Failures)
		}
		next = traffic.Observation{Answered: true, Flows: flows, Inventory: inv, Policies: policies, Window: o.window}
		log.V(1).Info("traffic observed", "flows", len(flows))
	}
	after := next.Fingerprint()
	o.mu.Lock()
	o.byNS[ns] = &observed{obs: next, fingerprint: after}
	o.mu.Unlock()
	return after != before
}

// enqueue has the graphs reconciled.
func (o *trafficObserver) enqueue(ctx context.Context, graphs []v1alpha1.ServiceGraph) {
	for i := range graphs {
		select {
		case o.events <- event.GenericEvent{Object: &graphs[i]}:
		case <-ctx.Done():
			return
		}
	}
}

// clusterReads are the cluster reads of one round of observations, shared by its namespaces: a
// namespace's pods are listed once per round however many namespaces it talks to.
type clusterReads struct {
	api, cache client.Reader
	labels     map[string]map[string]string

	mu   sync.Mutex
	pods map[string][]corev1.Pod
	root []any
	// rootRead is set once Istio's root namespace's policies are read.
	rootRead bool
}

func (rd *clusterReads) readNamespaces(ctx context.Context) error {
	var list corev1.NamespaceList
	if err := rd.cache.List(ctx, &list); err != nil {
		return err
	}
	rd.labels = map[string]map[string]string{}
	for _, ns := range list.Items {
		rd.labels[ns.Name] = ns.Labels
	}
	return nil
}

// inventory is what a namespace's flows are judged with: the workloads of the namespace and of
// every namespace its flows come from or go to, their Services, and the policies no graph generated
// in the namespace and in Istio's root namespace.
func (rd *clusterReads) inventory(ctx context.Context, ns string, flows []traffic.Flow) (*traffic.Inventory, []any, error) {
	spaces := []string{ns}
	for _, f := range flows {
		spaces = append(spaces, f.From.Namespace, f.To.Namespace)
	}
	slices.Sort(spaces)
	spaces = slices.Compact(spaces)
	var pods []corev1.Pod
	var services []corev1.Service
	for _, space := range spaces {
		if _, exists := rd.labels[space]; space == "" || !exists {
			continue
		}
		p, err := rd.podsOf(ctx, space)
		if err != nil {
			return nil, nil, err
		}
		pods = append(pods, p...)
		var list corev1.ServiceList
		if err := rd.cache.List(ctx, &list, client.InNamespace(space)); err != nil {
			return nil, nil, err
		}
		slices.SortFunc(list.Items, func(a, b corev1.Service) int { return cmp.Compare(a.Name, b.Name) })
		services = append(services, list.Items...)
	}
	policies, err := foreignPolicies(ctx, rd.api, ns)
	if err != nil {
		return nil, nil, err
	}
	root, err := rd.rootPolicies(ctx)
	if err != nil {
		return nil, nil, err
	}
	if ns != semantics.DefaultRootNamespace {
		policies = append(policies, root...)
	}
	return traffic.InventoryOf(pods, services, rd.labels), policies, nil
}

func (rd *clusterReads) podsOf(ctx context.Context, ns string) ([]corev1.Pod, error) {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	if pods, ok := rd.pods[ns]; ok {
		return pods, nil
	}
	var list corev1.PodList
	if err := rd.api.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return nil, err
	}
	rd.pods[ns] = list.Items
	return list.Items, nil
}

func (rd *clusterReads) rootPolicies(ctx context.Context) ([]any, error) {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	if rd.rootRead {
		return rd.root, nil
	}
	root, err := foreignPolicies(ctx, rd.api, semantics.DefaultRootNamespace)
	if err != nil {
		return nil, err
	}
	rd.root, rd.rootRead = root, true
	return root, nil
}

// foreignPolicies reads the policies of a namespace that the operator did not generate; a kind
// whose API is not served (Istio's, without Istio) has none.
func foreignPolicies(ctx context.Context, api client.Reader, ns string) ([]any, error) {
	var out []any
	for _, list := range []client.ObjectList{&networkingv1.NetworkPolicyList{}, &securityv1.PeerAuthenticationList{}, &securityv1.AuthorizationPolicyList{}} {
		if err := api.List(ctx, list, client.InNamespace(ns), client.MatchingLabelsSelector{Selector: notOurs}); err != nil {
			if meta.IsNoMatchError(err) {
				continue
			}
			return nil, err
		}
		items, err := meta.ExtractList(list)
		if err != nil {
			return nil, err
		}
		for _, item := range items {
			out = append(out, item)
		}
	}
	return out, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// trafficStatus sets TrafficCovered on next, the status about to be written, from the namespace's
// last observation, and records the metric, and an event and a log line when the condition's
// status or reason changes from before's. Without Prometheus the condition is absent; a graph that
// did not compile keeps its last judgement (there is nothing new to judge); until the namespace's
// observation decides anything (see traffic.Observation.Decided) the condition stays as it is (the
// observer enqueues the graph then).
func (r *ServiceGraphReconciler) trafficStatus(ctx context.Context, before, next *v1alpha1.ServiceGraph, f outcome.Findings) {
	if r.Traffic == nil {
		meta.RemoveStatusCondition(&next.Status.Conditions, v1alpha1.ConditionTrafficCovered)
		return
	}
	if f.Desired == nil {
		return
	}
	obs, ok := r.Traffic.observation(next.Namespace)
	if !ok || !obs.Decided() {
		return
	}
	var namespaces map[string]map[string]string
	if obs.Inventory != nil {
		namespaces = obs.Inventory.Namespaces
	}
	judge := traffic.EnforceJudge(f.Desired, obs.Policies, namespaces, r.Options.TrustDomain)
	cov := traffic.Assess(&obs, judge, f.Desired.Graph)
	meta.SetStatusCondition(&next.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionTrafficCovered, Status: cov.Status,
		Reason: cov.Reason, Message: outcome.Shorten(cov.Message, maxConditionMessage), ObservedGeneration: next.Generation})
	labels := prometheus.Labels{"namespace": next.Namespace, "graph": next.Name}
	if cov.Known() {
		refusedGauge.With(labels).Set(float64(cov.Refused))
	} else {
		refusedGauge.Delete(labels)
	}
	if was := meta.FindStatusCondition(before.Status.Conditions, v1alpha1.ConditionTrafficCovered); was != nil && was.Status == cov.Status && was.Reason == cov.Reason {
		return
	}
	kind := corev1.EventTypeNormal
	if cov.Reason == v1alpha1.ReasonObservedTrafficRefused || cov.Reason == v1alpha1.ReasonPrometheusUnreachable {
		kind = corev1.EventTypeWarning
	}
	logf.FromContext(ctx).Info("TrafficCovered changed", "status", cov.Status, "reason", cov.Reason, "refused", cov.Refused)
	r.Recorder.Eventf(next, nil, kind, cov.Reason, "Audit", "%s", outcome.Shorten(cov.Message, maxEventNote))
}

// forgetTraffic drops the metric of a deleted graph.
func forgetTraffic(namespace, name string) {
	refusedGauge.DeletePartialMatch(prometheus.Labels{"namespace": namespace, "graph": name})
}

// maxConditionMessage is the longest message metav1.Condition accepts.
const maxConditionMessage = 32768
