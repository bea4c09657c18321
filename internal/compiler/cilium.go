package compiler

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/cilium"
	"github.com/servicegraph/servicegraph-operator/internal/graph"
)

// +kubebuilder:rbac:groups=cilium.io,resources=ciliumnetworkpolicies,verbs=get;list;watch;create;update;patch;delete

// LayerCilium is Cilium, the CNI, enforcing CiliumNetworkPolicies: a graph with spec.networkPolicy
// Cilium gets them instead of Kubernetes NetworkPolicies once the cluster serves cilium.io/v2.
var LayerCilium = &Layer{
	Name:    "Cilium",
	Reason:  v1alpha1.ReasonCiliumNotServed,
	Missing: "the cilium.io/v2 CiliumNetworkPolicy API is not served in this cluster: Kubernetes NetworkPolicies enforce the graph meanwhile",
	Needed:  func(r *Result) bool { return r.Graph.NetworkPolicy == v1alpha1.NetworkPolicyCilium },
	Waiting: "spec.networkPolicy is Cilium, but the cluster does not serve cilium.io/v2 CiliumNetworkPolicy: " +
		"Kubernetes NetworkPolicies enforce the graph at layer 3/4 meanwhile (no host names, no HTTP rules)",
}

// CiliumNetworkPolicies are the NetworkPolicies' rules written for Cilium (the same peers and
// ports, so the same layer-3/4 semantics, ambient mode included), tightened where Cilium can say
// more: an external host is its name (toFQDNs, with a DNS rule that lets Cilium's proxy learn the
// addresses), the API server is the kube-apiserver entity, a caller of the graph is also its
// ServiceAccount, and without a mesh an edge's paths and methods are HTTP rules on the callee's
// ingress (on the egress for an external callee). With Istio, Istio enforces layer 7.
var CiliumNetworkPolicies = &Output{
	GVK:       cilium.GroupVersion.WithKind("CiliumNetworkPolicy"),
	Layer:     LayerCilium,
	Condition: v1alpha1.ConditionNetworkPoliciesReady,
	Emit: func(c *Compilation) []Emitted {
		var out []Emitted
		allow := func(p *cilium.CiliumNetworkPolicy) { out = append(out, Emitted{Object: p, Phase: PhaseAllow}) }
		if c.g.AllowDNS {
			allow(c.ciliumDNS())
		}
		if c.LayerOn(LayerIstio) {
			allow(c.ciliumOf(c.allowIstiod()))
		}
		for _, sp := range c.sortedPolicies() {
			in, eg := c.serviceRules(sp)
			allow(c.ciliumPolicy(c.networkPolicy(serviceObjectName(c.g.Name, sp.svc.Name), sp.svc.Name).ObjectMeta, sp.svc.Labels, in, eg))
		}
		for _, w := range c.waypoints() {
			allow(c.ciliumOf(c.waypointNetworkPolicy(w)))
		}
		deny := c.ciliumPolicy(c.defaultDeny().ObjectMeta, nil, nil, nil)
		deny.Spec.Ingress, deny.Spec.Egress = []cilium.IngressRule{{}}, []cilium.EgressRule{{}} // rules that admit nothing
		return append(out, Emitted{Object: deny, Phase: PhaseDeny})
	},
	// Cilium's audit mode is the agent's, for every policy at once: none can merely observe.
	Audit:     func(Object) Object { return nil },
	SpecEqual: sameSpec(func(w, h *cilium.CiliumNetworkPolicy) bool { return equality.Semantic.DeepEqual(w.Spec, h.Spec) }),
	Describe: func(s Summary) string {
		if s.Audit {
			return fmt.Sprintf("Audit mode: no CiliumNetworkPolicy applied (Enforce would apply %d)", s.Planned)
		}
		return fmt.Sprintf("%d CiliumNetworkPolicies applied, default-deny included", s.Count)
	},
}

// networkPolicyLayerUnused is the layer-3/4 layer a graph does not write: Kubernetes' when it asks
// for Cilium and the cluster serves it, Cilium's when it does not ask for it, none while it asks
// for Cilium and the cluster does not serve it (Kubernetes NetworkPolicies keep the namespace
// isolated until it does).
func networkPolicyLayerUnused(g *graph.Graph, l layers) *Layer {
	switch {
	case g.NetworkPolicy != v1alpha1.NetworkPolicyCilium:
		return LayerCilium
	case l.on(LayerCilium):
		return LayerNetworkPolicy
	}
	return nil
}

