package compiler

import (
	"fmt"
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/graph"
)

// +kubebuilder:rbac:groups=networking.k8s.io,resources=networkpolicies,verbs=get;list;watch;create;update;patch;delete

// LayerNetworkPolicy is the cluster's NetworkPolicy implementation (the CNI).
var LayerNetworkPolicy = &Layer{
	Name:    "NetworkPolicy",
	Reason:  "NetworkPolicyNotServed",
	Missing: "the networking.k8s.io/v1 NetworkPolicy API is not served in this cluster",
	Needed:  func(*Result) bool { return true },
	Waiting: "waiting for the networking.k8s.io/v1 NetworkPolicy API to be served",
}

// NetworkPolicies isolate every pod of the namespace (default-deny, both directions) and allow
// exactly the edges at layer 4, plus DNS and, with Istio, the sidecars' connection to istiod.
var NetworkPolicies = &Output{
	GVK:       networkingv1.SchemeGroupVersion.WithKind("NetworkPolicy"),
	Layer:     LayerNetworkPolicy,
	Condition: v1alpha1.ConditionNetworkPoliciesReady,
	Emit: func(c *Compilation) []Emitted {
		var out []Emitted
		allow := func(np *networkingv1.NetworkPolicy) { out = append(out, Emitted{Object: np, Phase: PhaseAllow}) }
		if c.g.AllowDNS {
			allow(c.allowDNS())
		}
		if c.LayerOn(LayerIstio) {
			allow(c.allowIstiod())
		}
		for _, sp := range c.sortedPolicies() {
			allow(c.serviceNetworkPolicy(sp))
		}
		for _, w := range c.waypoints() {
			allow(c.waypointNetworkPolicy(w))
		}
		return append(out, Emitted{Object: c.defaultDeny(), Phase: PhaseDeny})
	},
	// Any NetworkPolicy that selects a pod isolates it, so none can merely observe.
	Audit:     func(Object) Object { return nil },
	SpecEqual: sameSpec(func(w, h *networkingv1.NetworkPolicy) bool { return equality.Semantic.DeepEqual(w.Spec, h.Spec) }),
	Describe: func(s Summary) string {
		if s.Audit {
			return fmt.Sprintf("Audit mode: no NetworkPolicy applied (Enforce would apply %d)", s.Planned)
		}
		return fmt.Sprintf("%d NetworkPolicies applied, default-deny included", s.Count)
	},
	RoughSize: func(obj Object) int {
		np, ok := obj.(*networkingv1.NetworkPolicy)
		if !ok {
			return 0
		}
		s := newSizer()
		peersAndPorts := func(peers []networkingv1.NetworkPolicyPeer, ports []networkingv1.NetworkPolicyPort) {
			s.size += len(ports) * 2 * perItem
			for _, p := range peers {
				s.size += 2 * perItem
				if p.PodSelector != nil {
					s.labels(p.PodSelector.MatchLabels)
				}
				if p.NamespaceSelector != nil {
					s.labels(p.NamespaceSelector.MatchLabels)
				}
			}
		}
		s.labels(np.Spec.PodSelector.MatchLabels)
		for _, r := range np.Spec.Ingress {
			peersAndPorts(r.From, r.Ports)
		}
		for _, r := range np.Spec.Egress {
			peersAndPorts(r.To, r.Ports)
		}
		return s.size
	},
}

// namespaceLabel is set by Kubernetes on every namespace to its name; it is how a NetworkPolicy
// selects a peer's namespace.
const namespaceLabel = "kubernetes.io/metadata.name"

// policyTypes lists the directions a policy governs.
func policyTypes(ingress, egress bool) []networkingv1.PolicyType {
	var t []networkingv1.PolicyType
	if ingress {
		t = append(t, networkingv1.PolicyTypeIngress)
	}
	if egress {
		t = append(t, networkingv1.PolicyTypeEgress)
	}
	return t
}

var networkPolicyType = metav1.TypeMeta{APIVersion: networkingv1.SchemeGroupVersion.String(), Kind: "NetworkPolicy"}

func (c *Compilation) networkPolicy(name, service string) *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{
		TypeMeta: networkPolicyType,
		ObjectMeta: metav1.ObjectMeta{
			Name:      name,
			Namespace: c.g.Namespace,
			Labels:    c.labels(service),
		},
	}
}

// defaultDeny selects every pod of the namespace for both directions with no rule: whatever no
// other policy allows is denied.
func (c *Compilation) defaultDeny() *networkingv1.NetworkPolicy {
	np := c.networkPolicy(graphObjectName(c.g.Name, suffixDefaultDeny), "")
	np.Spec.PolicyTypes = policyTypes(true, true)
	return np
}

// allowDNS keeps name resolution working under default-deny egress.
func (c *Compilation) allowDNS() *networkingv1.NetworkPolicy {
	return c.egressToAll(suffixAllowDNS, c.opts.DNS,
		port(corev1.ProtocolUDP, intstr.FromInt32(53)), port(corev1.ProtocolTCP, intstr.FromInt32(53)))
}

