// Package cilium holds the part of Cilium's cilium.io/v2 CiliumNetworkPolicy API the operator
// generates and reads, field for field as Cilium's own Go types encode it (pkg/policy/api), and
// the labels Cilium gives every endpoint. The operator's module does not take Cilium's (a large
// dependency tree for a dozen structs); test/cilium decodes every generated object with Cilium's
// own types, unknown fields refused, and runs Cilium's validation and policy engine on them.
// +kubebuilder:object:generate=true
// +groupName=cilium.io
package cilium

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupVersion is cilium.io/v2.
var GroupVersion = schema.GroupVersion{Group: "cilium.io", Version: "v2"}

// AddToScheme registers CiliumNetworkPolicy and its list under cilium.io/v2.
func AddToScheme(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &CiliumNetworkPolicy{}, &CiliumNetworkPolicyList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}

// Labels Cilium gives every endpoint (pod), besides the pod's own labels: the selectors of a
// CiliumNetworkPolicy match these. The "k8s:" source prefix ties a key to Kubernetes.
const (
	// LabelNamespace is the pod's namespace. A namespaced policy's selectors that name no
	// namespace select pods of its own namespace only.
	LabelNamespace = "k8s:io.kubernetes.pod.namespace"
	// LabelServiceAccount is the pod's ServiceAccount.
	LabelServiceAccount = "k8s:io.cilium.k8s.policy.serviceaccount"
	// NamespaceLabelPrefix prefixes each of the pod's namespace's labels.
	NamespaceLabelPrefix = "k8s:io.cilium.k8s.namespace.labels."
	// SourcePrefix is the source of the labels Cilium takes from Kubernetes.
	SourcePrefix = "k8s:"
)

// Entities a rule may name.
const (
	EntityKubeAPIServer = "kube-apiserver"
	EntityWorld         = "world"
	EntityAll           = "all"
	EntityCluster       = "cluster"
)

// +kubebuilder:object:root=true

// CiliumNetworkPolicy is a namespaced Cilium policy with one rule (spec).
type CiliumNetworkPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`

	Spec *Rule `json:"spec,omitempty"`
}

// +kubebuilder:object:root=true

// CiliumNetworkPolicyList is a list of CiliumNetworkPolicies.
type CiliumNetworkPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata"`

	Items []CiliumNetworkPolicy `json:"items"`
}

// Rule selects endpoints and says what may reach them (ingress) and what they may reach (egress).
// A rule with an ingress (egress) section makes the endpoints it selects deny every other ingress
// (egress) connection.
type Rule struct {
	EndpointSelector metav1.LabelSelector `json:"endpointSelector"`
	Ingress          []IngressRule        `json:"ingress,omitempty"`
	Egress           []EgressRule         `json:"egress,omitempty"`
	Description      string               `json:"description,omitempty"`
}

// IngressRule admits connections from its peers (one kind of peer per rule) on its ports; a rule
// without peers and ports admits nothing.
type IngressRule struct {
	FromEndpoints []metav1.LabelSelector `json:"fromEndpoints,omitempty"`
	FromCIDRSet   []CIDRRule             `json:"fromCIDRSet,omitempty"`
	FromEntities  []string               `json:"fromEntities,omitempty"`
	ToPorts       []PortRule             `json:"toPorts,omitempty"`
}

// EgressRule admits connections to its peers (one kind of peer per rule) on its ports.
type EgressRule struct {
	ToEndpoints []metav1.LabelSelector `json:"toEndpoints,omitempty"`
	ToCIDRSet   []CIDRRule             `json:"toCIDRSet,omitempty"`
	ToEntities  []string               `json:"toEntities,omitempty"`
	ToFQDNs     []FQDNSelector         `json:"toFQDNs,omitempty"`
	ToPorts     []PortRule             `json:"toPorts,omitempty"`
}

// CIDRRule is an address range, less the ranges in except.
type CIDRRule struct {
	Cidr        string   `json:"cidr,omitempty"`
	ExceptCIDRs []string `json:"except,omitempty"`
}

// FQDNSelector matches the names Cilium's DNS proxy saw resolved: an exact name, or a pattern
// where * stands for any run of characters valid in a name.
type FQDNSelector struct {
	MatchName    string `json:"matchName,omitempty"`
	MatchPattern string `json:"matchPattern,omitempty"`
}

// PortRule is a set of ports and what layer-7 requests they take (none: any).
type PortRule struct {
	Ports []PortProtocol `json:"ports,omitempty"`
	Rules *L7Rules       `json:"rules,omitempty"`
}

// PortProtocol is a port (a number or a container port name) over a protocol (TCP, UDP, SCTP, ANY).
type PortProtocol struct {
	Port     string `json:"port,omitempty"`
	EndPort  int32  `json:"endPort,omitempty"`
	Protocol string `json:"protocol,omitempty"`
}

// L7Rules are the requests a port takes, through Cilium's proxy.
type L7Rules struct {
	HTTP []PortRuleHTTP `json:"http,omitempty"`
	DNS  []PortRuleDNS  `json:"dns,omitempty"`
}

// PortRuleHTTP admits requests whose path and method match its extended POSIX regular
// expressions (the whole value; empty matches any).
type PortRuleHTTP struct {
	Path   string `json:"path,omitempty"`
	Method string `json:"method,omitempty"`
}

// PortRuleDNS admits DNS lookups of the names it matches, and lets Cilium's DNS proxy see them:
// toFQDNs rules learn their addresses from those lookups.
type PortRuleDNS struct {
	MatchName    string `json:"matchName,omitempty"`
	MatchPattern string `json:"matchPattern,omitempty"`
}
