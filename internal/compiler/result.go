package compiler

import (
	"slices"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/graph"
	"github.com/servicegraph/servicegraph-operator/internal/object"
	"github.com/servicegraph/servicegraph-operator/internal/semantics"
)

// Labels every generated object carries. The graph's own labels and annotations are never copied:
// Argo CD tracks objects by them and would prune the generated policies as its own.
const (
	LabelManagedBy      = "app.kubernetes.io/managed-by"
	ManagedByValue      = "servicegraph-operator"
	LabelGraph          = "policy.servicegraph.io/graph"
	LabelService        = "policy.servicegraph.io/service"
	DefaultTrustDomain  = semantics.DefaultTrustDomain
	DefaultDNSNamespace = "kube-system"
	DefaultIstiodNS     = semantics.DefaultRootNamespace
	// AnnotationDryRun makes Istio evaluate and report an AuthorizationPolicy without enforcing it.
	AnnotationDryRun = semantics.AnnotationDryRun
)

// PeerSelector picks the pods of a namespace by label.
type PeerSelector struct {
	Namespace string
	Labels    map[string]string
}

// Options are the cluster settings the compiler cannot read from the graph.
type Options struct {
	// Outputs are the kinds to generate; nil means Builtin().
	Outputs Registry
	// TrustDomain is the mesh's SPIFFE trust domain used in principals.
	TrustDomain string
	// DNS is where kube-dns runs (the allow-dns egress target).
	DNS PeerSelector
	// Istiod is where istiod runs; sidecars need TCP 15012 (xDS) and 15017 under default-deny egress.
	Istiod PeerSelector
	// ClusterCIDRs are the cluster's own pod and service ranges: egress to external hosts (which a
	// NetworkPolicy cannot match by name) allows every address but these.
	ClusterCIDRs []string
}

// DefaultOptions are right for a stock cluster with Istio installed in istio-system.
func DefaultOptions() Options {
	return Options{
		TrustDomain: DefaultTrustDomain,
		DNS:         PeerSelector{Namespace: DefaultDNSNamespace, Labels: map[string]string{"k8s-app": "kube-dns"}},
		Istiod:      PeerSelector{Namespace: DefaultIstiodNS, Labels: map[string]string{"app": "istiod"}},
	}
}

func (o *Options) outputs() Registry {
	if o.Outputs == nil {
		return Builtin()
	}
	return o.Outputs
}

// Result is the desired state of one graph and the plan to reach it.
type Result struct {
	// Allow are the objects that open traffic: per-service and namespace-wide allow NetworkPolicies
	// and the ALLOW AuthorizationPolicies.
	Allow []Object
	// MTLS holds the namespace-wide PeerAuthentication (empty without Istio).
	MTLS []Object
	// Deny holds the default-deny NetworkPolicy and the allow-nothing AuthorizationPolicy.
	Deny []Object

	// Services and Edges count what the spec declares (edges after de-duplication).
	Services int
	Edges    int
	// MTLSMode is the mode applied: the spec's (STRICT when unset), PERMISSIVE in Audit, or the mode
	// in force while STRICT is held back.
	MTLSMode v1alpha1.MTLSMode
	// MTLSHeldBack is set when STRICT is wanted but the preflight keeps MTLSMode in force.
	MTLSHeldBack bool
	// Dataplanes are the local services' data planes, by name (none without Istio).
	Dataplanes map[string]semantics.Dataplane
	// WaypointProblems are the services in ambient mode whose layer-7 edges stay closed;
	// Waypoints the waypoints the graph's services go through.
	WaypointProblems []WaypointProblem
	Waypoints        []string
	// Enroll are the Services the operator labels istio.io/use-waypoint=WaypointName, when the
	// graph creates its waypoint.
	Enroll       []string
	WaypointName string
	// UnresolvedPorts are the edges into ambient services closed because their named port is
	// declared by no pod (ztunnel matches numbers only).
	UnresolvedPorts []string
	// Unmeshed are the pods STRICT mutual TLS cuts off (or would, while held back).
	Unmeshed []string
	// Plaintext lists "service:port" where unmeshed external callers are let in with plain text.
	Plaintext []string
	// ProtocolMismatches are the edges whose HTTP fields a Service port's protocol makes Istio
	// skip (with Istio on).
	ProtocolMismatches []ProtocolMismatch
	// Enforcement is Enforce or Audit.
	Enforcement v1alpha1.Enforcement
	// Enforce is, in Audit mode, what Enforce mode would apply (status.plan); nil otherwise.
	Enforce *Result
	// Graph is the validated graph with its defaults applied.
	Graph *graph.Graph
	// Outputs are the kinds compiled for, Off the layers whose APIs are not served, and Disabled
	// those the graph turns off (mesh None).
	Outputs  Registry
	Off      []*Layer
	Disabled []*Layer
}

