package controllers

import (
	"context"
	"time"

	istionetworkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/discovery"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/controllers/ssa"
	"github.com/servicegraph/servicegraph-operator/controllers/summary"
	"github.com/servicegraph/servicegraph-operator/internal/audit"
	"github.com/servicegraph/servicegraph-operator/internal/cilium"
	"github.com/servicegraph/servicegraph-operator/internal/compiler"
)

// NewScheme knows the ServiceGraph, the Kubernetes built-in kinds, Istio's security and networking
// kinds, the Gateway API's Gateway and Cilium's CiliumNetworkPolicy.
func NewScheme() *runtime.Scheme {
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(securityv1.AddToScheme(scheme))
	utilruntime.Must(istionetworkingv1.AddToScheme(scheme))
	utilruntime.Must(v1alpha1.AddToScheme(scheme))
	utilruntime.Must(gatewayv1.Install(scheme))
	utilruntime.Must(cilium.AddToScheme(scheme))
	return scheme
}

// generatedLabel selects the objects the operator generated.
var generatedLabel = labels.SelectorFromSet(labels.Set{compiler.LabelManagedBy: compiler.ManagedByValue})

// CacheOptions make the manager's cache hold only the operator's own objects (and the
// ServiceGraphs), so memory stays flat in a cluster full of foreign policies. The label filter is
// the default rather than per kind because per-kind options need the kind to be served when the
// manager starts, and an output's API (Istio's) may be installed later.
func CacheOptions() cache.Options {
	return cache.Options{
		DefaultLabelSelector: generatedLabel,
		ByObject: map[client.Object]cache.ByObject{
			&v1alpha1.ServiceGraph{}: {Label: labels.Everything()},
			// Pods are watched as metadata only, for the mTLS preflight and workload coverage.
			&corev1.Pod{}: {Label: labels.Everything()},
			// Services are kept as their selector and ports, what Istio reads the ports' protocols from.
			&corev1.Service{}: {Label: labels.Everything(), Transform: servicePorts},
			// Namespaces are kept as their labels: the data plane and waypoint of their pods.
			&corev1.Namespace{}:          {Label: labels.Everything(), Transform: namespaceLabelsOnly},
			&discoveryv1.EndpointSlice{}: apiServerSliceCache,
		},
		DefaultTransform: cache.TransformStripManagedFields(),
	}
}

// servicePorts keeps of a Service only what the operator reads (its selector, ports and the
// labels that name a waypoint), so the cache stays small in a cluster with many Services.
func servicePorts(obj any) (any, error) {
	svc, ok := obj.(*corev1.Service)
	if !ok {
		return obj, nil
	}
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: svc.Name, Namespace: svc.Namespace, UID: svc.UID, ResourceVersion: svc.ResourceVersion,
			Labels: compiler.WaypointLabels(svc.Labels)},
		Spec: corev1.ServiceSpec{Selector: svc.Spec.Selector, Ports: svc.Spec.Ports},
	}, nil
}

// Config is what the reconciler takes from the command line.
type Config struct {
	Options         compiler.Options
	RecheckInterval time.Duration
	Workers         int
	// Concurrency is how many graphs reconcile at once.
	Concurrency int
	// Audit configures the audit trail of the changes the operator makes (the log, and a webhook
	// when Audit.WebhookURL is set).
	Audit audit.Options
	// Traffic configures the TrafficCovered condition (off without a Prometheus URL).
	Traffic TrafficConfig
}

// DefaultConfig suits a stock cluster.
func DefaultConfig() Config {
	return Config{Options: compiler.DefaultOptions(), RecheckInterval: time.Minute, Workers: 8, Concurrency: 4,
		Traffic: TrafficConfig{Interval: DefaultTrafficInterval, Window: DefaultTrafficWindow}}
}

