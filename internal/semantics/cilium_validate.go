package semantics

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/servicegraph/servicegraph-operator/internal/cilium"
)

// CiliumRefusals lists what refuses a policy before it is enforced (the CRD's schema, the CNP's
// Parse and pkg/policy/api Rule.Sanitize with the agent's defaults), one message each, fields
// named as in the policy: no rule; a rule without ingress and egress rules, or with a
// nodeSelector in a namespaced policy; fromRequires and toRequires (deprecated, refused by the
// schema); selector operators and values; two kinds of peer in one rule; nodes (off by default);
// unknown entities; address ranges; toFQDNs names and patterns; ports and protocols; ICMP rules
// beside ports; layer-7 rules on ports that cannot carry them (HTTP on another protocol than TCP,
// DNS on ingress or without ports, any on port 0, with a listener or with server names but no
// TLS termination) and HTTP expressions that do not compile. A refused policy enforces nothing.
func CiliumRefusals(p CiliumPolicy) []string {
	var out []string
	add := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	if len(p.Rules) == 0 {
		return []string{"neither spec nor specs is set"}
	}
	for _, r := range p.Rules {
		if !CiliumHasRules(r.Rule, Ingress) && !CiliumHasRules(r.Rule, Egress) {
			add("%s has no ingress, ingressDeny, egress or egressDeny rule", r.Where)
		}
		if r.NodeSelector != nil && p.Namespace != "" {
			add("%s.nodeSelector: a namespaced policy selects pods only", r.Where)
		}
		refuseSelector(r.EndpointSelector, r.Where+".endpointSelector", add)
		for i, x := range r.Ingress {
			where := fmt.Sprintf("%s.ingress[%d]", r.Where, i)
			refusePeers(where, "from", ingressPeers(x), x.FromRequires, x.FromNodes, add)
			refusePeerKinds(where, add, peerKinds("from", len(x.FromEndpoints), len(x.FromCIDR), len(x.FromCIDRSet), len(x.FromEntities), len(x.FromNodes), len(x.FromGroups), 0, 0))
			refusePortRules(where, x.ToPorts, len(x.ICMPs), true, add)
		}
		for i, x := range r.IngressDeny {
			where := fmt.Sprintf("%s.ingressDeny[%d]", r.Where, i)
			refusePeers(where, "from", newCiliumPeers(x.FromEndpoints, x.FromNodes, x.FromCIDR, x.FromCIDRSet, x.FromEntities), x.FromRequires, x.FromNodes, add)
			refusePeerKinds(where, add, peerKinds("from", len(x.FromEndpoints), len(x.FromCIDR), len(x.FromCIDRSet), len(x.FromEntities), len(x.FromNodes), len(x.FromGroups), 0, 0))
			refuseDenyPorts(where, x.ToPorts, len(x.ICMPs), add)
		}
		for i, x := range r.Egress {
			where := fmt.Sprintf("%s.egress[%d]", r.Where, i)
			refusePeers(where, "to", egressPeers(x), x.ToRequires, x.ToNodes, add)
			refusePeerKinds(where, add, peerKinds("to", len(x.ToEndpoints), len(x.ToCIDR), len(x.ToCIDRSet), len(x.ToEntities), len(x.ToNodes), len(x.ToGroups), len(x.ToServices), len(x.ToFQDNs)))
			refusePortRules(where, x.ToPorts, len(x.ICMPs), false, add)
		}
		for i, x := range r.EgressDeny {
			where := fmt.Sprintf("%s.egressDeny[%d]", r.Where, i)
			refusePeers(where, "to", newCiliumPeers(x.ToEndpoints, x.ToNodes, x.ToCIDR, x.ToCIDRSet, x.ToEntities), x.ToRequires, x.ToNodes, add)
			refusePeerKinds(where, add, peerKinds("to", len(x.ToEndpoints), len(x.ToCIDR), len(x.ToCIDRSet), len(x.ToEntities), len(x.ToNodes), len(x.ToGroups), len(x.ToServices), 0))
			refuseDenyPorts(where, x.ToPorts, len(x.ICMPs), add)
		}
	}
	return out
}

