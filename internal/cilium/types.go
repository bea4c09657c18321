// Package cilium holds Cilium's cilium.io/v2 CiliumNetworkPolicy and
// CiliumClusterwideNetworkPolicy API, field for field as Cilium's own Go types encode it
// (pkg/policy/api, v1.20), and the labels Cilium gives every endpoint. The operator generates a
// few of the fields; lint reads hand-written policies strictly (a misspelt field is a finding), so
// every field of Cilium's schema is here. The operator's module does not take Cilium's (a large
// dependency tree for a dozen structs); test/cilium decodes every generated object with Cilium's
// own types, unknown fields refused, and runs Cilium's validation and policy engine on them.
// +kubebuilder:object:generate=true
// +groupName=cilium.io
package cilium

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
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

// CiliumNetworkPolicy is a namespaced Cilium policy: one rule (spec), more (specs), or both.
type CiliumNetworkPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`

	Spec  *Rule  `json:"spec,omitempty"`
	Specs []Rule `json:"specs,omitempty"`
}

// +kubebuilder:object:root=true

// CiliumClusterwideNetworkPolicy is a CiliumNetworkPolicy for the whole cluster: its selectors
// that name no namespace select pods of every namespace, and a rule may select nodes
// (nodeSelector) instead of pods.
type CiliumClusterwideNetworkPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`

	Spec  *Rule  `json:"spec,omitempty"`
	Specs []Rule `json:"specs,omitempty"`
}

// +kubebuilder:object:root=true

// CiliumClusterwideNetworkPolicyList is a list of CiliumClusterwideNetworkPolicies.
type CiliumClusterwideNetworkPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata"`

	Items []CiliumClusterwideNetworkPolicy `json:"items"`
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
// (egress) connection, unless enableDefaultDeny says otherwise. Deny rules win over allow rules.
type Rule struct {
	EndpointSelector metav1.LabelSelector `json:"endpointSelector"`
	// NodeSelector selects nodes instead of pods (clusterwide policies only); endpointSelector is
	// then absent.
	NodeSelector      *metav1.LabelSelector `json:"nodeSelector,omitempty"`
	Ingress           []IngressRule         `json:"ingress,omitempty"`
	IngressDeny       []IngressDenyRule     `json:"ingressDeny,omitempty"`
	Egress            []EgressRule          `json:"egress,omitempty"`
	EgressDeny        []EgressDenyRule      `json:"egressDeny,omitempty"`
	Labels            []Label               `json:"labels,omitempty"`
	EnableDefaultDeny *DefaultDenyConfig    `json:"enableDefaultDeny,omitempty"`
	Description       string                `json:"description,omitempty"`
	Log               *LogConfig            `json:"log,omitempty"`
}

// IngressRule admits connections from its peers (one kind of peer per rule) on its ports. A rule
// with ports and no peers admits every source, in the cluster and out; one without either, or
// with an empty list of peers, admits nothing.
type IngressRule struct {
	FromEndpoints []metav1.LabelSelector `json:"fromEndpoints,omitempty"`
	// FromRequires narrows the other peers; it grants nothing by itself.
	FromRequires   []string               `json:"fromRequires,omitempty"`
	FromCIDR       []string               `json:"fromCIDR,omitempty"`
	FromCIDRSet    []CIDRRule             `json:"fromCIDRSet,omitempty"`
	FromEntities   []string               `json:"fromEntities,omitempty"`
	FromGroups     []Groups               `json:"fromGroups,omitempty"`
	FromNodes      []metav1.LabelSelector `json:"fromNodes,omitempty"`
	ToPorts        []PortRule             `json:"toPorts,omitempty"`
	ICMPs          []ICMPRule             `json:"icmps,omitempty"`
	Authentication *Authentication        `json:"authentication,omitempty"`
}

