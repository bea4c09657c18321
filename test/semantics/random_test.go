package semantics_test

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// vocabulary is the labels random selectors and objects draw from: a few keys, a few values each,
// so that selectors and labels meet often.
type vocabulary map[string][]string

var (
	podVocabulary       = vocabulary{"app": {"web", "api", "db"}, "tier": {"front", "back"}, "env": {"prod", "dev"}}
	namespaceVocabulary = vocabulary{"team": {"red", "blue"}, "env": {"prod", "dev"}}
	// ranges are the CIDRs random ipBlocks name: nested, overlapping, disjoint, the pods' range
	// (10.244.0.0/16) among them.
	ranges      = []string{"0.0.0.0/0", "10.0.0.0/8", "10.244.0.0/16", "10.244.1.0/24", "192.168.0.0/16", "203.0.113.0/24", "198.51.100.0/24", "198.51.100.77/32"}
	portNumbers = []int32{53, 80, 443, 5432, 8080, 9090}
	portNames   = []string{"http", "dns", "metrics", "grpc"}
)

// randomWorld draws a policy set: 1–3 policies over 2–3 namespaces with random labels, and a
// random pod label set besides the ones the world derives from the selectors.
func randomWorld(rng *rand.Rand, i int) *world {
	namespaces := map[string]map[string]string{}
	var names []string
	for k := range 2 + rng.IntN(2) {
		name := fmt.Sprintf("ns-%c", 'a'+k)
		names = append(names, name)
		namespaces[name] = randomLabels(rng, namespaceVocabulary)
	}
	var policies []*networkingv1.NetworkPolicy
	for k := range 1 + rng.IntN(3) {
		policies = append(policies, randomPolicy(rng, fmt.Sprintf("np-%d", k), names[rng.IntN(len(names))], names))
	}
	return newWorld(fmt.Sprintf("random-%03d", i), policies, namespaces, []map[string]string{randomLabels(rng, podVocabulary)})
}

func randomLabels(rng *rand.Rand, v vocabulary) map[string]string {
	l := map[string]string{}
	for _, k := range sortedKeys(v) {
		if rng.IntN(3) > 0 {
			l[k] = v[k][rng.IntN(len(v[k]))]
		}
	}
	return l
}

func sortedKeys(v vocabulary) []string {
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// randomSelector draws matchLabels and matchExpressions (In, NotIn, Exists, DoesNotExist), often
// none (the empty selector, which selects everything). A namespace selector sometimes names a
// namespace by kubernetes.io/metadata.name.
func randomSelector(rng *rand.Rand, v vocabulary, namespaces []string) *metav1.LabelSelector {
	sel := &metav1.LabelSelector{}
	keys := sortedKeys(v)
	for range rng.IntN(3) {
		k := keys[rng.IntN(len(keys))]
		if sel.MatchLabels == nil {
			sel.MatchLabels = map[string]string{}
		}
		sel.MatchLabels[k] = v[k][rng.IntN(len(v[k]))]
	}
	for range rng.IntN(3) {
		k := keys[rng.IntN(len(keys))]
		values := v[k]
		if namespaces != nil && rng.IntN(4) == 0 {
			k, values = nsNameLabel, namespaces
		}
		e := metav1.LabelSelectorRequirement{Key: k}
		switch rng.IntN(4) {
		case 0:
			e.Operator = metav1.LabelSelectorOpIn
		case 1:
			e.Operator = metav1.LabelSelectorOpNotIn
		case 2:
			e.Operator = metav1.LabelSelectorOpExists
		default:
			e.Operator = metav1.LabelSelectorOpDoesNotExist
		}
		if e.Operator == metav1.LabelSelectorOpIn || e.Operator == metav1.LabelSelectorOpNotIn {
			for range 1 + rng.IntN(2) {
				if x := values[rng.IntN(len(values))]; !slices.Contains(e.Values, x) {
					e.Values = append(e.Values, x)
				}
			}
		}
		sel.MatchExpressions = append(sel.MatchExpressions, e)
	}
	return sel
}

// randomPolicy draws a policy the API server accepts: policyTypes absent or any of the three
// lists; ingress and egress absent, empty, [{}] or 1–2 rules; each rule with no peer list or 1–2
// peers (podSelector only, namespaceSelector only, both, or an ipBlock with 0–2 excepts strictly
// inside it — never an empty peer, which the API server refuses) and no port list or 1–2 ports
// (protocol absent or TCP, UDP, SCTP; port absent, numbered — sometimes with endPort >= port — or
// named).
func randomPolicy(rng *rand.Rand, name, namespace string, namespaces []string) *networkingv1.NetworkPolicy {
	np := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec:       networkingv1.NetworkPolicySpec{PodSelector: *randomSelector(rng, podVocabulary, nil)},
	}
	switch rng.IntN(4) {
	case 1:
		np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
	case 2:
		np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}
	case 3:
		np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}
	}
	// The shape of each rule list: absent, empty ("ingress: []"), [{}], or 1–2 drawn rules.
	shape := func() int { return rng.IntN(5) - 2 }
	switch n := shape(); n {
	case -2:
	case -1:
		np.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{}
	case 0:
		np.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{}}
	default:
		for range n {
			np.Spec.Ingress = append(np.Spec.Ingress, networkingv1.NetworkPolicyIngressRule{From: randomPeers(rng, namespaces), Ports: randomPorts(rng)})
		}
	}
	switch n := shape(); n {
	case -2:
	case -1:
		np.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{}
	case 0:
		np.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{{}}
	default:
		for range n {
			np.Spec.Egress = append(np.Spec.Egress, networkingv1.NetworkPolicyEgressRule{To: randomPeers(rng, namespaces), Ports: randomPorts(rng)})
		}
	}
	return np
}

