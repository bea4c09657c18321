package semantics

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/servicegraph/servicegraph-operator/internal/cilium"
)

// CiliumRefusals lists what Cilium's agent refuses in a CiliumNetworkPolicy (pkg/policy/api
// Rule.Sanitize and the CNP's Parse), one message each, fields named as in the policy: a policy
// without spec, or without ingress and egress rules; selector operators and values; two kinds of
// peer in one rule; unknown entities; address ranges; toFQDNs names and patterns; ports and
// protocols; layer-7 rules on ports that cannot carry them (HTTP on another protocol than TCP, DNS
// on ingress or without ports, any on port 0) and HTTP expressions that do not compile. The agent
// does not enforce a policy it refuses: none of its rules applies.
func CiliumRefusals(p *cilium.CiliumNetworkPolicy) []string {
	var out []string
	add := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	if p.Spec == nil {
		return []string{"spec is missing"}
	}
	if len(p.Spec.Ingress) == 0 && len(p.Spec.Egress) == 0 {
		add("spec has no ingress and no egress rule")
	}
	refuseSelector(p.Spec.EndpointSelector, "spec.endpointSelector", add)
	for i, r := range p.Spec.Ingress {
		where := fmt.Sprintf("spec.ingress[%d]", i)
		refusePeerKinds(where, add, map[string]int{"fromEndpoints": len(r.FromEndpoints), "fromCIDRSet": len(r.FromCIDRSet), "fromEntities": len(r.FromEntities)})
		refusePeers(where, "from", ciliumPeers{endpoints: r.FromEndpoints, cidrs: r.FromCIDRSet, entities: r.FromEntities}, add)
		refusePortRules(where, r.ToPorts, true, add)
	}
	for i, r := range p.Spec.Egress {
		where := fmt.Sprintf("spec.egress[%d]", i)
		refusePeerKinds(where, add, map[string]int{"toEndpoints": len(r.ToEndpoints), "toCIDRSet": len(r.ToCIDRSet), "toEntities": len(r.ToEntities), "toFQDNs": len(r.ToFQDNs)})
		refusePeers(where, "to", ciliumPeers{endpoints: r.ToEndpoints, cidrs: r.ToCIDRSet, entities: r.ToEntities, fqdns: r.ToFQDNs}, add)
		refusePortRules(where, r.ToPorts, false, add)
	}
	return out
}

type refusal func(format string, args ...any)

// selector checks operators and their values, as labels.ValidateLabelSelector.
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

// peerKinds refuses a rule with two kinds of peer ("combining X and Y is not supported yet").
func refusePeerKinds(where string, add refusal, counts map[string]int) {
	var kinds []string
	for _, k := range []string{"fromEndpoints", "fromCIDRSet", "fromEntities", "toEndpoints", "toCIDRSet", "toEntities", "toFQDNs"} {
		if counts[k] > 0 {
			kinds = append(kinds, k)
		}
	}
	if len(kinds) > 1 {
		add("%s combines %s: Cilium takes one kind of peer a rule", where, strings.Join(kinds, " and "))
	}
}

func refusePeers(where, dir string, ps ciliumPeers, add refusal) {
	for j, s := range ps.endpoints {
		refuseSelector(s, fmt.Sprintf("%s.%sEndpoints[%d]", where, dir, j), add)
	}
	for j, c := range ps.cidrs {
		if _, err := IstioCIDR(c.Cidr); err != nil {
			add("%s.%sCIDRSet[%d].cidr %q is not an address range", where, dir, j, c.Cidr)
		}
		for _, x := range c.ExceptCIDRs {
			if _, err := netip.ParsePrefix(x); err != nil {
				add("%s.%sCIDRSet[%d].except %q is not an address range", where, dir, j, x)
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

// fqdn checks a toFQDNs selector or a DNS rule: one of matchName and matchPattern, in the
// characters each allows.
func refuseFQDN(where string, f cilium.FQDNSelector, add refusal) {
	switch {
	case f.MatchName != "" && f.MatchPattern != "":
		add("%s: only one of matchName or matchPattern is allowed", where)
	case f.MatchName != "" && !dnsNameChars(f.MatchName):
		add("%s.matchName %q: only 0-9, a-z, A-Z and ., -, _ are allowed", where, f.MatchName)
	case f.MatchPattern != "" && !dnsPatternChars.MatchString(f.MatchPattern):
		add("%s.matchPattern %q: only 0-9, a-z, A-Z and ., -, _ and * are allowed", where, f.MatchPattern)
	}
}

func dnsNameChars(s string) bool {
	return dnsPatternChars.MatchString(s) && !strings.Contains(s, "*")
}

// ciliumProtocols are the protocols a port may name (pkg/policy/api L4Proto).
var ciliumProtocols = map[string]bool{"": true, "ANY": true, "TCP": true, "UDP": true, "SCTP": true, "ICMP": true,
	"ICMPV6": true, "VRRP": true, "IGMP": true, "GRE": true, "IPIP": true, "IPV6": true, "ESP": true, "AH": true}

// portRules checks toPorts (PortRule.sanitize).
func refusePortRules(where string, rules []cilium.PortRule, ingress bool, add refusal) {
	for j, pr := range rules {
		at := fmt.Sprintf("%s.toPorts[%d]", where, j)
		zero := false
		for k, p := range pr.Ports {
			proto := strings.ToUpper(p.Protocol)
			if !ciliumProtocols[proto] {
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
			if pr.Rules != nil && len(pr.Rules.HTTP) > 0 && len(pr.Rules.DNS) == 0 && proto != "TCP" {
				add("%s.ports[%d]: HTTP rules apply to TCP only, not %q", at, k, p.Protocol)
			}
		}
		refuseL7(at, pr, zero, ingress, add)
	}
}

// l7 checks a port rule's layer-7 rules (L7Rules.sanitize).
func refuseL7(at string, pr cilium.PortRule, zero, ingress bool, add refusal) {
	r := pr.Rules
	if r == nil || len(r.HTTP)+len(r.DNS) == 0 {
		return
	}
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
		for _, f := range []struct{ name, expr string }{{"path", h.Path}, {"method", h.Method}} {
			if _, err := ciliumRegex(f.expr); err != nil {
				add("%s.rules.http[%d].%s %q: %v", at, k, f.name, f.expr, err)
			}
		}
	}
	for k, d := range r.DNS {
		refuseFQDN(fmt.Sprintf("%s.rules.dns[%d]", at, k), cilium.FQDNSelector(d), add)
	}
}