// CiliumUnevaluated lists what of a policy a check cannot see, one message each: peers it cannot
// resolve (Services, nodes, cloud groups, CIDR groups) match no connection here; what rules
// require besides their peers and ports (mutual authentication, TLS server names, Envoy
// listeners) is taken as met (see CiliumAdmission.Assumed).
func CiliumUnevaluated(p CiliumPolicy) []string {
	var out []string
	note := func(where, what string, n int) {
		if n > 0 {
			out = append(out, where+"."+what+" is not evaluated: it matches nothing here")
		}
	}
	cidrGroups := func(set []cilium.CIDRRule) int {
		n := 0
		for _, c := range set {
			if c.CIDRGroupRef != "" || c.CIDRGroupSelector != nil {
				n++
			}
		}
		return n
	}
	for _, r := range p.Rules {
		for i, x := range r.Ingress {
			where := fmt.Sprintf("%s.ingress[%d]", r.Where, i)
			note(where, "fromGroups", len(x.FromGroups))
			note(where, "fromCIDRSet's CIDR groups", cidrGroups(x.FromCIDRSet))
		}
		for i, x := range r.IngressDeny {
			where := fmt.Sprintf("%s.ingressDeny[%d]", r.Where, i)
			note(where, "fromGroups", len(x.FromGroups))
			note(where, "fromCIDRSet's CIDR groups", cidrGroups(x.FromCIDRSet))
		}
		for i, x := range r.Egress {
			where := fmt.Sprintf("%s.egress[%d]", r.Where, i)
			note(where, "toServices", len(x.ToServices))
			note(where, "toGroups", len(x.ToGroups))
			note(where, "toCIDRSet's CIDR groups", cidrGroups(x.ToCIDRSet))
		}
		for i, x := range r.EgressDeny {
			where := fmt.Sprintf("%s.egressDeny[%d]", r.Where, i)
			note(where, "toServices", len(x.ToServices))
			note(where, "toGroups", len(x.ToGroups))
			note(where, "toCIDRSet's CIDR groups", cidrGroups(x.ToCIDRSet))
		}
	}
	return out
}

type refusal func(format string, args ...any)

// refuseSelector checks operators and their values, as labels.ValidateLabelSelector.
func refuseSelector(s metav1.LabelSelector, where string, add refusal) {
	for j, e := range s.MatchExpressions {
		switch e.Operator {
		case metav1.LabelSelectorOpIn, metav1.LabelSelectorOpNotIn:
			if len(e.Values) == 0 {
				add("%s.matchExpressions[%d]: %s needs values", where, j, e.Operator)
			}
		case metav1.LabelSelectorOpExists, metav1.LabelSelectorOpDoesNotExist:
			if len(e.Values) > 0 {
				add("%s.matchExpressions[%d]: %s takes no values", where, j, e.Operator)
			}
		default:
			add("%s.matchExpressions[%d]: unknown operator %q", where, j, e.Operator)
		}
	}
}

// peerCount is how many peers a field of a rule lists.
type peerCount struct {
	field string
	n     int
}

// peerKinds are a rule's counts of peers by field, from or to.
func peerKinds(dir string, endpoints, cidr, cidrSet, entities, nodes, groups, services, fqdns int) []peerCount {
	return []peerCount{{dir + "Endpoints", endpoints}, {dir + "CIDR", cidr}, {dir + "CIDRSet", cidrSet}, {dir + "Entities", entities},
		{dir + "Nodes", nodes}, {dir + "Groups", groups}, {"toServices", services}, {"toFQDNs", fqdns}}
}

// refusePeerKinds refuses a rule with two kinds of peer ("combining X and Y is not supported
// yet").
func refusePeerKinds(where string, add refusal, counts []peerCount) {
	var kinds []string
	for _, c := range counts {
		if c.n > 0 {
			kinds = append(kinds, c.field)
		}
	}
	if len(kinds) > 1 {
		add("%s combines %s: Cilium takes one kind of peer a rule", where, strings.Join(kinds, " and "))
	}
}

func refusePeers(where, dir string, ps ciliumPeers, requires []string, nodes []metav1.LabelSelector, add refusal) {
	if len(requires) > 0 {
		add("%s.%sRequires is deprecated: the schema allows no item", where, dir)
	}
	if len(nodes) > 0 {
		add("%s.%sNodes needs the agent's enable-node-selector-labels, off by default", where, dir)
	}
	for j, s := range ps.endpoints {
		refuseSelector(s, fmt.Sprintf("%s.%sEndpoints[%d]", where, dir, j), add)
	}
	for _, c := range ps.cidrs {
		if c.CIDRGroupRef != "" || c.CIDRGroupSelector != nil {
			continue
		}
		if _, err := IstioCIDR(c.Cidr); err != nil {
			add("%s: %q is not an address range", where, c.Cidr)
		}
		for _, x := range c.ExceptCIDRs {
			if _, err := netip.ParsePrefix(x); err != nil {
				add("%s: except %q is not an address range", where, x)
			}
		}
	}
	for j, e := range ps.entities {
		if !validEntity(e) {
			add("%s.%sEntities[%d]: unsupported entity %q", where, dir, j, e)
		}
	}
	for j, f := range ps.fqdns {
		refuseFQDN(fmt.Sprintf("%s.toFQDNs[%d]", where, j), f, add)
	}
}

