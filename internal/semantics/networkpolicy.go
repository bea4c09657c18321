package semantics

import (
	"maps"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// Direction is the way a NetworkPolicy rule admits traffic: into its pods or out of them.
type Direction string

const (
	Ingress Direction = "ingress"
	Egress  Direction = "egress"
)

// Isolates tells whether a NetworkPolicy applies to a direction: as its policyTypes say, or, when
// it has none, Ingress always and Egress when it has egress rules (the API server's default).
func Isolates(np *networkingv1.NetworkPolicy, dir Direction) bool {
	if len(np.Spec.PolicyTypes) == 0 {
		return dir == Ingress || len(np.Spec.Egress) > 0
	}
	want := networkingv1.PolicyTypeIngress
	if dir == Egress {
		want = networkingv1.PolicyTypeEgress
	}
	return slices.Contains(np.Spec.PolicyTypes, want)
}

// SelectorMatches tells whether a label selector matches labels; a selector the API server would
// refuse matches nothing.
func SelectorMatches(sel *metav1.LabelSelector, l map[string]string) bool {
	// Most policies a check looks at select other pods: refuse those on matchLabels before
	// converting the selector (which validates every key and value) for the few that may match.
	if sel != nil {
		for k, v := range sel.MatchLabels {
			if got, ok := l[k]; !ok || got != v {
				return false
			}
		}
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	return err == nil && s.Matches(labels.Set(l))
}

// LabelsMatching makes labels a selector matches, when it can: its matchLabels, the first value of
// each In, a value for each Exists; keys of NotIn and DoesNotExist left out (the made-up pods of
// the widening judge and of the tests).
func LabelsMatching(sel *metav1.LabelSelector) map[string]string {
	out := map[string]string{}
	if sel == nil {
		return out
	}
	maps.Copy(out, sel.MatchLabels)
	for _, e := range sel.MatchExpressions {
		if _, set := out[e.Key]; set {
			continue
		}
		switch e.Operator {
		case metav1.LabelSelectorOpIn:
			if len(e.Values) > 0 {
				out[e.Key] = e.Values[0]
			}
		case metav1.LabelSelectorOpExists:
			out[e.Key] = "any"
		}
	}
	return out
}

// SelectsPod tells whether a NetworkPolicy applies to a pod: one of its namespace that its
// podSelector matches.
func SelectsPod(np *networkingv1.NetworkPolicy, namespace string, podLabels map[string]string) bool {
	return np.Namespace == namespace && SelectorMatches(&np.Spec.PodSelector, podLabels)
}

// Peer is the other end of a connection as a NetworkPolicy rule sees it: a pod (Namespace set,
// with its labels and its namespace's), or an address outside the pod network.
type Peer struct {
	Namespace               string
	Labels, NamespaceLabels map[string]string
	IP                      string
}

// EmptyPeer tells whether a rule's peer names nothing: the API server refuses it ("must specify a
// peer"), so no cluster holds one; here it matches nothing.
func EmptyPeer(p networkingv1.NetworkPolicyPeer) bool {
	return p.PodSelector == nil && p.NamespaceSelector == nil && p.IPBlock == nil
}

// PeerMatches tells whether a rule's peer matches the other end: an ipBlock its address (pods
// included: a policy sees pod addresses), selectors a pod of the policy's namespace (podSelector
// alone) or of the namespaces namespaceSelector matches.
func PeerMatches(p networkingv1.NetworkPolicyPeer, policyNamespace string, peer Peer) bool {
	switch {
	case EmptyPeer(p):
		return false
	case p.IPBlock != nil:
		return InBlock(peer.IP, p.IPBlock)
	case peer.Namespace == "":
		return false // selectors match pods only
	case p.NamespaceSelector == nil && peer.Namespace != policyNamespace:
		return false
	case p.NamespaceSelector != nil && !SelectorMatches(p.NamespaceSelector, NamespaceLabels(peer.Namespace, peer.NamespaceLabels)):
		return false
	}
	return p.PodSelector == nil || SelectorMatches(p.PodSelector, peer.Labels)
}

// NamespaceLabels are a namespace's labels with the one the API server sets on every namespace,
// kubernetes.io/metadata.name.
func NamespaceLabels(namespace string, l map[string]string) map[string]string {
	out := make(map[string]string, len(l)+1)
	for k, v := range l {
		out[k] = v
	}
	out[corev1.LabelMetadataName] = namespace
	return out
}

// InBlock tells whether an address is in an ipBlock's CIDR and outside its exceptions.
func InBlock(ip string, b *networkingv1.IPBlock) bool {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	cidr, err := netip.ParsePrefix(b.CIDR)
	if err != nil || !cidr.Masked().Contains(addr) {
		return false
	}
	for _, e := range b.Except {
		if ex, err := netip.ParsePrefix(e); err == nil && ex.Masked().Contains(addr) {
			return false
		}
	}
	return true
}

// PortMatches tells whether a rule's ports admit a destination port (its number, and its
// container port name when it has one): no ports admit every port of every protocol; a port
// without a number every port of its protocol (TCP when unset); a name the destination's port of
// that name; a range its numbers.
func PortMatches(ports []networkingv1.NetworkPolicyPort, protocol corev1.Protocol, port int32, name string) bool {
	if len(ports) == 0 {
		return true
	}
	return slices.ContainsFunc(ports, func(p networkingv1.NetworkPolicyPort) bool {
		proto := corev1.ProtocolTCP
		if p.Protocol != nil {
			proto = *p.Protocol
		}
		switch {
		case proto != protocol:
			return false
		case p.Port == nil:
			return true
		case p.Port.StrVal != "":
			return name != "" && p.Port.StrVal == name
		case p.EndPort != nil:
			return p.Port.IntVal <= port && port <= *p.EndPort
		}
		return p.Port.IntVal == port
	})
}