// IngressDenyRule refuses connections from its peers on its ports, whatever allows them.
type IngressDenyRule struct {
	FromEndpoints []metav1.LabelSelector `json:"fromEndpoints,omitempty"`
	FromRequires  []string               `json:"fromRequires,omitempty"`
	FromCIDR      []string               `json:"fromCIDR,omitempty"`
	FromCIDRSet   []CIDRRule             `json:"fromCIDRSet,omitempty"`
	FromEntities  []string               `json:"fromEntities,omitempty"`
	FromGroups    []Groups               `json:"fromGroups,omitempty"`
	FromNodes     []metav1.LabelSelector `json:"fromNodes,omitempty"`
	ToPorts       []PortDenyRule         `json:"toPorts,omitempty"`
	ICMPs         []ICMPRule             `json:"icmps,omitempty"`
}

// EgressRule admits connections to its peers (one kind of peer per rule) on its ports; as for
// ingress, ports without peers admit every destination.
type EgressRule struct {
	ToEndpoints    []metav1.LabelSelector `json:"toEndpoints,omitempty"`
	ToRequires     []string               `json:"toRequires,omitempty"`
	ToCIDR         []string               `json:"toCIDR,omitempty"`
	ToCIDRSet      []CIDRRule             `json:"toCIDRSet,omitempty"`
	ToEntities     []string               `json:"toEntities,omitempty"`
	ToServices     []Service              `json:"toServices,omitempty"`
	ToGroups       []Groups               `json:"toGroups,omitempty"`
	ToNodes        []metav1.LabelSelector `json:"toNodes,omitempty"`
	ToPorts        []PortRule             `json:"toPorts,omitempty"`
	ToFQDNs        []FQDNSelector         `json:"toFQDNs,omitempty"`
	ICMPs          []ICMPRule             `json:"icmps,omitempty"`
	Authentication *Authentication        `json:"authentication,omitempty"`
}

// EgressDenyRule refuses connections to its peers on its ports, whatever allows them.
type EgressDenyRule struct {
	ToEndpoints []metav1.LabelSelector `json:"toEndpoints,omitempty"`
	ToRequires  []string               `json:"toRequires,omitempty"`
	ToCIDR      []string               `json:"toCIDR,omitempty"`
	ToCIDRSet   []CIDRRule             `json:"toCIDRSet,omitempty"`
	ToEntities  []string               `json:"toEntities,omitempty"`
	ToServices  []Service              `json:"toServices,omitempty"`
	ToGroups    []Groups               `json:"toGroups,omitempty"`
	ToNodes     []metav1.LabelSelector `json:"toNodes,omitempty"`
	ToPorts     []PortDenyRule         `json:"toPorts,omitempty"`
	ICMPs       []ICMPRule             `json:"icmps,omitempty"`
}

// CIDRRule is an address range, less the ranges in except, or the ranges of CiliumCIDRGroups.
type CIDRRule struct {
	Cidr              string                `json:"cidr,omitempty"`
	CIDRGroupRef      string                `json:"cidrGroupRef,omitempty"`
	CIDRGroupSelector *metav1.LabelSelector `json:"cidrGroupSelector,omitempty"`
	ExceptCIDRs       []string              `json:"except,omitempty"`
}

// Label is a label of a rule, for finding it again: no selector.
type Label struct {
	Key    string `json:"key"`
	Value  string `json:"value,omitempty"`
	Source string `json:"source"`
}

// DefaultDenyConfig says whether the policy's selected endpoints deny what no rule allows, per
// direction (unset: yes where the policy has rules).
type DefaultDenyConfig struct {
	Ingress *bool `json:"ingress,omitempty"`
	Egress  *bool `json:"egress,omitempty"`
}

// LogConfig is a value Hubble shows on the flows the policy matches.
type LogConfig struct {
	Value string `json:"value,omitempty"`
}

// Authentication is the mutual authentication a rule requires.
type Authentication struct {
	Mode string `json:"mode"`
}

// Service selects Kubernetes Services (by name or by labels), for egress.
type Service struct {
	K8sServiceSelector *K8sServiceSelectorNamespace `json:"k8sServiceSelector,omitempty"`
	K8sService         *K8sServiceNamespace         `json:"k8sService,omitempty"`
}

// K8sServiceNamespace names a Service.
type K8sServiceNamespace struct {
	ServiceName string `json:"serviceName,omitempty"`
	Namespace   string `json:"namespace,omitempty"`
}