// refuseFQDN checks a toFQDNs selector or a DNS rule: one of matchName and matchPattern, in the
// characters each allows.
func refuseFQDN(where string, f cilium.FQDNSelector, add refusal) {
	switch {
	case f.MatchName != "" && f.MatchPattern != "":
		add("%s: only one of matchName or matchPattern is allowed", where)
	case f.MatchName != "" && (!dnsPatternChars.MatchString(f.MatchName) || strings.Contains(f.MatchName, "*")):
		add("%s.matchName %q: only 0-9, a-z, A-Z and ., -, _ are allowed", where, f.MatchName)
	case f.MatchPattern != "" && !dnsPatternChars.MatchString(f.MatchPattern):
		add("%s.matchPattern %q: only 0-9, a-z, A-Z and ., -, _ and * are allowed", where, f.MatchPattern)
	}
}

// ciliumProtocols are the protocols a port may name (pkg/policy/api L4Proto).
var ciliumProtocols = []string{"", "ANY", "TCP", "UDP", "SCTP", "ICMP", "ICMPV6", "VRRP", "IGMP", "GRE", "IPIP", "IPV6", "ESP", "AH"}

// refusePorts checks a port rule's ports (PortProtocol.sanitize); zero tells whether one is 0.
func refusePorts(at string, ports []cilium.PortProtocol, add refusal) (zero bool) {
	for k, p := range ports {
		if !slices.Contains(ciliumProtocols, strings.ToUpper(p.Protocol)) {
			add("%s.ports[%d].protocol %q is not a protocol Cilium knows", at, k, p.Protocol)
		}
		switch n, err := strconv.ParseUint(p.Port, 0, 16); {
		case p.Port == "":
			add("%s.ports[%d]: port must be specified", at, k)
		case ianaServiceName(p.Port):
		case err != nil:
			add("%s.ports[%d].port %q is neither a port number nor a port name", at, k, p.Port)
		default:
			zero = zero || n == 0
		}
	}
	return zero
}

// refusePortRules checks toPorts (PortRule.sanitize).
func refusePortRules(where string, rules []cilium.PortRule, icmps int, ingress bool, add refusal) {
	if icmps > 0 && len(rules) > 0 {
		add("%s: icmps cannot go with toPorts", where)
	}
	for j, pr := range rules {
		at := fmt.Sprintf("%s.toPorts[%d]", where, j)
		zero := refusePorts(at, pr.Ports, add)
		hasL7 := pr.Rules != nil && len(pr.Rules.HTTP)+len(pr.Rules.DNS) > 0
		switch {
		case slices.Contains(pr.ServerNames, ""):
			add("%s.serverNames: an empty server name", at)
		case len(pr.ServerNames) > 0 && hasL7 && pr.TerminatingTLS == nil:
			add("%s: serverNames with layer-7 rules need terminatingTLS", at)
		case pr.Listener != nil && ingress:
			add("%s.listener is not allowed on ingress", at)
		case pr.Listener != nil && hasL7:
			add("%s.listener cannot go with layer-7 rules", at)
		}
		if !hasL7 {
			continue
		}
		if len(pr.Rules.DNS) == 0 {
			for k, p := range pr.Ports {
				if strings.ToUpper(p.Protocol) != "TCP" {
					add("%s.ports[%d]: HTTP rules apply to TCP only, not %q", at, k, p.Protocol)
				}
			}
		}
		refuseL7(at, pr, zero, ingress, add)
	}
}

func refuseDenyPorts(where string, rules []cilium.PortDenyRule, icmps int, add refusal) {
	if icmps > 0 && len(rules) > 0 {
		add("%s: icmps cannot go with toPorts", where)
	}
	for j, pr := range rules {
		refusePorts(fmt.Sprintf("%s.toPorts[%d]", where, j), pr.Ports, add)
	}
}

// refuseL7 checks a port rule's layer-7 rules (L7Rules.sanitize).
func refuseL7(at string, pr cilium.PortRule, zero, ingress bool, add refusal) {
	r := pr.Rules
	switch {
	case zero:
		add("%s: layer-7 rules cannot be used on port 0", at)
	case len(r.HTTP) > 0 && len(r.DNS) > 0:
		add("%s: HTTP and DNS rules in one port rule", at)
	case len(r.DNS) > 0 && ingress:
		add("%s: DNS rules are not allowed on ingress", at)
	case len(r.DNS) > 0 && len(pr.Ports) == 0:
		add("%s: port 53 must be specified for DNS rules", at)
	}
	for k, h := range r.HTTP {
		for _, f := range []struct{ name, expr string }{{"path", h.Path}, {"method", h.Method}, {"host", h.Host}} {
			if _, err := ciliumRegex(f.expr); err != nil {
				add("%s.rules.http[%d].%s %q: %v", at, k, f.name, f.expr, err)
			}
		}
	}
	for k, d := range r.DNS {
		refuseFQDN(fmt.Sprintf("%s.rules.dns[%d]", at, k), cilium.FQDNSelector(d), add)
	}
}