var ciliumNetworkPolicyType = metav1.TypeMeta{APIVersion: cilium.GroupVersion.String(), Kind: "CiliumNetworkPolicy"}

// ciliumOf writes a namespace-wide NetworkPolicy, rule for rule, for Cilium.
func (c *Compilation) ciliumOf(np *networkingv1.NetworkPolicy) *cilium.CiliumNetworkPolicy {
	var in, eg []l4Rule
	for _, r := range np.Spec.Ingress {
		in = append(in, l4Rule{peers: r.From, ports: r.Ports})
	}
	for _, r := range np.Spec.Egress {
		eg = append(eg, l4Rule{peers: r.To, ports: r.Ports})
	}
	return c.ciliumPolicy(np.ObjectMeta, np.Spec.PodSelector.MatchLabels, in, eg)
}

// ciliumDNS lets every pod look names up; with external hosts among the callees, through Cilium's
// DNS proxy, which is how toFQDNs rules learn the hosts' addresses.
func (c *Compilation) ciliumDNS() *cilium.CiliumNetworkPolicy {
	p := c.ciliumOf(c.allowDNS())
	if slices.ContainsFunc(c.externalCallees(), func(s *graph.Service) bool { return len(s.External.Hosts) > 0 }) {
		for i := range p.Spec.Egress {
			for j := range p.Spec.Egress[i].ToPorts {
				p.Spec.Egress[i].ToPorts[j].Rules = &cilium.L7Rules{DNS: []cilium.PortRuleDNS{{MatchPattern: "*"}}}
			}
		}
	}
	return p
}

// ciliumPolicy is a CiliumNetworkPolicy selecting the pods with these labels (every pod of the
// namespace for none) with the rules; its metadata is the NetworkPolicy's it stands for.
func (c *Compilation) ciliumPolicy(meta metav1.ObjectMeta, pods map[string]string, in, eg []l4Rule) *cilium.CiliumNetworkPolicy {
	p := &cilium.CiliumNetworkPolicy{TypeMeta: ciliumNetworkPolicyType, ObjectMeta: meta,
		Spec: &cilium.Rule{EndpointSelector: metav1.LabelSelector{MatchLabels: maps.Clone(pods)}}}
	callers, callees := edgesByPeer(in, func(e *edge) string { return e.From }), edgesByPeer(eg, func(e *edge) string { return e.To })
	for _, r := range in {
		p.Spec.Ingress = append(p.Spec.Ingress, c.ciliumIngress(r, callers)...)
	}
	for _, r := range eg {
		p.Spec.Egress = append(p.Spec.Egress, c.ciliumEgress(r, callees)...)
	}
	return p
}

// edgesByPeer gathers the rules' edges by the peer at their other end: Cilium adds up the HTTP
// rules of one peer and port across rules, so they are decided over all of the peer's edges.
func edgesByPeer(rules []l4Rule, peer func(*edge) string) map[string][]*edge {
	out := map[string][]*edge{}
	for _, r := range rules {
		if r.edge == nil {
			continue
		}
		for _, e := range append([]*edge{r.edge}, r.more...) {
			out[peer(e)] = append(out[peer(e)], e)
		}
	}
	return out
}

// ciliumIngress is an ingress rule for Cilium (one per kind of peer): a caller of the graph is
// also its ServiceAccount; the callee's HTTP rules without a mesh.
func (c *Compilation) ciliumIngress(r l4Rule, callers map[string][]*edge) []cilium.IngressRule {
	var sa string
	var peerEdges []*edge
	if r.edge != nil {
		peerEdges = callers[r.edge.From]
		if from := c.service(r.edge.From); from.External == nil && from.Remote == nil {
			sa = from.ServiceAccount
		}
	}
	endpoints, cidrs := ciliumPeers(r.peers, sa)
	return byPeerKind(endpoints, cidrs, c.ciliumPorts(r, peerEdges), func(e []metav1.LabelSelector, cidrs []cilium.CIDRRule, ports []cilium.PortRule) cilium.IngressRule {
		return cilium.IngressRule{FromEndpoints: e, FromCIDRSet: cidrs, ToPorts: ports}
	})
}