// K8sServiceSelectorNamespace selects Services by their labels.
type K8sServiceSelectorNamespace struct {
	Selector  metav1.LabelSelector `json:"selector"`
	Namespace string               `json:"namespace,omitempty"`
}

// Groups are addresses a cloud provider knows by other names.
type Groups struct {
	AWS *AWSGroup `json:"aws,omitempty"`
}

// AWSGroup selects the addresses of AWS network interfaces.
type AWSGroup struct {
	Labels              map[string]string `json:"labels,omitempty"`
	SecurityGroupsIds   []string          `json:"securityGroupsIds,omitempty"`
	SecurityGroupsNames []string          `json:"securityGroupsNames,omitempty"`
	Region              string            `json:"region,omitempty"`
}

// ICMPRule admits ICMP messages of the types its fields list.
type ICMPRule struct {
	Fields []ICMPField `json:"fields,omitempty"`
}

// ICMPField is an ICMP type (a number or a name) of a family (IPv4 unless IPv6).
type ICMPField struct {
	Family string              `json:"family,omitempty"`
	Type   *intstr.IntOrString `json:"type"`
}

// FQDNSelector matches the names Cilium's DNS proxy saw resolved: an exact name, or a pattern
// where * stands for any run of characters valid in a name.
type FQDNSelector struct {
	MatchName    string `json:"matchName,omitempty"`
	MatchPattern string `json:"matchPattern,omitempty"`
}

// PortRule is a set of ports and what layer-7 requests they take (none: any).
type PortRule struct {
	Ports          []PortProtocol `json:"ports,omitempty"`
	TerminatingTLS *TLSContext    `json:"terminatingTLS,omitempty"`
	OriginatingTLS *TLSContext    `json:"originatingTLS,omitempty"`
	ServerNames    []string       `json:"serverNames,omitempty"`
	Listener       *Listener      `json:"listener,omitempty"`
	Rules          *L7Rules       `json:"rules,omitempty"`
}

// PortDenyRule is a set of ports a deny rule refuses.
type PortDenyRule struct {
	Ports []PortProtocol `json:"ports,omitempty"`
}

// TLSContext is where Cilium's proxy finds the certificates to end or start TLS with.
type TLSContext struct {
	Secret      *Secret `json:"secret,omitempty"`
	TrustedCA   string  `json:"trustedCA,omitempty"`
	Certificate string  `json:"certificate,omitempty"`
	PrivateKey  string  `json:"privateKey,omitempty"`
}

// Secret names a Kubernetes Secret.
type Secret struct {
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
}

// Listener sends a port's traffic to an Envoy listener of a CiliumEnvoyConfig.
type Listener struct {
	EnvoyConfig *EnvoyConfig `json:"envoyConfig"`
	Name        string       `json:"name"`
	Priority    uint8        `json:"priority,omitempty"`
}

// EnvoyConfig names a CiliumEnvoyConfig or CiliumClusterwideEnvoyConfig.
type EnvoyConfig struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
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
	Host   string `json:"host,omitempty"`
	// Headers and HeaderMatches are lists held by pointer, so that PortRuleHTTP stays comparable
	// (the compiler compacts sorted rules); the compiler never sets them.
	Headers       *[]string      `json:"headers,omitempty"`
	HeaderMatches *[]HeaderMatch `json:"headerMatches,omitempty"`
}

// HeaderMatch requires a header value, and says what to do when it is missing or differs.
type HeaderMatch struct {
	Mismatch string  `json:"mismatch,omitempty"`
	Name     string  `json:"name"`
	Secret   *Secret `json:"secret,omitempty"`
	Value    string  `json:"value,omitempty"`
}

// PortRuleDNS admits DNS lookups of the names it matches, and lets Cilium's DNS proxy see them:
// toFQDNs rules learn their addresses from those lookups.
type PortRuleDNS struct {
	MatchName    string `json:"matchName,omitempty"`
	MatchPattern string `json:"matchPattern,omitempty"`
}
