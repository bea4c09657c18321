package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

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