// ciliumEgress is an egress rule for Cilium: an external host by name, the API server as the
// kube-apiserver entity, other peers as the NetworkPolicy has them; HTTP rules without a mesh for
// an external callee only (the callee's own policy carries them for a service).
func (c *Compilation) ciliumEgress(r l4Rule, callees map[string][]*edge) []cilium.EgressRule {
	var x *graph.External
	var peerEdges []*edge
	if r.edge != nil {
		x = c.service(r.edge.To).External
	}
	if x != nil {
		peerEdges = callees[r.edge.To]
	}
	ports := c.ciliumPorts(r, peerEdges)
	switch {
	case x != nil && len(x.Hosts) > 0:
		fqdns := make([]cilium.FQDNSelector, len(x.Hosts))
		for i, h := range x.Hosts {
			fqdns[i] = ciliumFQDN(h)
		}
		return []cilium.EgressRule{{ToFQDNs: fqdns, ToPorts: ports}}
	case x != nil && x.KubernetesAPI:
		return []cilium.EgressRule{{ToEntities: []string{cilium.EntityKubeAPIServer}, ToPorts: ports}}
	}
	endpoints, cidrs := ciliumPeers(r.peers, "")
	return byPeerKind(endpoints, cidrs, ports, func(e []metav1.LabelSelector, cidrs []cilium.CIDRRule, ports []cilium.PortRule) cilium.EgressRule {
		return cilium.EgressRule{ToEndpoints: e, ToCIDRSet: cidrs, ToPorts: ports}
	})
}

// byPeerKind makes one rule of pods and one of address ranges, for those there are: Cilium takes
// one kind of peer a rule.
func byPeerKind[R any](endpoints []metav1.LabelSelector, cidrs []cilium.CIDRRule, ports []cilium.PortRule,
	rule func([]metav1.LabelSelector, []cilium.CIDRRule, []cilium.PortRule) R) []R {
	var out []R
	if len(endpoints) > 0 {
		out = append(out, rule(endpoints, nil, ports))
	}
	if len(cidrs) > 0 {
		out = append(out, rule(nil, cidrs, slices.Clone(ports)))
	}
	return out
}

// ciliumFQDN matches a host: a name exactly, "*.example.com" any name below example.com at any
// depth, as Istio reads the wildcard (Cilium's "*." would match one label only).
func ciliumFQDN(host string) cilium.FQDNSelector {
	if rest, ok := strings.CutPrefix(host, "*."); ok {
		return cilium.FQDNSelector{MatchPattern: "**." + rest}
	}
	return cilium.FQDNSelector{MatchName: host}
}

// ciliumPeers turns NetworkPolicy peers into Cilium's endpoint selectors and address ranges. A
// selector that names no namespace selects pods of the policy's own, as in a NetworkPolicy; a
// namespace selector becomes Cilium's namespace labels, spanning every namespace that has them.
// sa, when set, narrows the pods to that ServiceAccount.
func ciliumPeers(peers []networkingv1.NetworkPolicyPeer, sa string) (endpoints []metav1.LabelSelector, cidrs []cilium.CIDRRule) {
	for _, p := range peers {
		if p.IPBlock != nil {
			cidrs = append(cidrs, cilium.CIDRRule{Cidr: p.IPBlock.CIDR, ExceptCIDRs: slices.Clone(p.IPBlock.Except)})
			continue
		}
		var s metav1.LabelSelector
		if p.PodSelector != nil {
			s = *p.PodSelector.DeepCopy()
		}
		if ns := p.NamespaceSelector; ns != nil {
			for k, v := range ns.MatchLabels {
				s.MatchLabels = put(s.MatchLabels, ciliumNamespaceKey(k), v)
			}
			for _, e := range ns.MatchExpressions {
				e = *e.DeepCopy()
				e.Key = ciliumNamespaceKey(e.Key)
				s.MatchExpressions = append(s.MatchExpressions, e)
			}
			_, named := s.MatchLabels[cilium.LabelNamespace]
			if !named && !slices.ContainsFunc(s.MatchExpressions, func(e metav1.LabelSelectorRequirement) bool { return e.Key == cilium.LabelNamespace }) {
				// Without it the selector would stay in the policy's own namespace.
				s.MatchExpressions = append(s.MatchExpressions, metav1.LabelSelectorRequirement{Key: cilium.LabelNamespace, Operator: metav1.LabelSelectorOpExists})
			}
		}
		if sa != "" {
			s.MatchLabels = put(s.MatchLabels, cilium.LabelServiceAccount, sa)
		}
		endpoints = append(endpoints, s)
	}
	return endpoints, cidrs
}

