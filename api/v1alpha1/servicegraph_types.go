package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
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
}

// Service is a workload of the graph: the pods its selector matches and the ServiceAccount they
// run as.
// +kubebuilder:validation:XValidation:rule="!has(self.selector) || !has(self.selector.matchExpressions) || size(self.selector.matchExpressions) == 0",message="selector.matchExpressions is not supported: Istio workload selectors take matchLabels only"
// +kubebuilder:validation:XValidation:rule="!has(self.selector) || (has(self.selector.matchLabels) && size(self.selector.matchLabels) > 0) || (has(self.selector.matchExpressions) && size(self.selector.matchExpressions) > 0)",message="selector.matchLabels must not be empty: an empty selector would match every pod"
type Service struct {
	// name identifies the service within the graph and in edges. A DNS label (lowercase letters,
	// digits and '-', at most 63 characters).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`

	// namespace is set for a peer that lives in another namespace. Edges name such a peer as
	// "NAMESPACE/NAME". The other namespace's own graph must allow its side of the connection:
	// this graph only writes rules into its own namespace. Defaults to the graph's namespace.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Namespace string `json:"namespace,omitempty"`

	// selector selects the service's pods by label (matchLabels only). Defaults to {app: NAME}.
	// +optional
	Selector *metav1.LabelSelector `json:"selector,omitempty"`

	// serviceAccount is the ServiceAccount the service's pods run as; its Istio identity is what the
	// AuthorizationPolicies allow. Defaults to NAME.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	ServiceAccount string `json:"serviceAccount,omitempty"`

	// remote places the service in another cluster of a multi-cluster Istio mesh, with its own
	// trust domain. Its calls arrive through this cluster's east-west gateway, so the
	// NetworkPolicy admits the gateway's pods and the AuthorizationPolicy the remote principal
	// TRUST_DOMAIN/ns/NAMESPACE/sa/SERVICEACCOUNT. Calls to it leave for cidrs. The other cluster's
	// own graph writes its side.
	// +optional
	Remote *Remote `json:"remote,omitempty"`
}

// Remote is where a service of another cluster is and who it is.
type Remote struct {
	// trustDomain of the other cluster's mesh, as in its principals ("east.example.com"). With
	// trust-domain aliases in this mesh's config, Istio also accepts the aliases' principals.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	TrustDomain string `json:"trustDomain"`

	// gateway selects the pods of this cluster's east-west gateway, which the remote service's
	// calls come through. Defaults to pods labelled istio: eastwestgateway in istio-system.
	// +optional
	Gateway *Gateway `json:"gateway,omitempty"`

	// cidrs are the addresses this cluster reaches the service at: the other cluster's east-west
	// gateway (which forwards on 15443, also allowed) or, on one flat network, its pod range.
	// Required when the service is called.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=49
	// +kubebuilder:validation:XValidation:rule="self.all(c, isCIDR(c))",message="cidrs must be IP ranges such as 10.0.0.0/8 or 2001:db8::/32"
	CIDRs []string `json:"cidrs,omitempty"`
}

// Gateway selects the pods of a gateway.
type Gateway struct {
	// namespace of the gateway's pods.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Namespace string `json:"namespace"`

	// labels of the gateway's pods.
	// +required
	// +kubebuilder:validation:MinProperties=1
	Labels map[string]string `json:"labels"`
}