// allowIstiod keeps sidecars connected to istiod (xDS on 15012, the webhook port 15017) under
// default-deny egress.
func (c *Compilation) allowIstiod() *networkingv1.NetworkPolicy {
	return c.egressToAll(suffixAllowIstiod, c.opts.Istiod,
		port(corev1.ProtocolTCP, intstr.FromInt32(15012)), port(corev1.ProtocolTCP, intstr.FromInt32(15017)))
}

// egressToAll lets every pod of the namespace reach the selected pods on the given ports.
func (c *Compilation) egressToAll(suffix string, to PeerSelector, ports ...networkingv1.NetworkPolicyPort) *networkingv1.NetworkPolicy {
	np := c.networkPolicy(graphObjectName(c.g.Name, suffix), "")
	np.Spec.PolicyTypes = policyTypes(false, true)
	np.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{{
		To:    []networkingv1.NetworkPolicyPeer{namespacedPeer(to.Namespace, to.Labels)},
		Ports: ports,
	}}
	return np
}

// serviceNetworkPolicy selects a local service's pods and allows exactly its edges (serviceRules):
// ingress from each caller, egress to each callee. policyTypes lists only the directions that have
// rules; the default-deny policy closes the other.
func (c *Compilation) serviceNetworkPolicy(sp *servicePolicy) *networkingv1.NetworkPolicy {
	np := c.networkPolicy(serviceObjectName(c.g.Name, sp.svc.Name), sp.svc.Name)
	np.Spec.PodSelector = *selector(sp.svc.Labels)
	in, out := c.serviceRules(sp)
	if len(in) > 0 {
		np.Spec.Ingress = make([]networkingv1.NetworkPolicyIngressRule, 0, len(in))
	}
	if len(out) > 0 {
		np.Spec.Egress = make([]networkingv1.NetworkPolicyEgressRule, 0, len(out))
	}
	for _, r := range in {
		np.Spec.Ingress = append(np.Spec.Ingress, networkingv1.NetworkPolicyIngressRule{From: r.peers, Ports: r.ports})
	}
	for _, r := range out {
		np.Spec.Egress = append(np.Spec.Egress, networkingv1.NetworkPolicyEgressRule{To: r.peers, Ports: r.ports})
	}
	np.Spec.PolicyTypes = policyTypes(len(np.Spec.Ingress) > 0, len(np.Spec.Egress) > 0)
	return np
}

// l4Rule is one layer-3/4 rule of a service's policy, whatever API writes it: its peers and ports,
// and the edges it stands for: edge, then more (none for a waypoint's or the probes' rule). Most
// rules stand for one edge, which takes no allocation.
type l4Rule struct {
	peers []networkingv1.NetworkPolicyPeer
	ports []networkingv1.NetworkPolicyPort
	edge  *edge
	more  []*edge
}

// serviceRules are a local service's layer-3/4 rules: ingress from each caller, egress to each
// callee, valid until the next call (they reuse the compilation's buffers). Edges to or from one peer that differ only above layer 4 (paths, methods, HTTP or TCP)
// give one rule.
//
// In ambient mode (see ambient.go) an edge also opens port 15008 (HBONE); an edge with paths or
// methods into an ambient service opens only the way through its waypoint; and the kubelet's
// probes, which istio-cni sends from a link-local address, are admitted on the probed ports.
func (c *Compilation) serviceRules(sp *servicePolicy) (ingress, egress []l4Rule) {
	// A rule without peers or ports would admit everything: an edge whose peer or ports are not
	// known (the API server's addresses before the operator has read them) gets no rule.
	a := c.ambient(sp.svc.Name)
	ingress = c.ruleBuffers[0][:0]
	var in rules
	for _, e := range sp.ingress {
		if a != nil && httpOnly(e.Edge) {
			continue
		}
		if peers := c.callerPeer(e.From); len(peers) > 0 && len(e.ports) > 0 {
			ingress = in.add(ingress, e.From, e, func() l4Rule { return l4Rule{peers: peers, ports: c.hbonePorts(e)} })
		}
	}
	if a != nil && a.through {
		ingress = append(ingress, l4Rule{peers: c.waypointPeer(a.waypoint), ports: c.hboneOnly()})
	}
	if probes := c.probeRulePorts(sp.svc.Name); a != nil && len(probes) > 0 {
		r := c.probeRule(probes)
		ingress = append(ingress, l4Rule{peers: r.From, ports: r.Ports})
	}
	egress = c.ruleBuffers[1][:0]
	var out rules
	var waypoints []string
	for _, e := range sp.egress {
		to := c.ambient(e.To)
		if to != nil && to.through && !slices.Contains(waypoints, to.waypoint) {
			waypoints = append(waypoints, to.waypoint)
		}
		if to != nil && httpOnly(e.Edge) {
			continue
		}
		if peers := c.peer(e.To); len(peers) > 0 && len(e.ports) > 0 {
			egress = out.add(egress, e.To, e, func() l4Rule { return l4Rule{peers: peers, ports: c.hbonePorts(e)} })
		}
	}
	slices.Sort(waypoints)
	for _, w := range waypoints {
		egress = append(egress, l4Rule{peers: c.waypointPeer(w), ports: c.hboneOnly()})
	}
	c.ruleBuffers = [2][]l4Rule{ingress, egress}
	if len(ingress) == 0 {
		ingress = nil // an empty list would print as "ingress: []"
	}
	if len(egress) == 0 {
		egress = nil
	}
	return ingress, egress
}

