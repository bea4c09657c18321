package v1alpha1

// Condition types of a ServiceGraph. Ready summarises the others; Reconciling and Stalled follow
// the kstatus convention so kubectl wait, Argo CD and Flux read progress the same way.
const (
	ConditionReady                = "Ready"
	ConditionNetworkPoliciesReady = "NetworkPoliciesReady"
	ConditionMTLSReady            = "MTLSReady"
	ConditionAuthorizationReady   = "AuthorizationReady"
	// ConditionEgressReady reports Istio's egress control of the graph's external hosts and
	// addresses: the ServiceEntries and the Sidecar.
	ConditionEgressReady = "EgressReady"
	ConditionReconciling = "Reconciling"
	ConditionStalled     = "Stalled"
	// ConditionCoverage is False when a service's selector matches no pod or a pod of the namespace
	// belongs to no service. It does not affect Ready.
	ConditionCoverage = "Coverage"
	// ConditionBypassed is True when a NetworkPolicy, AuthorizationPolicy or PeerAuthentication of
	// the namespace that the graph did not generate lets through a connection the graph refuses (or
	// weakens mutual TLS). Ready stays a statement about the graph's own objects; this is the
	// condition security teams alert on.
	ConditionBypassed = "Bypassed"
	// ConditionWaypointReady reports the waypoint that layer-7 edges into services in ambient mode
	// need: False, with Ready False, while it is missing, not ready or not used by their Services;
	// those edges stay closed meanwhile.
	ConditionWaypointReady = "WaypointReady"
	// ConditionTrafficCovered, present only when the operator reads Prometheus (--prometheus-url),
	// says whether the graph, as Enforce mode applies it, lets through every connection Istio's
	// metrics observed into and out of the namespace's workloads over the window: in Audit mode,
	// the answer to "may I enforce?". Unknown without data. It does not affect Ready.
	ConditionTrafficCovered = "TrafficCovered"
)

// Condition reasons.
const (
	// ReasonReconciling: the operator has seen the spec and is working on it.
	ReasonReconciling = "Reconciling"
	// ReasonReconciled: every generated object is applied and matches the spec.
	ReasonReconciled = "Reconciled"
	// ReasonApplied: the objects of one kind are applied.
	ReasonApplied = "Applied"
	// ReasonInvalidSpec: the spec does not compile; the last good policies stay in force.
	ReasonInvalidSpec = "InvalidSpec"
	// ReasonConflict: another ServiceGraph is active in the namespace, or a foreign object sits
	// under a generated name; nothing of the other party's is touched.
	ReasonConflict = "Conflict"
	// ReasonIstioNotInstalled: the Istio security API is not served; only NetworkPolicies apply.
	ReasonIstioNotInstalled = "IstioNotInstalled"
	// ReasonCiliumNotServed: the graph asks for CiliumNetworkPolicies and the cluster does not
	// serve cilium.io/v2; Kubernetes NetworkPolicies enforce it meanwhile.
	ReasonCiliumNotServed = "CiliumNetworkPolicyNotServed"
	// ReasonApplyFailed: writing to the API server failed; the operator retries with backoff.
	ReasonApplyFailed = "ApplyFailed"
	// ReasonRejected: the API server refused a generated object (invalid or too large); retrying
	// cannot help, a change to the spec can.
	ReasonRejected = "Rejected"
	// ReasonAudit: the graph is in Audit mode; nothing is enforced.
	ReasonAudit = "Audit"
	// ReasonUnmeshedWorkloads: pods without a sidecar would lose inbound traffic under STRICT mTLS.
	ReasonUnmeshedWorkloads = "UnmeshedWorkloads"
	// ReasonProtocolMismatch: an edge matches HTTP paths or methods on a port a Service declares
	// as another protocol (tcp-…, appProtocol: tcp, …): Istio skips the rule and refuses the caller.
	ReasonProtocolMismatch = "ProtocolMismatch"
	// ReasonMeshNone: spec.mesh is None, so the mesh's objects are not generated.
	ReasonMeshNone = "MeshNone"
	// ReasonCovered: every service matches pods and every pod belongs to a service.
	ReasonCovered = "Covered"
	// ReasonCoverageGaps: a service matches no pod, or pods belong to no service.
	ReasonCoverageGaps = "CoverageGaps"
	// ReasonWideningPolicies: foreign policies widen the graph; the message names each and one
	// connection it opens.
	ReasonWideningPolicies = "WideningPolicies"
	// ReasonNoWideningPolicies: no foreign policy of the namespace admits what the graph refuses.
	ReasonNoWideningPolicies = "NoWideningPolicies"
	// ReasonNamedPortUnresolved: an edge into a service in ambient mode names a port no pod of the
	// service declares; ztunnel matches port numbers only, so the edge stays closed.
	ReasonNamedPortUnresolved = "NamedPortUnresolved"
	// ReasonNoWaypointNeeded: no service in ambient mode has an edge with paths or methods.
	ReasonNoWaypointNeeded = "NoWaypointNeeded"
	// ReasonWaypointReady: every service in ambient mode with paths or methods uses a ready waypoint.
	ReasonWaypointReady = "WaypointReady"
	// ReasonWaypointMissing: a waypoint is named nowhere, does not exist, is not ready, or a
	// Service does not use it: the layer-7 edges into those services stay closed.
	ReasonWaypointMissing = "WaypointMissing"
	// ReasonTrafficCovered: the graph under Enforce lets through every observed connection.
	ReasonTrafficCovered = "TrafficCovered"
	// ReasonObservedTrafficRefused: the graph under Enforce would refuse observed connections; the
	// message names up to 10 of them with their counts.
	ReasonObservedTrafficRefused = "ObservedTrafficRefused"
	// ReasonNoTrafficData: Prometheus holds no connection of the namespace's workloads in the
	// window; nothing to judge.
	ReasonNoTrafficData = "NoTrafficData"
	// ReasonPrometheusUnreachable: Prometheus failed two queries in a row (an outage of at least
	// one interval); the message says since when.
	ReasonPrometheusUnreachable = "PrometheusUnreachable"
)
