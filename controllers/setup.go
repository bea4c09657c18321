package controllers

import (
	"time"

	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/discovery"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/compiler"
)

// NewScheme knows the ServiceGraph, the Kubernetes built-in kinds and Istio's security kinds.
func NewScheme() *runtime.Scheme {
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(securityv1.AddToScheme(scheme))
	utilruntime.Must(v1alpha1.AddToScheme(scheme))
	return scheme
}

// CacheOptions make the manager's cache hold only the operator's own objects (and the
// ServiceGraphs), so memory stays flat in a cluster full of foreign policies. The label filter is
// the default rather than per kind because per-kind options need the kind to be served when the
// manager starts, and Istio's may be installed later.
func CacheOptions() cache.Options {
	return cache.Options{
		DefaultLabelSelector: labels.SelectorFromSet(labels.Set{compiler.LabelManagedBy: compiler.ManagedByValue}),
		ByObject: map[client.Object]cache.ByObject{
			&v1alpha1.ServiceGraph{}: {Label: labels.Everything()},
			// Pods are watched as metadata only, for the mTLS preflight and workload coverage.
			&corev1.Pod{}: {Label: labels.Everything()},
		},
		DefaultTransform: cache.TransformStripManagedFields(),
	}
}

// Config is what the reconciler takes from the command line.
type Config struct {
	Options         compiler.Options
	RecheckInterval time.Duration
	Workers         int
}

// DefaultConfig suits a stock cluster.
func DefaultConfig() Config {
	return Config{Options: compiler.DefaultOptions(), RecheckInterval: time.Minute, Workers: 8}
}

// Setup adds the ServiceGraph controller to the manager.
func Setup(mgr ctrl.Manager, cfg Config) error {
	dc, err := discovery.NewDiscoveryClientForConfig(mgr.GetConfig())
	if err != nil {
		return err
	}
	r := &ServiceGraphReconciler{
		Client:          mgr.GetClient(),
		APIReader:       mgr.GetAPIReader(),
		Recorder:        mgr.GetEventRecorder(FieldOwner),
		Istio:           NewIstioDetector(dc, mgr.GetCache(), mgr.GetClient()),
		Options:         cfg.Options,
		RecheckInterval: cfg.RecheckInterval,
		Workers:         cfg.Workers,
		creator:         newCreator(mgr.GetConfig(), mgr.GetHTTPClient(), mgr.GetRESTMapper(), mgr.GetScheme()),
	}
	return r.SetupWithManager(mgr)
}
