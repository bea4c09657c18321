package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

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