// External is a party outside the graph's services, named so that edges can use it: "lb -> web:8443",
// "api -> stripe:443". It is exactly one of: cidrs (addresses, with except), namespaces (pods of
// other namespaces), hosts (names outside the cluster, optionally with the cidrs they resolve to)
// or kubernetesAPI.
// +kubebuilder:validation:XValidation:rule="[has(self.cidrs) && !has(self.hosts), has(self.namespaces), has(self.hosts), has(self.kubernetesAPI) && self.kubernetesAPI].filter(x, x).size() == 1",message="an external peer is exactly one of cidrs, namespaces, hosts (which may come with cidrs) or kubernetesAPI: true"
// +kubebuilder:validation:XValidation:rule="!has(self.except) || has(self.cidrs)",message="except needs cidrs"
// +kubebuilder:validation:XValidation:rule="!(has(self.unmeshed) && self.unmeshed) || has(self.cidrs) && !has(self.hosts) || has(self.namespaces)",message="unmeshed is for callers: cidrs or namespaces"
type External struct {
	// name identifies the peer in edges, like a service name. A DNS label.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`

	// cidrs are IP ranges ("203.0.113.0/24", "2001:db8::/48"). As a caller: NetworkPolicy ingress
	// from these ipBlocks, and (with Istio) an AuthorizationPolicy rule on source.ipBlocks, which
	// sees the address the sidecar sees: behind a gateway or a load balancer that hides client
	// addresses, list the gateway instead (see the README). As a callee: NetworkPolicy egress to
	// them. With hosts, the ranges the hosts resolve to, which narrow the NetworkPolicy rule.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=49
	// +kubebuilder:validation:XValidation:rule="self.all(c, isCIDR(c))",message="cidrs must be IP ranges such as 10.0.0.0/8 or 2001:db8::/32"
	CIDRs []string `json:"cidrs,omitempty"`

	// except are ranges within cidrs that are left out.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=49
	// +kubebuilder:validation:XValidation:rule="self.all(c, isCIDR(c))",message="except must be IP ranges such as 10.1.0.0/16"
	Except []string `json:"except,omitempty"`

	// namespaces are pods of other namespaces, by namespace name or label.
	// +optional
	Namespaces *ExternalNamespaces `json:"namespaces,omitempty"`

	// hosts are DNS names outside the cluster ("api.stripe.com", "*.example.com"), callees only.
	// NetworkPolicies cannot match names: the egress rule allows the edge's ports to cidrs when
	// given, else to every address outside the cluster's own ranges (the manager's
	// --cluster-cidrs). With Istio, a ServiceEntry (MESH_EXTERNAL) declares the hosts and a Sidecar
	// with outboundTrafficPolicy REGISTRY_ONLY makes the namespace's sidecars refuse every other
	// host outside the mesh.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=253
	// +kubebuilder:validation:items:Pattern=`^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+$`
	Hosts []string `json:"hosts,omitempty"`

	// kubernetesAPI is the cluster's API server, a callee only: the operator reads its addresses
	// and ports from the EndpointSlice of Service default/kubernetes and keeps the NetworkPolicy
	// rule in step with it. Write the edge with the port clients use (443); the rule uses the
	// server's own ports, which NetworkPolicies see after the Service's address translation.
	// +optional
	KubernetesAPI bool `json:"kubernetesAPI,omitempty"`

	// unmeshed says the callers run without an Istio sidecar, so they have no identity and speak
	// plain text. Each edge from such a caller opens its destination ports to plain text (a
	// PeerAuthentication exception on the destination's pods for those ports only) and is
	// authorized by its addresses (cidrs) or not at all (namespaces): only the NetworkPolicy
	// restricts who connects. A hole by design; status and lint say where. Required for cidrs
	// callers of a graph with Istio.
	// +optional
	Unmeshed bool `json:"unmeshed,omitempty"`
}

// ExternalNamespaces selects pods of other namespaces: by namespace name (which Istio can match by
// identity, source.namespaces) or by namespace label (which only a NetworkPolicy can match, so
// such callers must be unmeshed).
// +kubebuilder:validation:XValidation:rule="has(self.names) != has(self.selector)",message="namespaces takes names or a selector, not both"
type ExternalNamespaces struct {
	// names of the namespaces.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=63
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Names []string `json:"names,omitempty"`

	// selector selects the namespaces by label.
	// +optional
	Selector *metav1.LabelSelector `json:"selector,omitempty"`

	// podSelector narrows to the pods with these labels; all pods of the namespaces when unset.
	// +optional
	PodSelector *metav1.LabelSelector `json:"podSelector,omitempty"`
}

// Connection is an allowed connection in structured form.
type Connection struct {
	// from names the calling service, as "NAME" or "NAMESPACE/NAME".
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=127
	// +kubebuilder:validation:Pattern=`^([a-z0-9]([-a-z0-9]*[a-z0-9])?/)?[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	From string `json:"from"`

	// to names the called service, as "NAME" or "NAMESPACE/NAME".
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=127
	// +kubebuilder:validation:Pattern=`^([a-z0-9]([-a-z0-9]*[a-z0-9])?/)?[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	To string `json:"to"`

	// ports are the destination pod's ports the caller may reach.
	// +required
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	Ports []ConnectionPort `json:"ports"`

	// paths restricts HTTP requests to these paths (exact "/a", prefix "/a/*" or suffix "*.css").
	// Only for HTTP and GRPC ports: Istio never matches HTTP fields on plain TCP traffic.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=1024
	// +kubebuilder:validation:items:Pattern=`^(\*[!-~]*|/[!-)+-~]*\*?)$`
	Paths []string `json:"paths,omitempty"`

	// methods restricts HTTP requests to these methods (GET, POST, ...). Only for HTTP and GRPC ports.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:Pattern=`^[A-Z]{1,16}$`
	Methods []string `json:"methods,omitempty"`
}

// ConnectionPort is one destination port of a connection.
type ConnectionPort struct {
	// port is the destination pod's port: a number (1-65535) or a container port name. Istio
	// AuthorizationPolicies take numbers only, so for a named port the Istio rule restricts the
	// caller's identity (and path) but not the port; the NetworkPolicy still restricts the port.
	// +required
	// +kubebuilder:validation:XIntOrString
	// +kubebuilder:validation:XValidation:rule="type(self) == string || (self >= 1 && self <= 65535)",message="port must be a number from 1 to 65535 or a container port name"
	// +kubebuilder:validation:MaxLength=15
	// +kubebuilder:validation:Pattern=`^[0-9]*[a-z]([-a-z0-9]*[a-z0-9])?$`
	Port intstr.IntOrString `json:"port"`

	// protocol is what the port speaks: TCP (when unset), UDP, SCTP, HTTP or GRPC. HTTP and GRPC are
	// TCP to the NetworkPolicy and let the AuthorizationPolicy match paths and methods. Istio does
	// not intercept UDP and SCTP, so those edges get NetworkPolicy rules only.
	// +optional
	Protocol Protocol `json:"protocol,omitempty"`
}

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