// Setup adds the ServiceGraph controller to the manager.
func Setup(mgr ctrl.Manager, cfg Config) error {
	dc, err := discovery.NewDiscoveryClientForConfig(mgr.GetConfig())
	if err != nil {
		return err
	}
	if cfg.Options.Outputs == nil {
		cfg.Options.Outputs = compiler.Builtin()
	}
	opts := ForeignCacheOptions()
	opts.Scheme, opts.Mapper, opts.HTTPClient = mgr.GetScheme(), mgr.GetRESTMapper(), mgr.GetHTTPClient()
	foreign, err := cache.New(mgr.GetConfig(), opts)
	if err != nil {
		return err
	}
	if err := mgr.Add(foreign); err != nil {
		return err
	}
	trail, err := audit.New(cfg.Audit)
	if err != nil {
		return err
	}
	if err := mgr.Add(trail); err != nil {
		return err
	}
	summaries := summary.NewCaches(mgr.GetConfig(), mgr.GetHTTPClient(), mgr.GetRESTMapper(), generatedLabel)
	if err := mgr.Add(summaries); err != nil {
		return err
	}
	apis := NewAPIDetector(dc, summaries, mgr.GetClient(), cfg.Options.Outputs)
	apis.foreign = foreign
	writer := ssa.New(mgr.GetClient(), mgr.GetAPIReader(), summaries, mgr.GetConfig(), mgr.GetHTTPClient(), FieldOwner, cfg.Workers)
	writer.Foreign = foreign
	r := &ServiceGraphReconciler{
		Client:          mgr.GetClient(),
		APIReader:       mgr.GetAPIReader(),
		Foreign:         foreign,
		Audit:           trail,
		Recorder:        mgr.GetEventRecorder(FieldOwner),
		APIs:            apis,
		Options:         cfg.Options,
		Writer:          writer,
		RecheckInterval: cfg.RecheckInterval,
		Concurrency:     cfg.Concurrency,
	}
	if cfg.Traffic.PrometheusURL != "" {
		if r.Traffic, err = newTrafficObserver(cfg.Traffic, mgr.GetCache(), mgr.GetAPIReader()); err != nil {
			return err
		}
		if err := mgr.Add(r.Traffic); err != nil {
			return err
		}
	}
	return r.SetupWithManager(mgr)
}

// SetupWithManager watches ServiceGraphs and pods; the generated objects of each output are
// watched once its API is served (see APIDetector).
func (r *ServiceGraphReconciler) SetupWithManager(mgr ctrl.Manager) error {
	b := ctrl.NewControllerManagedBy(mgr)
	if r.Traffic != nil {
		// A namespace's observed traffic changed: its graphs judge it again.
		b = b.WatchesRawSource(r.Traffic.source())
	}
	c, err := b.
		For(&v1alpha1.ServiceGraph{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		WatchesMetadata(&corev1.Pod{}, delayedEnqueue(r.graphsOfNamespace), builder.WithPredicates(podUpdates)).
		Watches(&corev1.Service{}, handler.EnqueueRequestsFromMapFunc(r.graphsOfNamespace)).
		Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(r.graphsOfNamespaceObject), builder.WithPredicates(namespaceDataplaneChanged)).
		Watches(&discoveryv1.EndpointSlice{}, handler.EnqueueRequestsFromMapFunc(r.graphsWithAPIServerPeer)).
		// Creating or deleting a graph can change which graph of the namespace is active.
		Watches(&v1alpha1.ServiceGraph{}, handler.EnqueueRequestsFromMapFunc(r.siblings),
			builder.WithPredicates(predicate.Funcs{
				UpdateFunc: func(event.UpdateEvent) bool { return false },
			})).
		Named("servicegraph").
		// Graphs of different namespaces reconcile side by side, so a big one does not hold up the
		// small ones; one graph is never reconciled twice at once. The queue tells pod events from
		// every other reason to reconcile (markingQueue).
		WithOptions(controller.Options{MaxConcurrentReconciles: max(r.Concurrency, 1), NewQueue: r.podPath.newQueue(mgr.GetLogger())}).
		Build(r)
	if err != nil {
		return err
	}
	r.APIs.attach(c, handler.EnqueueRequestsFromMapFunc(r.graphsOfNamespace))
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
