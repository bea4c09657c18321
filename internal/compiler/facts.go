package compiler

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/semantics"
)

// Facts are what the reconciler observed in the cluster, as opposed to what the graph declares.
// The zero value is a cluster that serves every output's API, with every pod in the mesh and
// nothing applied yet: what the CLI assumes.
type Facts struct {
	// Missing lists the output kinds whose API the cluster does not serve; their layer is off.
	Missing []schema.GroupKind
	// Unmeshed names the namespace's pods that have no Istio sidecar and are not in ambient mode.
	// Only consulted when WantsStrict: gathering it costs reads.
	Unmeshed []string
	// MTLSInForce is the mode of the graph's own live PeerAuthentication, "" when it has none.
	MTLSInForce v1alpha1.MTLSMode
	// Services are the Kubernetes Services of the graph's namespace: their ports tell Istio which
	// protocol each port speaks (see ProtocolMismatches).
	Services []KubeService
	// APIServer are the API server's addresses, for external peers with kubernetesAPI.
	APIServer []APIServerEndpoint
	// NamespaceLabels are the labels of the graph's namespace: its data plane
	// (istio.io/dataplane-mode) and waypoint (istio.io/use-waypoint).
	NamespaceLabels map[string]string
	// Dataplanes are the data planes of the local services' pods, by service: ambient only when
	// every pod of the service is (semantics.PodDataplane). A service not listed has no pods yet and
	// takes its namespace's.
	Dataplanes map[string]semantics.Dataplane
	// ProbePorts are the container ports the kubelet probes the pods of each ambient service on:
	// istio-cni sends those probes from a link-local address a NetworkPolicy must admit.
	ProbePorts map[string][]intstr.IntOrString
	// Waypoints are the waypoints (Gateways of class istio-waypoint) of the graph's namespace.
	Waypoints map[string]WaypointFacts
	// NamedPorts are the container ports of each ambient service's pods by name: ztunnel matches
	// port numbers only, so an edge's named port is resolved to them.
	NamedPorts map[string]map[string]int32
}

// WantsStrict tells whether the spec asks for STRICT mutual TLS to be enforced: the only case in
// which unmeshed pods matter, so the reconciler gathers Facts.Unmeshed only then.
func WantsStrict(spec *v1alpha1.ServiceGraphSpec) bool {
	return spec.Enforcement != v1alpha1.EnforcementAudit && spec.MTLS != v1alpha1.MTLSPermissive
}

// mtlsDecision is the mutual-TLS mode a compilation applies and why.
type mtlsDecision struct {
	mode v1alpha1.MTLSMode
	// heldBack is set when STRICT is wanted but the preflight keeps the mode in force.
	heldBack bool
	// unmeshed are the pods STRICT would cut off, when that matters.
	unmeshed []string
}

// decideMTLS picks the mode to apply. Audit applies PERMISSIVE. STRICT with pods outside the mesh
// is applied anyway under preflight Warn; under Block the mode in force stays (PERMISSIVE when
// the graph has applied none), so a rollout never cuts off a pod without a sidecar.
func decideMTLS(spec *v1alpha1.ServiceGraphSpec, declared v1alpha1.MTLSMode, meshOn bool, facts Facts) mtlsDecision {
	if spec.Enforcement == v1alpha1.EnforcementAudit {
		return mtlsDecision{mode: v1alpha1.MTLSPermissive}
	}
	d := mtlsDecision{mode: declared}
	if !meshOn || !WantsStrict(spec) || len(facts.Unmeshed) == 0 {
		return d
	}
	d.unmeshed = facts.Unmeshed
	if spec.MTLSPreflight == v1alpha1.MTLSPreflightWarn {
		return d
	}
	d.heldBack = true
	d.mode = v1alpha1.MTLSPermissive
	if facts.MTLSInForce != "" {
		d.mode = facts.MTLSInForce
	}
	return d
}