// ciliumNamespaceKey is the label Cilium gives a pod for its namespace's label key; a namespace's
// name is its own label.
func ciliumNamespaceKey(key string) string {
	if key == namespaceLabel {
		return cilium.LabelNamespace
	}
	return cilium.NamespaceLabelPrefix + key
}

func put(m map[string]string, k, v string) map[string]string {
	if m == nil {
		m = map[string]string{}
	}
	m[k] = v
	return m
}

// ciliumPorts are a rule's ports for Cilium. Without a mesh, each port the peer's edges (given
// for the side that carries layer 7) restrict to paths and methods takes those as HTTP rules.
func (c *Compilation) ciliumPorts(r l4Rule, peerEdges []*edge) []cilium.PortRule {
	l7 := !c.LayerOn(LayerIstio)
	var out []cilium.PortRule
	for _, p := range r.ports {
		pp := cilium.PortProtocol{Protocol: string(*p.Protocol)}
		if p.Port != nil {
			pp.Port = p.Port.String()
		}
		if p.EndPort != nil {
			pp.EndPort = *p.EndPort
		}
		var rules *cilium.L7Rules
		if http := ciliumHTTP(peerEdges, p); l7 && len(http) > 0 {
			rules = &cilium.L7Rules{HTTP: http}
		}
		// Ports with the same HTTP rules share a port rule.
		i := slices.IndexFunc(out, func(pr cilium.PortRule) bool { return equality.Semantic.DeepEqual(pr.Rules, rules) })
		if i < 0 {
			out = append(out, cilium.PortRule{Rules: rules})
			i = len(out) - 1
		}
		out[i].Ports = append(out[i].Ports, pp)
	}
	return out
}

// ciliumHTTP is what a peer's edges on one port let through at layer 7: every path with every
// method of each edge; none (anything) when one of them restricts neither, or when none has the
// port. An edge with paths or methods has only HTTP and gRPC ports (the graph checks it).
func ciliumHTTP(edges []*edge, port networkingv1.NetworkPolicyPort) []cilium.PortRuleHTTP {
	if port.Port == nil {
		return nil
	}
	var out []cilium.PortRuleHTTP
	for _, e := range edges {
		if !slices.ContainsFunc(e.Ports, func(p graph.Port) bool { return p.Port == *port.Port && p.L4() == *port.Protocol }) {
			continue
		}
		if len(e.Paths) == 0 && len(e.Methods) == 0 {
			return nil
		}
		paths, methods := e.Paths, e.Methods
		if len(paths) == 0 {
			paths = []string{"*"}
		}
		if len(methods) == 0 {
			methods = []string{""}
		}
		for _, p := range paths {
			for _, m := range methods {
				out = append(out, cilium.PortRuleHTTP{Path: CiliumPath(p), Method: m})
			}
		}
	}
	slices.SortFunc(out, func(a, b cilium.PortRuleHTTP) int {
		return strings.Compare(a.Path+" "+a.Method, b.Path+" "+b.Method)
	})
	return slices.Compact(out)
}

// CiliumPath is the regular expression Cilium's proxy matches against a request's whole path for
// a path of the graph, as Istio reads it: exact, "/prefix/*" or "*suffix" ("*" alone: any). Istio
// compares the path without its query string, Cilium the whole :path header, so the expression
// admits any query string after the path.
func CiliumPath(p string) string {
	const query = `(\?.*)?`
	switch {
	case p == "*":
		return ""
	case strings.HasPrefix(p, "*"):
		return ".*" + regexp.QuoteMeta(p[1:]) + query
	case strings.HasSuffix(p, "*"):
		return regexp.QuoteMeta(p[:len(p)-1]) + ".*"
	}
	return regexp.QuoteMeta(p) + query
}