func randomPeers(rng *rand.Rand, namespaces []string) []networkingv1.NetworkPolicyPeer {
	if rng.IntN(4) == 0 {
		return nil
	}
	var out []networkingv1.NetworkPolicyPeer
	for range 1 + rng.IntN(2) {
		var p networkingv1.NetworkPolicyPeer
		switch rng.IntN(4) {
		case 0:
			p.PodSelector = randomSelector(rng, podVocabulary, nil)
		case 1:
			p.NamespaceSelector = randomSelector(rng, namespaceVocabulary, namespaces)
		case 2:
			p.PodSelector = randomSelector(rng, podVocabulary, nil)
			p.NamespaceSelector = randomSelector(rng, namespaceVocabulary, namespaces)
		default:
			p.IPBlock = randomIPBlock(rng)
		}
		out = append(out, p)
	}
	return out
}

// randomIPBlock draws a CIDR and 0–2 excepts strictly inside it.
func randomIPBlock(rng *rand.Rand) *networkingv1.IPBlock {
	cidr := netip.MustParsePrefix(ranges[rng.IntN(len(ranges))])
	b := &networkingv1.IPBlock{CIDR: cidr.String()}
	if cidr.Bits() == 32 {
		return b
	}
	for range rng.IntN(3) {
		bits := cidr.Bits() + 1 + rng.IntN(min(8, 32-cidr.Bits()))
		base := cidr.Addr().As4()
		n := uint32(base[0])<<24 | uint32(base[1])<<16 | uint32(base[2])<<8 | uint32(base[3])
		n |= rng.Uint32() & (uint32(1)<<(32-cidr.Bits()) - 1) // anywhere inside the CIDR (1<<32 is 0 for /0: all bits)
		addr := netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
		except := netip.PrefixFrom(addr, bits).Masked().String()
		if !slices.Contains(b.Except, except) {
			b.Except = append(b.Except, except)
		}
	}
	return b
}

func randomPorts(rng *rand.Rand) []networkingv1.NetworkPolicyPort {
	if rng.IntN(3) == 0 {
		return nil
	}
	var out []networkingv1.NetworkPolicyPort
	for range 1 + rng.IntN(2) {
		var p networkingv1.NetworkPolicyPort
		if k := rng.IntN(5); k > 1 {
			proto := protocols[k-2]
			p.Protocol = &proto
		}
		switch k := rng.IntN(8); {
		case k == 0:
			// every port of the protocol
		case k < 4:
			port := intstr.FromString(portNames[rng.IntN(len(portNames))])
			p.Port = &port
		default:
			n := portNumbers[rng.IntN(len(portNumbers))]
			port := intstr.FromInt32(n)
			p.Port = &port
			if rng.IntN(3) == 0 {
				end := n + int32(rng.IntN(3))*int32(rng.IntN(40))
				p.EndPort = &end
			}
		}
		out = append(out, p)
	}
	return out
}
