package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ObjectReference names a generated object.
type ObjectReference struct {
	// group of the object's API ("networking.k8s.io", "security.istio.io"; empty for the core group).
	// Two kinds of the same name in different groups (Kubernetes' and a CNI's NetworkPolicy) stay apart.
	// +optional
	Group string `json:"group"`
	// kind of the object: NetworkPolicy, PeerAuthentication, AuthorizationPolicy, ...
	// +required
	Kind string `json:"kind"`
	// name of the object, in the graph's namespace.
	// +required
	Name string `json:"name"`
}

// KindCount counts the generated objects of one kind.
type KindCount struct {
	// group of the kind's API (empty for the core group).
	// +optional
	Group string `json:"group"`
	// kind of the objects.
	// +required
	Kind string `json:"kind"`
	// count of objects of the kind the graph generates.
	// +optional
	Count int32 `json:"count"`
}

// PlannedObject is an object that Enforce mode applies, and whether it exists now.
type PlannedObject struct {
	// group of the object's API (empty for the core group).
	// +optional
	Group string `json:"group"`
	// kind of the object.
	// +required
	Kind string `json:"kind"`
	// name of the object, in the graph's namespace.
	// +required
	Name string `json:"name"`
	// exists tells whether the object exists now (in Audit mode, in its audit form for Istio kinds).
	// +optional
	Exists bool `json:"exists"`
}

// ServiceCoverage counts the pods a service's selector matches.
type ServiceCoverage struct {
	// name of the service.
	// +required
	Name string `json:"name"`
	// pods its selector matches in the graph's namespace.
	// +optional
	Pods int32 `json:"pods"`
	// dataplane carries its pods' traffic: sidecar (an Envoy in each pod), ambient (the node's
	// ztunnel, and a waypoint for paths and methods) or none (outside the mesh); mixed when its pods
	// differ. Without pods, what the namespace gives new ones.
	// +optional
	Dataplane string `json:"dataplane,omitempty"`
}

// Coverage relates the namespace's pods to the graph's services.
type Coverage struct {
	// services lists, per local service, how many pods its selector matches. A service matching no
	// pod protects nothing: often a typo in the selector.
	// +optional
	// +listType=atomic
	Services []ServiceCoverage `json:"services,omitempty"`
	// coveredPods counts the namespace's pods that belong to a service.
	// +optional
	CoveredPods int32 `json:"coveredPods"`
	// uncoveredPods counts the namespace's pods that belong to no service: default-deny cuts them off.
	// +optional
	UncoveredPods int32 `json:"uncoveredPods"`
	// uncovered names up to 10 of those pods.
	// +optional
	// +listType=atomic
	Uncovered []string `json:"uncovered,omitempty"`
}

// ServiceGraphStatus is what the operator observed and did.
type ServiceGraphStatus struct {
	// observedGeneration is the spec generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready (the summary), NetworkPoliciesReady, MTLSReady, AuthorizationReady, and
	// Reconciling / Stalled while work is in progress or cannot progress without a spec change.
	// Coverage, Bypassed and, when the operator reads Prometheus, TrafficCovered (whether the graph
	// as Enforce mode applies it lets through every connection observed over the traffic window;
	// Unknown without data) inform without affecting Ready.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`

	// services is the number of services in the last applied spec.
	// +optional
	Services int32 `json:"services,omitempty"`

	// edges is the number of distinct edges in the last applied spec.
	// +optional
	Edges int32 `json:"edges,omitempty"`

	// mesh is the mesh that enforces the graph: Istio or None.
	// +optional
	Mesh Mesh `json:"mesh,omitempty"`

	// mtls is the mutual-TLS mode in force (empty with mesh None).
	// +optional
	MTLS MTLSMode `json:"mtls,omitempty"`

	// dataplane is what carries the local services' traffic: sidecar, ambient, mixed (both, per
	// service in coverage.services) or none (empty with mesh None).
	// +optional
	Dataplane string `json:"dataplane,omitempty"`

	// counts lists, per generated kind, how many objects the graph generates (sorted by group and
	// kind; kinds whose API is not served are left out).
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	Counts []KindCount `json:"counts,omitempty"`

	// generatedObjects lists the objects the operator applied for the last good spec.
	// +optional
	// +listType=atomic
	GeneratedObjects []ObjectReference `json:"generatedObjects,omitempty"`

	// enforcement is the mode in force: Enforce or Audit.
	// +optional
	Enforcement Enforcement `json:"enforcement,omitempty"`

	// plan lists, in Audit mode, every object Enforce would apply and whether it exists now.
	// +optional
	// +listType=atomic
	Plan []PlannedObject `json:"plan,omitempty"`

	// coverage relates the namespace's pods to the graph's services.
	// +optional
	Coverage *Coverage `json:"coverage,omitempty"`

	// callers lists, for every service the last applied spec lets something call (sorted by
	// service), who may call it and on what, so that "who can reach database?" needs no policy
	// reading. It shows the graph's edges only: policies written by hand can let more in (check one
	// connection with `servicegraph check`). At most 100 services are listed; callersOmitted counts
	// the others.
	// +optional
	// +listType=map
	// +listMapKey=service
	// +kubebuilder:validation:MaxItems=100
	Callers []ServiceCallers `json:"callers,omitempty"`

	// callersOmitted is the number of called services left out of callers.
	// +optional
	CallersOmitted int32 `json:"callersOmitted,omitempty"`
}

// ServiceCallers says who may call one service.
type ServiceCallers struct {
	// service names the called service, as the graph does.
	Service string `json:"service"`

	// from lists the callers and what each may reach, one edge each, in the edge grammar after the
	// colon: "web on 8080", "api on 5432/data", "web on 8080(HTTP) [GET /orders*]", and a caller
	// of another namespace as "NAMESPACE/NAME". At most 20 are listed; the last entry then says
	// how many more there are.
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=21
	From []string `json:"from"`
}
