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
	if p.Spec == nil && len(p.Specs) == 0 {
		return []string{"neither spec nor specs is set"}
	}
	for r := range p.Rules() {
		rule := r.place()
		if !CiliumHasRules(r.Rule, Ingress) && !CiliumHasRules(r.Rule, Egress) {
			add("%s has no ingress, ingressDeny, egress or egressDeny rule", rule)
		}
		if r.NodeSelector != nil && p.Namespace != "" {
			add("%s: a namespaced policy selects pods only", rule.at("nodeSelector", -1))
		}
		refuseSelector(r.EndpointSelector, rule.at("endpointSelector", -1), add)
		for i, x := range r.Ingress {
			where := rule.at("ingress", i)
			refusePeers(where, "from", ingressPeers(x), x.FromRequires, x.FromNodes, add)
			refusePeerKinds(where, add, fromKinds(len(x.FromEndpoints), len(x.FromCIDR), len(x.FromCIDRSet), len(x.FromEntities), len(x.FromNodes), len(x.FromGroups)))
			refusePortRules(where, x.ToPorts, len(x.ICMPs), true, add)
		}
		for i, x := range r.IngressDeny {
			where := rule.at("ingressDeny", i)
			refusePeers(where, "from", newCiliumPeers(x.FromEndpoints, x.FromNodes, x.FromCIDR, x.FromCIDRSet, x.FromEntities), x.FromRequires, x.FromNodes, add)
			refusePeerKinds(where, add, fromKinds(len(x.FromEndpoints), len(x.FromCIDR), len(x.FromCIDRSet), len(x.FromEntities), len(x.FromNodes), len(x.FromGroups)))
			refuseDenyPorts(where, x.ToPorts, len(x.ICMPs), add)
		}
		for i, x := range r.Egress {
			where := rule.at("egress", i)
			refusePeers(where, "to", egressPeers(x), x.ToRequires, x.ToNodes, add)
			refusePeerKinds(where, add, toKinds(len(x.ToEndpoints), len(x.ToCIDR), len(x.ToCIDRSet), len(x.ToEntities), len(x.ToNodes), len(x.ToGroups), len(x.ToServices), len(x.ToFQDNs)))
			refusePortRules(where, x.ToPorts, len(x.ICMPs), false, add)
		}
		for i, x := range r.EgressDeny {
			where := rule.at("egressDeny", i)
			refusePeers(where, "to", newCiliumPeers(x.ToEndpoints, x.ToNodes, x.ToCIDR, x.ToCIDRSet, x.ToEntities), x.ToRequires, x.ToNodes, add)
			refusePeerKinds(where, add, toKinds(len(x.ToEndpoints), len(x.ToCIDR), len(x.ToCIDRSet), len(x.ToEntities), len(x.ToNodes), len(x.ToGroups), len(x.ToServices), 0))
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
	note := func(where place, what string, n int) {
		if n > 0 {
			out = append(out, where.String()+"."+what+" is not evaluated: it matches nothing here")
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
	for r := range p.Rules() {
		for i, x := range r.Ingress {
			where := r.place().at("ingress", i)
			note(where, "fromGroups", len(x.FromGroups))
			note(where, "fromCIDRSet's CIDR groups", cidrGroups(x.FromCIDRSet))
		}
		for i, x := range r.IngressDeny {
			where := r.place().at("ingressDeny", i)
			note(where, "fromGroups", len(x.FromGroups))
			note(where, "fromCIDRSet's CIDR groups", cidrGroups(x.FromCIDRSet))
		}
		for i, x := range r.Egress {
			where := r.place().at("egress", i)
			note(where, "toServices", len(x.ToServices))
			note(where, "toGroups", len(x.ToGroups))
			note(where, "toCIDRSet's CIDR groups", cidrGroups(x.ToCIDRSet))
		}
		for i, x := range r.EgressDeny {
			where := r.place().at("egressDeny", i)
			note(where, "toServices", len(x.ToServices))
			note(where, "toGroups", len(x.ToGroups))
			note(where, "toCIDRSet's CIDR groups", cidrGroups(x.ToCIDRSet))
		}
	}
	return out
}

type refusal func(format string, args ...any)

// place names a field of a policy ("spec.ingress[0].toPorts[1]"); it is written out only when a
// refusal names it, so that a policy Cilium accepts costs no formatting.
type place struct {
	names [6]string
	index [6]int // -1: not a list item
	n     int
}

// at is the place's child: a name, the item of a list when i >= 0.
func (f place) at(name string, i int) place {
	f.names[f.n], f.index[f.n] = name, i
	f.n++
	return f
}

func (f place) String() string {
	var b strings.Builder
	for i := range f.n {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(f.names[i])
		if f.index[i] >= 0 {
			fmt.Fprintf(&b, "[%d]", f.index[i])
		}
	}
	return b.String()
}

// refuseSelector checks operators and their values, as labels.ValidateLabelSelector.
func refuseSelector(s metav1.LabelSelector, where place, add refusal) {
	for j, e := range s.MatchExpressions {
		switch e.Operator {
		case metav1.LabelSelectorOpIn, metav1.LabelSelectorOpNotIn:
			if len(e.Values) == 0 {
				add("%s: %s needs values", where.at("matchExpressions", j), e.Operator)
			}
		case metav1.LabelSelectorOpExists, metav1.LabelSelectorOpDoesNotExist:
			if len(e.Values) > 0 {
				add("%s: %s takes no values", where.at("matchExpressions", j), e.Operator)
			}
		default:
			add("%s: unknown operator %q", where.at("matchExpressions", j), e.Operator)
		}
	}
}

// peerCount is how many peers a field of a rule lists.
type peerCount struct {
	field string
	n     int
}

// fromKinds and toKinds are a rule's counts of peers by field.
func fromKinds(endpoints, cidr, cidrSet, entities, nodes, groups int) []peerCount {
	return []peerCount{{"fromEndpoints", endpoints}, {"fromCIDR", cidr}, {"fromCIDRSet", cidrSet}, {"fromEntities", entities},
		{"fromNodes", nodes}, {"fromGroups", groups}}
}

func toKinds(endpoints, cidr, cidrSet, entities, nodes, groups, services, fqdns int) []peerCount {
	return []peerCount{{"toEndpoints", endpoints}, {"toCIDR", cidr}, {"toCIDRSet", cidrSet}, {"toEntities", entities},
		{"toNodes", nodes}, {"toGroups", groups}, {"toServices", services}, {"toFQDNs", fqdns}}
}

// refusePeerKinds refuses a rule with two kinds of peer ("combining X and Y is not supported
// yet").
func refusePeerKinds(where place, add refusal, counts []peerCount) {
	kinds := 0
	for _, c := range counts {
		if c.n > 0 {
			kinds++
		}
	}
	if kinds < 2 {
		return
	}
	var names []string
	for _, c := range counts {
		if c.n > 0 {
			names = append(names, c.field)
		}
	}
	add("%s combines %s: Cilium takes one kind of peer a rule", where, strings.Join(names, " and "))
}

func refusePeers(where place, dir string, ps ciliumPeers, requires []string, nodes []metav1.LabelSelector, add refusal) {
	if len(requires) > 0 {
		add("%s is deprecated: the schema allows no item", where.at(dir+"Requires", -1))
	}
	if len(nodes) > 0 {
		add("%s needs the agent's enable-node-selector-labels, off by default", where.at(dir+"Nodes", -1))
	}
	for j, s := range ps.endpoints {
		refuseSelector(s, where.at(dir+"Endpoints", j), add)
	}
	for _, c := range ps.cidr {
		if _, err := IstioCIDR(c); err != nil {
			add("%s: %q is not an address range", where, c)
		}
	}
	for _, c := range ps.cidrSet {
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
			add("%s: unsupported entity %q", where.at(dir+"Entities", j), e)
		}
	}
	for j, f := range ps.fqdns {
		refuseFQDN(where.at("toFQDNs", j), f, add)
	}
}

// refuseFQDN checks a toFQDNs selector or a DNS rule: one of matchName and matchPattern, in the
// characters each allows.
func refuseFQDN(where place, f cilium.FQDNSelector, add refusal) {
	switch {
	case f.MatchName != "" && f.MatchPattern != "":
		add("%s: only one of matchName or matchPattern is allowed", where)
	case f.MatchName != "" && (!dnsPatternChars.MatchString(f.MatchName) || strings.Contains(f.MatchName, "*")):
		add("%s %q: only 0-9, a-z, A-Z and ., -, _ are allowed", where.at("matchName", -1), f.MatchName)
	case f.MatchPattern != "" && !dnsPatternChars.MatchString(f.MatchPattern):
		add("%s %q: only 0-9, a-z, A-Z and ., -, _ and * are allowed", where.at("matchPattern", -1), f.MatchPattern)
	}
}

// ciliumProtocols are the protocols a port may name (pkg/policy/api L4Proto).
var ciliumProtocols = []string{"", "ANY", "TCP", "UDP", "SCTP", "ICMP", "ICMPV6", "VRRP", "IGMP", "GRE", "IPIP", "IPV6", "ESP", "AH"}

func ciliumProtocol(proto string) bool {
	for _, p := range ciliumProtocols {
		if strings.EqualFold(p, proto) {
			return true
		}
	}
	return false
}

// refusePorts checks a port rule's ports (PortProtocol.sanitize); zero tells whether one is 0.
func refusePorts(at place, ports []cilium.PortProtocol, add refusal) (zero bool) {
	for k, p := range ports {
		if !ciliumProtocol(p.Protocol) {
			add("%s %q is not a protocol Cilium knows", at.at("ports", k).at("protocol", -1), p.Protocol)
		}
		switch n, err := strconv.ParseUint(p.Port, 0, 16); {
		case p.Port == "":
			add("%s: port must be specified", at.at("ports", k))
		case ianaServiceName(p.Port):
		case err != nil:
			add("%s %q is neither a port number nor a port name", at.at("ports", k).at("port", -1), p.Port)
		default:
			zero = zero || n == 0
		}
	}
	return zero
}

// refusePortRules checks toPorts (PortRule.sanitize).
func refusePortRules(where place, rules []cilium.PortRule, icmps int, ingress bool, add refusal) {
	if icmps > 0 && len(rules) > 0 {
		add("%s: icmps cannot go with toPorts", where)
	}
	for j, pr := range rules {
		at := where.at("toPorts", j)
		zero := refusePorts(at, pr.Ports, add)
		hasL7 := pr.Rules != nil && len(pr.Rules.HTTP)+len(pr.Rules.DNS) > 0
		switch {
		case slices.Contains(pr.ServerNames, ""):
			add("%s: an empty server name", at.at("serverNames", -1))
		case len(pr.ServerNames) > 0 && hasL7 && pr.TerminatingTLS == nil:
			add("%s: serverNames with layer-7 rules need terminatingTLS", at)
		case pr.Listener != nil && ingress:
			add("%s is not allowed on ingress", at.at("listener", -1))
		case pr.Listener != nil && hasL7:
			add("%s cannot go with layer-7 rules", at.at("listener", -1))
		}
		if !hasL7 {
			continue
		}
		if len(pr.Rules.DNS) == 0 {
			for k, p := range pr.Ports {
				if !strings.EqualFold(p.Protocol, "TCP") {
					add("%s: HTTP rules apply to TCP only, not %q", at.at("ports", k), p.Protocol)
				}
			}
		}
		refuseL7(at, pr, zero, ingress, add)
	}
}

func refuseDenyPorts(where place, rules []cilium.PortDenyRule, icmps int, add refusal) {
	if icmps > 0 && len(rules) > 0 {
		add("%s: icmps cannot go with toPorts", where)
	}
	for j, pr := range rules {
		refusePorts(where.at("toPorts", j), pr.Ports, add)
	}
}

// refuseL7 checks a port rule's layer-7 rules (L7Rules.sanitize).
func refuseL7(at place, pr cilium.PortRule, zero, ingress bool, add refusal) {
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
		for _, f := range [...]struct{ name, expr string }{{"path", h.Path}, {"method", h.Method}, {"host", h.Host}} {
			if _, err := ciliumRegex(f.expr); err != nil {
				add("%s %q: %v", at.at("rules.http", k).at(f.name, -1), f.expr, err)
			}
		}
	}
	for k, d := range r.DNS {
		refuseFQDN(at.at("rules.dns", k), cilium.FQDNSelector(d), add)
	}
}
