package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// MTLSMode is the Istio mutual-TLS mode applied to the whole namespace.
// +kubebuilder:validation:Enum=STRICT;PERMISSIVE
type MTLSMode string

const (
	// MTLSStrict accepts only mutual-TLS traffic: every caller needs a sidecar and an identity.
	MTLSStrict MTLSMode = "STRICT"
	// MTLSPermissive accepts plain text and mutual TLS; meant for migrations only.
	MTLSPermissive MTLSMode = "PERMISSIVE"
)

// Mesh is the service mesh that enforces identities and HTTP-level rules for the graph.
// +kubebuilder:validation:Enum=Istio;None
type Mesh string

const (
	// MeshIstio generates NetworkPolicies, a PeerAuthentication and AuthorizationPolicies.
	MeshIstio Mesh = "Istio"
	// MeshNone generates NetworkPolicies only: for clusters without a mesh.
	MeshNone Mesh = "None"
)

// NetworkPolicyAPI is the API the graph's layer-3/4 policies are written in.
// +kubebuilder:validation:Enum=Kubernetes;Cilium
type NetworkPolicyAPI string

const (
	// NetworkPolicyKubernetes generates networking.k8s.io/v1 NetworkPolicies, which every
	// NetworkPolicy-capable CNI enforces.
	NetworkPolicyKubernetes NetworkPolicyAPI = "Kubernetes"
	// NetworkPolicyCilium generates cilium.io/v2 CiliumNetworkPolicies, for clusters whose CNI is
	// Cilium: external hosts by name (toFQDNs) and, without a mesh, paths and methods (HTTP rules).
	NetworkPolicyCilium NetworkPolicyAPI = "Cilium"
)

// Enforcement says whether the generated policies are enforced or only audited.
// +kubebuilder:validation:Enum=Enforce;Audit
type Enforcement string

const (
	// EnforcementEnforce applies every policy.
	EnforcementEnforce Enforcement = "Enforce"
	// EnforcementAudit applies the AuthorizationPolicies in Istio's dry-run mode (evaluated and
	// logged, not enforced), mutual TLS as PERMISSIVE, and no NetworkPolicy.
	EnforcementAudit Enforcement = "Audit"
)

// MTLSPreflight says what to do when STRICT mutual TLS would cut off pods without a sidecar.
// +kubebuilder:validation:Enum=Block;Warn
type MTLSPreflight string

const (
	// MTLSPreflightBlock keeps the current mode (PERMISSIVE stays PERMISSIVE) until every pod of
	// the namespace is in the mesh.
	MTLSPreflightBlock MTLSPreflight = "Block"
	// MTLSPreflightWarn applies STRICT anyway and keeps warning.
	MTLSPreflightWarn MTLSPreflight = "Warn"
)

// Protocol is the protocol an edge's port speaks.
// +kubebuilder:validation:Enum=TCP;UDP;SCTP;HTTP;GRPC
type Protocol string

const (
	ProtocolTCP  Protocol = "TCP"
	ProtocolUDP  Protocol = "UDP"
	ProtocolSCTP Protocol = "SCTP"
	// ProtocolHTTP is TCP at layer 4; Istio may additionally match HTTP paths and methods on it.
	ProtocolHTTP Protocol = "HTTP"
	// ProtocolGRPC is HTTP/2 at layer 7; Istio may match its paths (/package.Service/Method).
	ProtocolGRPC Protocol = "GRPC"
)

