package semantics

// Dataplane is what carries a pod's traffic in the mesh.
type Dataplane string

const (
	// DataplaneSidecar is an Envoy sidecar in the pod: it enforces every AuthorizationPolicy field.
	DataplaneSidecar Dataplane = "sidecar"
	// DataplaneAmbient is Istio's ambient mode: the node's ztunnel, in the pod's network namespace,
	// enforces layer-4 policy and tunnels traffic as HBONE on port 15008; layer-7 policy needs a
	// waypoint.
	DataplaneAmbient Dataplane = "ambient"
	// DataplaneNone is a pod outside the mesh.
	DataplaneNone Dataplane = "none"
)

// Istio's labels and annotations that choose a pod's data plane and waypoint.
const (
	// LabelDataplaneMode on a namespace or pod enrolls it in ambient mode ("ambient"), or opts a
	// pod out ("none").
	LabelDataplaneMode = "istio.io/dataplane-mode"
	// LabelUseWaypoint on a namespace, Service or pod names the waypoint its traffic goes through
	// ("none" opts out); LabelUseWaypointNamespace names the waypoint's namespace when not its own.
	LabelUseWaypoint          = "istio.io/use-waypoint"
	LabelUseWaypointNamespace = "istio.io/use-waypoint-namespace"
	// LabelWaypointFor on a waypoint Gateway says what traffic it takes: service (the default),
	// workload, all or none.
	LabelWaypointFor = "istio.io/waypoint-for"
	// LabelGatewayName is set by Istio on a waypoint's pods to its Gateway's name.
	LabelGatewayName = "gateway.networking.k8s.io/gateway-name"
	// AnnotationWaypointServiceAccount overrides a waypoint's ServiceAccount (its Gateway's name).
	AnnotationWaypointServiceAccount = "gateway.istio.io/service-account"
	// AnnotationSidecarStatus is set by Istio's injector on every pod it gave a sidecar.
	AnnotationSidecarStatus = "sidecar.istio.io/status"
	// AnnotationAmbientRedirection is set by istio-cni to "enabled" once ztunnel captures the pod.
	AnnotationAmbientRedirection = "ambient.istio.io/redirection"
	// WaypointClass is the GatewayClass of Istio's waypoints.
	WaypointClass = "istio-waypoint"
)

// Ports ambient mode uses: HBONE, the mutual-TLS tunnel ztunnels and waypoints speak (the packet
// keeps the pods' addresses, so a NetworkPolicy sees port 15008, not the application's port), and
// the address istio-cni gives the kubelet's probes of an ambient pod (overridable in istio-cni:
// HOST_PROBE_SNAT_IP, HOST_PROBE_SNAT_IPV6).
const (
	HBONEPort         = 15008
	ProbeSNATIPv4     = "169.254.7.127"
	ProbeSNATIPv6     = "fd16:9254:7127:1337:ffff:ffff:ffff:ffff"
	ProbeSNATIPv4CIDR = ProbeSNATIPv4 + "/32"
	ProbeSNATIPv6CIDR = ProbeSNATIPv6 + "/128"
)

// PodDataplane is the data plane of a pod, as Istio decides it: a sidecar when the injector gave it
// one (its annotation, or an istio-proxy container); otherwise ambient when the pod or its namespace
// is labelled istio.io/dataplane-mode=ambient (istio-cni's redirection annotation confirms the
// capture) and the pod does not opt out with istio.io/dataplane-mode=none; otherwise none.
func PodDataplane(namespaceLabels, podLabels, podAnnotations map[string]string, sidecarContainer bool) Dataplane {
	switch {
	case podAnnotations[AnnotationSidecarStatus] != "" || sidecarContainer:
		return DataplaneSidecar
	case podLabels[LabelDataplaneMode] == "none":
		return DataplaneNone
	case podAnnotations[AnnotationAmbientRedirection] == "enabled",
		podLabels[LabelDataplaneMode] == string(DataplaneAmbient),
		namespaceLabels[LabelDataplaneMode] == string(DataplaneAmbient):
		return DataplaneAmbient
	}
	return DataplaneNone
}

// NamespaceDataplane is the data plane a namespace gives the pods it will get: ambient when
// labelled so, a sidecar when injection is on, none otherwise.
func NamespaceDataplane(namespaceLabels map[string]string) Dataplane {
	switch {
	case namespaceLabels[LabelDataplaneMode] == string(DataplaneAmbient):
		return DataplaneAmbient
	case namespaceLabels["istio-injection"] == "enabled" || namespaceLabels["istio.io/rev"] != "":
		return DataplaneSidecar
	}
	return DataplaneNone
}

// Waypoint names the waypoint traffic addressed to a Service goes through, as Istio picks it
// (serviceregistry/ambient waypoints.go): the Service's istio.io/use-waypoint label, else its
// namespace's; "none" opts out. The namespace is the label istio.io/use-waypoint-namespace's, else
// the Service's own. name is "" when the Service uses none.
func Waypoint(serviceNamespace string, serviceLabels, namespaceLabels map[string]string) (name, namespace string) {
	labels := serviceLabels
	if _, ok := serviceLabels[LabelUseWaypoint]; !ok {
		labels = namespaceLabels
	}
	name = labels[LabelUseWaypoint]
	if name == "" || name == "none" {
		return "", ""
	}
	namespace = labels[LabelUseWaypointNamespace]
	if namespace == "" {
		namespace = serviceNamespace
	}
	return name, namespace
}