// rules merges the edges of one peer (consecutive: edges are sorted) with the same layer-4 ports
// into one rule.
type rules struct {
	peer string
	// kept are the indexes of the peer's rules so far.
	kept []int
}

// add files the edge under the peer's rule with the same ports, or appends the rule made new.
func (r *rules) add(to []l4Rule, peer string, e *edge, newRule func() l4Rule) []l4Rule {
	if peer != r.peer {
		r.peer, r.kept = peer, r.kept[:0]
	}
	for _, i := range r.kept {
		if sameL4(to[i].edge, e) {
			to[i].more = append(to[i].more, e)
			return to
		}
	}
	rule := newRule()
	rule.edge = e
	r.kept = append(r.kept, len(to))
	return append(to, rule)
}

// sameL4 reports whether two edges have the same NetworkPolicy ports.
func sameL4(a, b *edge) bool {
	return slices.EqualFunc(a.Ports, b.Ports, func(p, q graph.Port) bool { return p.Port == q.Port && p.L4() == q.L4() })
}

// networkPolicyPorts are an edge's ports for its NetworkPolicy rules. Named ports stay names:
// Kubernetes resolves them per destination pod. An edge to the API server gets the server's own
// ports: NetworkPolicies see its traffic after the Service's address translation.
func (c *Compilation) networkPolicyPorts(e *graph.Edge) []networkingv1.NetworkPolicyPort {
	to := c.service(e.To)
	if to.External != nil && to.External.KubernetesAPI {
		return c.apiServerPorts()
	}
	ports := make([]networkingv1.NetworkPolicyPort, len(e.Ports), len(e.Ports)+1)
	for i, p := range e.Ports {
		ports[i] = networkingv1.NetworkPolicyPort{Protocol: intern(c.protocols, p.L4()), Port: intern(c.portValues, p.Port)}
	}
	if to.Remote != nil {
		// Across networks the sidecar connects to the other cluster's east-west gateway on 15443.
		ports = append(ports, networkingv1.NetworkPolicyPort{Protocol: intern(c.protocols, corev1.ProtocolTCP),
			Port: intern(c.portValues, intstr.FromInt32(graph.EastWestGatewayPort))})
	}
	return ports
}

// intern returns the one pointer to v that every NetworkPolicyPort of a compilation shares,
// allocating on a miss only.
func intern[T comparable](pointers map[T]*T, v T) *T {
	p, ok := pointers[v]
	if !ok {
		p = new(T)
		*p = v
		pointers[v] = p
	}
	return p
}

// peer selects a service's pods as a rule's only peer, or what an external peer is.
func (c *Compilation) peer(name string) []networkingv1.NetworkPolicyPeer {
	if p, ok := c.peers[name]; ok {
		return p
	}
	svc := c.service(name)
	var peers []networkingv1.NetworkPolicyPeer
	switch {
	case svc.External != nil:
		peers = c.externalPeers(svc.External)
	case svc.Remote != nil:
		peers = ipBlocks(svc.Remote.CIDRs, nil)
	case c.g.Local(svc):
		peers = []networkingv1.NetworkPolicyPeer{{PodSelector: selector(svc.Labels)}}
	default:
		peers = []networkingv1.NetworkPolicyPeer{namespacedPeer(svc.Namespace, svc.Labels)}
	}
	c.peers[name] = peers
	return peers
}

// callerPeer is what a rule admits a caller as: its peer, but for a service of another cluster,
// this cluster's east-west gateway, whose pods its calls come from.
func (c *Compilation) callerPeer(name string) []networkingv1.NetworkPolicyPeer {
	if r := c.service(name).Remote; r != nil {
		return []networkingv1.NetworkPolicyPeer{namespacedPeer(r.GatewayNamespace, r.GatewayLabels)}
	}
	return c.peer(name)
}

// namespacedPeer selects pods by label in a namespace given by name.
func namespacedPeer(namespace string, labels map[string]string) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{namespaceLabel: namespace}},
		PodSelector:       selector(labels),
	}
}

// selector copies the labels so that objects share no memory.
func selector(labels map[string]string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchLabels: maps.Clone(labels)}
}

func port(protocol corev1.Protocol, p intstr.IntOrString) networkingv1.NetworkPolicyPort {
	return networkingv1.NetworkPolicyPort{Protocol: &protocol, Port: &p}
}