// ServiceGraphSpec declares the services of a namespace and who may talk to whom.
// Everything not declared is denied.
// +kubebuilder:validation:XValidation:rule="(has(self.edges) && size(self.edges) > 0) || (has(self.connections) && size(self.connections) > 0)",message="a ServiceGraph needs at least one edge in spec.edges or spec.connections"
type ServiceGraphSpec struct {
	// services are the workloads the graph talks about, keyed by name. A service is a set of pods
	// (its selector) running under one ServiceAccount (its Istio identity). Pods of the namespace that
	// belong to no service get no allow rule: default-deny cuts them off.
	// +required
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=2048
	Services []Service `json:"services"`

	// external are the parties outside the graph's services that edges name like services:
	// addresses (a load balancer, a managed database), pods of other namespaces (an ingress
	// controller, Prometheus), hosts outside the cluster (a payment provider's API) and the
	// Kubernetes API server. Their names share spec.services' namespace of names.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=256
	External []External `json:"external,omitempty"`

	// edges are the allowed connections in compact form, one string each:
	// "[NAMESPACE/]FROM->[NAMESPACE/]TO:PORT[,PORT...][/PATH]" ("→" works as well as "->", and
	// spaces may stand around the arrow). FROM and TO name services of spec.services, with their
	// namespace when they are peers elsewhere (optional: the declaration says it). PORT is the destination pod's
	// port, a number (1-65535) or a container port name. PATH, when given, is an HTTP path that the
	// Istio AuthorizationPolicy enforces (exact, or a prefix ending in "*"); it implies the port speaks
	// HTTP. Examples: "web->api:8080", "api -> database:5432/data", "api→payments/gateway:443",
	// "payments/gateway -> api:8081".
	// Use spec.connections for what the compact form cannot say. The list is one unit: a
	// server-side apply replaces it whole.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16384
	// +kubebuilder:validation:items:MaxLength=512
	// +kubebuilder:validation:items:Pattern=`^([a-z0-9]([-a-z0-9]*[a-z0-9])?/)?[a-z0-9]([-a-z0-9]*[a-z0-9])? *(->|→) *([a-z0-9]([-a-z0-9]*[a-z0-9])?/)?[a-z0-9]([-a-z0-9]*[a-z0-9])?:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}|([0-9][-0-9]*)?[a-z]([-a-z0-9]*[a-z0-9])?)(,(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}|([0-9][-0-9]*)?[a-z]([-a-z0-9]*[a-z0-9])?))*(/[!-)+-~]*\*?)?$`
	Edges []string `json:"edges,omitempty"`

	// connections are allowed connections in structured form, for what the compact form of
	// spec.edges cannot say: several paths, HTTP methods, or a protocol other than TCP. A connection
	// and an edge that say the same thing compile to the same rules.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=4096
	Connections []Connection `json:"connections,omitempty"`

	// mesh is the service mesh that enforces identities, mutual TLS and paths: Istio (the default
	// when unset) or None. None generates NetworkPolicies only (layer 3/4: who may reach which
	// port), no PeerAuthentication, no AuthorizationPolicy and no egress rule to istiod, and is Ready
	// in a cluster without Istio. Paths, methods and mtls then have no effect.
	// +optional
	Mesh Mesh `json:"mesh,omitempty"`

	// networkPolicy is the API of the layer-3/4 policies: Kubernetes (the default when unset:
	// networking.k8s.io/v1 NetworkPolicies) or Cilium (cilium.io/v2 CiliumNetworkPolicies, for
	// clusters whose CNI is Cilium). Cilium's policies also name external hosts (toFQDNs, with a
	// rule that lets Cilium's DNS proxy see the lookups) and the API server (the kube-apiserver
	// entity), and with mesh None they carry the edges' paths and methods as HTTP rules enforced by
	// Cilium's proxy; with Istio, Istio enforces those. Switching applies the new policies before
	// the old ones are deleted. While the cluster does not serve CiliumNetworkPolicy the graph keeps
	// (or gets) Kubernetes NetworkPolicies and is not Ready.
	// +optional
	NetworkPolicy NetworkPolicyAPI `json:"networkPolicy,omitempty"`

	// mtls is the Istio mutual-TLS mode of the namespace's PeerAuthentication: STRICT (the default
	// when unset) or PERMISSIVE (plain text accepted too; for migrations).
	// +optional
	MTLS MTLSMode `json:"mtls,omitempty"`

	// enforcement is Enforce (the default when unset) or Audit. Audit is for rolling out: the
	// AuthorizationPolicies are applied in Istio's dry-run mode (evaluated and reported, not
	// enforced), the PeerAuthentication is PERMISSIVE whatever spec.mtls says, and no NetworkPolicy is
	// applied (any NetworkPolicy selecting a pod isolates it, so there is no audit NetworkPolicy).
	// status.plan lists what Enforce would apply. Switching to Enforce applies the allow rules first,
	// then STRICT mutual TLS, then default-deny; switching back to Audit removes the denies first.
	// +optional
	Enforcement Enforcement `json:"enforcement,omitempty"`

	// mtlsPreflight decides what happens when STRICT mutual TLS is asked for while pods of the
	// namespace have no Istio sidecar (and are not in ambient mode): under STRICT they would lose all
	// inbound traffic. Block (the default) keeps the current mode until they are meshed; Warn applies
	// STRICT anyway. Either way MTLSReady=False with reason UnmeshedWorkloads names them.
	// +optional
	MTLSPreflight MTLSPreflight `json:"mtlsPreflight,omitempty"`

	// allowDNS adds a NetworkPolicy that lets every pod of the namespace reach kube-dns on UDP and
	// TCP port 53. Default-deny egress would otherwise break name resolution. Defaults to true.
	// Clusters running NodeLocal DNSCache need an extra egress rule to its link-local address
	// (169.254.20.10 by default), written by hand.
	// +optional
	AllowDNS *bool `json:"allowDNS,omitempty"`

	// waypoint is the Istio waypoint for the services whose pods run in ambient mode
	// (istio.io/dataplane-mode=ambient on their namespace or pods). There the node's ztunnel enforces
	// identities and ports; paths and methods need a waypoint. The operator then generates, for a
	// service with such edges, an AuthorizationPolicy attached to the waypoint (targetRefs to the
	// service's Kubernetes Service) with every edge into it, and lets ztunnel admit the waypoint's
	// identity instead of the layer-7 callers. Services with a sidecar are unaffected.
	// +optional
	Waypoint *Waypoint `json:"waypoint,omitempty"`
}