// Phases returns the objects in the order they must be applied so that a rollout never cuts live
// traffic: allow rules first, then mutual TLS, default-deny last.
func (r *Result) Phases() [][]Object {
	return [][]Object{r.Allow, r.MTLS, r.Deny}
}

// Objects returns every object in apply order.
func (r *Result) Objects() []Object {
	var all []Object
	for _, p := range r.Phases() {
		all = append(all, p...)
	}
	return all
}

// Served tells whether the API of the output's layer is served: its objects are listed (and
// pruned) even when the graph disables the layer.
func (r *Result) Served(o *Output) bool { return !slices.Contains(r.Off, o.Layer) }

// Generated tells whether the output is generated: served and not disabled.
func (r *Result) Generated(o *Output) bool {
	return r.Served(o) && !slices.Contains(r.Disabled, o.Layer)
}

// Counts counts the objects of every generated output that has some, in registry order.
func (r *Result) Counts() []v1alpha1.KindCount {
	var counts []v1alpha1.KindCount
	for _, o := range r.Outputs {
		if n := r.count(o); n > 0 && r.Generated(o) {
			counts = append(counts, v1alpha1.KindCount{Group: o.GVK.Group, Kind: o.GVK.Kind, Count: int32(n)})
		}
	}
	return counts
}

// count is the number of objects of an output.
func (r *Result) count(o *Output) int {
	n := 0
	for _, obj := range r.Objects() {
		if obj.GetObjectKind().GroupVersionKind().GroupKind() == o.GroupKind() {
			n++
		}
	}
	return n
}

// Missing lists the layers the graph wants whose APIs are not served.
func (r *Result) Missing() []*Layer {
	var out []*Layer
	for _, l := range r.Off {
		if !slices.Contains(r.Disabled, l) {
			out = append(out, l)
		}
	}
	return out
}

// Summary is what the condition of an output says.
func (r *Result) Summary(o *Output) Summary {
	s := Summary{Count: r.count(o), Planned: r.count(o), Audit: r.Enforcement == v1alpha1.EnforcementAudit, MTLS: r.MTLSMode, Plaintext: r.Plaintext}
	if r.Enforce != nil {
		s.Planned = r.Enforce.count(o)
	}
	return s
}

// Waiting returns the first layer that is off although the graph needs it, nil when none is.
func (r *Result) Waiting() *Layer {
	for _, l := range r.Off {
		if l.Needed != nil && l.Needed(r) && !slices.Contains(r.Disabled, l) {
			return l
		}
	}
	return nil
}

// Step is one stage of the plan: its objects are applied together, or its stale objects pruned,
// and the next stage starts only when it is done.
type Step struct {
	// Apply are the objects to create or update, concurrently.
	Apply []Object
	// Prune deletes the graph's live objects that the Result does not hold; when Only is set, only
	// those among them.
	Prune bool
	Only  map[v1alpha1.ObjectReference]bool
}

// Steps is the plan. A rollout applies allow rules, then mutual TLS, then default-deny, and prunes
// last. Audit mode loosens every policy, so it runs the other way: the denies Enforce mode would
// hold go first, then the other stale objects, then the audit forms deny, mTLS, allow.
func (r *Result) Steps() []Step {
	if r.Enforce == nil {
		return []Step{{Apply: r.Allow}, {Apply: r.MTLS}, {Apply: r.Deny}, {Prune: true}}
	}
	denies := map[v1alpha1.ObjectReference]bool{}
	for _, obj := range r.Enforce.Deny {
		denies[object.Ref(obj)] = true
	}
	return []Step{{Prune: true, Only: denies}, {Prune: true}, {Apply: r.Deny}, {Apply: r.MTLS}, {Apply: r.Allow}}
}
