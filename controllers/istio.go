package controllers

import (
	"sync"

	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/discovery"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
)

// istioKinds are the Istio kinds the operator generates; both must be served for Istio to count
// as installed.
var istioKinds = []string{"PeerAuthentication", "AuthorizationPolicy"}

// IstioDetector tells whether the Istio security API is served, and starts watching the generated
// Istio objects the first time it is, so CRDs installed after the operator are picked up without
// a restart.
type IstioDetector struct {
	discovery discovery.DiscoveryInterface
	cache     cache.Cache
	client    client.Client

	mu         sync.Mutex
	controller controller.Controller
	installed  bool
}

// NewIstioDetector asks discovery for the Istio API; watches go through the manager's cache.
func NewIstioDetector(dc discovery.DiscoveryInterface, c cache.Cache, cl client.Client) *IstioDetector {
	return &IstioDetector{discovery: dc, cache: c, client: cl}
}

// Installed reports whether Istio's security.istio.io/v1 PeerAuthentication and
// AuthorizationPolicy are served. Once they are, the answer is remembered and the watches on the
// generated Istio objects are started.
func (d *IstioDetector) Installed() (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.installed {
		return true, nil
	}
	resources, err := d.discovery.ServerResourcesForGroupVersion(securityv1.SchemeGroupVersion.String())
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	served := map[string]bool{}
	for _, r := range resources.APIResources {
		served[r.Kind] = true
	}
	for _, kind := range istioKinds {
		if !served[kind] {
			return false, nil
		}
	}
	if err := d.watch(); err != nil {
		return false, err
	}
	d.installed = true
	return true, nil
}

// watch makes changes to generated Istio objects (drift, deletion) enqueue their ServiceGraph.
func (d *IstioDetector) watch() error {
	for _, obj := range []client.Object{&securityv1.PeerAuthentication{}, &securityv1.AuthorizationPolicy{}} {
		owner := handler.TypedEnqueueRequestForOwner[client.Object](d.client.Scheme(), d.client.RESTMapper(),
			&v1alpha1.ServiceGraph{}, handler.OnlyControllerOwner())
		if err := d.controller.Watch(source.Kind(d.cache, obj, owner, skipCreates)); err != nil {
			return err
		}
	}
	return nil
}

// attach gives the detector the controller whose queue the Istio watches feed.
func (d *IstioDetector) attach(c controller.Controller) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.controller = c
}