// ServiceGraph declares which services of a namespace may talk to which, and on what ports and
// paths. The operator turns it into default-deny NetworkPolicies with exactly the allow rules the
// edges need, a PeerAuthentication for mutual TLS, and ServiceAccount-scoped Istio
// AuthorizationPolicies, and keeps them in sync. One ServiceGraph per namespace is active.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=sg;sgs,categories=servicegraph
// +kubebuilder:validation:XValidation:rule="size(self.metadata.name) <= 63",message="metadata.name must be at most 63 characters: it is used as a label value"
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Services",type=integer,JSONPath=`.status.services`
// +kubebuilder:printcolumn:name="Edges",type=integer,JSONPath=`.status.edges`
// +kubebuilder:printcolumn:name="Mesh",type=string,JSONPath=`.status.mesh`
// +kubebuilder:printcolumn:name="mTLS",type=string,JSONPath=`.status.mtls`
// +kubebuilder:printcolumn:name="Dataplane",type=string,JSONPath=`.status.dataplane`
// +kubebuilder:printcolumn:name="Mode",type=string,JSONPath=`.status.enforcement`,priority=1
// +kubebuilder:printcolumn:name="Covered",type=integer,JSONPath=`.status.coverage.coveredPods`,priority=1
// +kubebuilder:printcolumn:name="Uncovered",type=integer,JSONPath=`.status.coverage.uncoveredPods`,priority=1
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Message",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ServiceGraph struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec declares the services and edges.
	// +required
	Spec ServiceGraphSpec `json:"spec"`

	// status reports what the operator did.
	// +optional
	Status ServiceGraphStatus `json:"status,omitzero"`
}

// ServiceGraphList is a list of ServiceGraphs.
// +kubebuilder:object:root=true
type ServiceGraphList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ServiceGraph `json:"items"`
}
