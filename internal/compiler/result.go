package compiler

import (
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/graph"
)

// Labels every generated object carries. The graph's own labels and annotations are never copied:
// Argo CD tracks objects by them and would prune the generated policies as its own.
const (
	LabelManagedBy      = "app.kubernetes.io/managed-by"
	ManagedByValue      = "servicegraph-operator"
	LabelGraph          = "policy.servicegraph.io/graph"
	LabelService        = "policy.servicegraph.io/service"
	DefaultTrustDomain  = "cluster.local"
	DefaultDNSNamespace = "kube-system"
	DefaultIstiodNS     = "istio-system"
	// AnnotationDryRun makes Istio evaluate and report an AuthorizationPolicy without enforcing it.
	AnnotationDryRun = "istio.io/dry-run"
)

// ManagedAnnotations are the annotations the compiler may set; one missing from a desired object
// must be removed from the live one.
var ManagedAnnotations = []string{AnnotationDryRun}

// PeerSelector picks the pods of a namespace by label.
type PeerSelector struct {
	Namespace string
	Labels    map[string]string
}

// Options are the cluster facts the compiler cannot read from the graph.
type Options struct {
	// Istio generates the PeerAuthentication and AuthorizationPolicies, and the egress rule to istiod.
	Istio bool
	// TrustDomain is the mesh's SPIFFE trust domain used in principals.
	TrustDomain string
	// DNS is where kube-dns runs (the allow-dns egress target).
	DNS PeerSelector
	// Istiod is where istiod runs; sidecars need TCP 15012 (xDS) and 15017 under default-deny egress.
	Istiod PeerSelector
}

// DefaultOptions are right for a stock cluster with Istio installed in istio-system.
func DefaultOptions() Options {
	return Options{
		Istio:       true,
		TrustDomain: DefaultTrustDomain,
		DNS:         PeerSelector{Namespace: DefaultDNSNamespace, Labels: map[string]string{"k8s-app": "kube-dns"}},
		Istiod:      PeerSelector{Namespace: DefaultIstiodNS, Labels: map[string]string{"app": "istiod"}},
	}
}

// Result is the desired state of one graph: every object sorted by name within its kind.
type Result struct {
	// Allow are the objects that open traffic: per-service and namespace-wide allow NetworkPolicies
	// and the ALLOW AuthorizationPolicies.
	Allow []client.Object
	// MTLS holds the namespace-wide PeerAuthentication (empty without Istio).
	MTLS []client.Object
	// Deny holds the default-deny NetworkPolicy and the allow-nothing AuthorizationPolicy.
	Deny []client.Object

	// Services and Edges count what the spec declares (edges after de-duplication).
	Services int
	Edges    int
	// MTLSMode is the effective mode (STRICT when the spec leaves it unset, PERMISSIVE in Audit).
	MTLSMode v1alpha1.MTLSMode
	// Enforcement is Enforce or Audit.
	Enforcement v1alpha1.Enforcement
	// Graph is the validated graph with its defaults applied.
	Graph *graph.Graph
}

// Phases returns the objects in the order they must be applied so that a rollout never cuts live
// traffic: allow rules first, then mutual TLS, default-deny last.
func (r *Result) Phases() [][]client.Object {
	return [][]client.Object{r.Allow, r.MTLS, r.Deny}
}

// Objects returns every object in apply order.
func (r *Result) Objects() []client.Object {
	var all []client.Object
	for _, p := range r.Phases() {
		all = append(all, p...)
	}
	return all
}
