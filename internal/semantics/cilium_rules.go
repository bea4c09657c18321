package semantics

import (
	"regexp"
	"strconv"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/servicegraph/servicegraph-operator/internal/cilium"
)

// CiliumPort is a connection's destination port as a rule sees it: its number, the destination
// pod's name for it ("" for none: a named port of a rule matches the destination's port of that
// name), and its protocol.
type CiliumPort struct {
	Number   int32
	Name     string
	Protocol corev1.Protocol
}

// CiliumAdmission is what a rule that admits a connection lets through: everything, or, when it
// has layer-7 rules on the port, only the HTTP requests (DNS lookups) that one of them matches.
type CiliumAdmission struct {
	HTTP []cilium.PortRuleHTTP
	DNS  []cilium.PortRuleDNS
}

// Restricted tells whether layer-7 rules narrow what the rule admits.
func (a CiliumAdmission) Restricted() bool { return a.HTTP != nil || a.DNS != nil }

// ciliumPeers are a rule's peers, of one kind (Cilium refuses a rule with two).
type ciliumPeers struct {
	endpoints []metav1.LabelSelector
	cidrs     []cilium.CIDRRule
	entities  []string
	fqdns     []cilium.FQDNSelector
}

// CiliumIngressAdmits tells whether an ingress rule of a policy in a namespace admits a connection
// from a peer on a port of the pods the policy selects, and what it lets through.
func CiliumIngressAdmits(namespace string, r cilium.IngressRule, peer CiliumEndpoint, port CiliumPort) (CiliumAdmission, bool) {
	return ciliumRuleAdmits(namespace, ciliumPeers{endpoints: r.FromEndpoints, cidrs: r.FromCIDRSet, entities: r.FromEntities}, r.ToPorts, peer, port)
}

// CiliumEgressAdmits tells whether an egress rule of a policy in a namespace admits a connection
// of the pods the policy selects to a peer on a port, and what it lets through.
func CiliumEgressAdmits(namespace string, r cilium.EgressRule, peer CiliumEndpoint, port CiliumPort) (CiliumAdmission, bool) {
	return ciliumRuleAdmits(namespace, ciliumPeers{endpoints: r.ToEndpoints, cidrs: r.ToCIDRSet, entities: r.ToEntities, fqdns: r.ToFQDNs}, r.ToPorts, peer, port)
}

// ciliumRuleAdmits is a rule as pkg/policy/utils RulesToPolicyEntries and L4Filter build it: a rule
// without peers admits every peer on its ports (and nothing without ports: the empty rule {});
// peers without ports admit every port of TCP, UDP and SCTP; an empty list of endpoints, ranges
// or entities (written, not left out) selects nothing.
func ciliumRuleAdmits(namespace string, peers ciliumPeers, ports []cilium.PortRule, peer CiliumEndpoint, port CiliumPort) (CiliumAdmission, bool) {
	if peers.endpoints != nil && len(peers.endpoints) == 0 || peers.cidrs != nil && len(peers.cidrs) == 0 ||
		peers.entities != nil && len(peers.entities) == 0 {
		return CiliumAdmission{}, false
	}
	named := len(peers.endpoints)+len(peers.cidrs)+len(peers.entities)+len(peers.fqdns) > 0
	switch {
	case named && !ciliumPeerMatches(namespace, peers, peer):
		return CiliumAdmission{}, false
	case len(ports) == 0:
		return CiliumAdmission{}, named
	}
	return ciliumPortsAdmit(ports, port)
}

// ciliumPeerMatches tells whether one of a rule's peers is the endpoint.
func ciliumPeerMatches(namespace string, peers ciliumPeers, e CiliumEndpoint) bool {
	for _, s := range peers.endpoints {
		if CiliumSelectorMatches(ciliumPeerSelector(namespace, s), e.Labels) {
			return true
		}
	}
	for _, c := range peers.cidrs {
		if CiliumCIDRMatches(c, e) {
			return true
		}
	}
	for _, entity := range peers.entities {
		if CiliumEntityMatches(entity, e) {
			return true
		}
	}
	for _, f := range peers.fqdns {
		if e.world() && CiliumFQDNMatches(f, e.Host) {
			return true
		}
	}
	return false
}

// ciliumPortsAdmit tells whether a rule's toPorts admit the port, and with which layer-7 rules.
// Port rules that match the port add up: one without layer-7 rules lets everything through.
func ciliumPortsAdmit(rules []cilium.PortRule, port CiliumPort) (CiliumAdmission, bool) {
	var out CiliumAdmission
	admitted, open := false, false
	for _, pr := range rules {
		if !ciliumPortRuleMatches(pr.Ports, port) {
			continue
		}
		admitted = true
		http, dns := ciliumL7(pr.Rules, port.Protocol)
		switch {
		case http != nil:
			out.HTTP = append(out.HTTP, http...)
		case dns != nil:
			out.DNS = append(out.DNS, dns...)
		default:
			open = true
		}
	}
	if open {
		return CiliumAdmission{}, admitted
	}
	return out, admitted
}

// ciliumL7 are a port rule's layer-7 rules that apply over a protocol: HTTP over TCP only (Cilium's
// proxy parses no other), DNS over any.
func ciliumL7(r *cilium.L7Rules, protocol corev1.Protocol) ([]cilium.PortRuleHTTP, []cilium.PortRuleDNS) {
	switch {
	case r == nil:
		return nil, nil
	case len(r.DNS) > 0:
		return nil, r.DNS
	case len(r.HTTP) > 0 && protocol == corev1.ProtocolTCP:
		return r.HTTP, nil
	}
	return nil, nil
}

// ciliumPortRuleMatches tells whether one of a port rule's ports is the port: its protocol (none
// or ANY: TCP, UDP and SCTP) and its number ("0": any), range (port to endPort) or name (an IANA
// service name, compared without case).
func ciliumPortRuleMatches(ports []cilium.PortProtocol, port CiliumPort) bool {
	for _, p := range ports {
		if proto := strings.ToUpper(p.Protocol); proto != "" && proto != "ANY" && proto != string(port.Protocol) {
			continue
		}
		if ianaServiceName(p.Port) {
			if port.Name != "" && strings.EqualFold(p.Port, port.Name) {
				return true
			}
			continue
		}
		n, err := strconv.ParseUint(p.Port, 0, 16)
		switch {
		case err != nil:
		case n == 0:
			return true
		case p.EndPort > int32(n):
			if int32(n) <= port.Number && port.Number <= p.EndPort {
				return true
			}
		case int32(n) == port.Number:
			return true
		}
	}
	return false
}

// ianaServiceName is pkg/iana IsSvcName: a port name, as opposed to a number ("0x10" is a name).
var ianaServiceName = func() func(string) bool {
	re := regexp.MustCompile(`^([a-zA-Z0-9]-?)*[a-zA-Z](-?[a-zA-Z0-9])*$`)
	return func(s string) bool { return len(s) > 0 && len(s) <= 15 && re.MatchString(s) }
}()

// CiliumHTTPMatches tells whether an HTTP rule matches a request: its path and method regular
// expressions (RE2, as Envoy's safe_regex) each match the whole value (the path with its query
// string, as the :path header carries it); an empty one matches any.
func CiliumHTTPMatches(rule cilium.PortRuleHTTP, path, method string) bool {
	return ciliumRegexMatches(rule.Path, path) && ciliumRegexMatches(rule.Method, method)
}

func ciliumRegexMatches(expr, s string) bool {
	if expr == "" {
		return true
	}
	re, err := ciliumRegex("^(?:" + expr + ")$")
	return err == nil && re.MatchString(s)
}

// CiliumFQDNMatches tells whether a toFQDNs selector (or a DNS rule) matches a DNS name, without
// case and with or without its trailing dot (pkg/policy/api FQDNSelector.ToRegex): matchName
// exactly; matchPattern with "*" for any run of characters valid in a label (no dot), a leading
// "**." for one or more whole labels, and "*" alone for every name.
func CiliumFQDNMatches(sel cilium.FQDNSelector, name string) bool {
	if name == "" {
		return false
	}
	pattern := ciliumFQDN(sel.MatchName)
	if sel.MatchName == "" {
		pattern = sel.MatchPattern
		if !dnsWildcard.MatchString(pattern) {
			pattern = ciliumFQDN(pattern)
		}
	}
	if !dnsPatternChars.MatchString(pattern) {
		return false
	}
	re, err := ciliumRegex(ciliumFQDNRegex(pattern))
	return err == nil && re.MatchString(ciliumFQDN(name))
}

// CiliumDNSMatches tells whether a DNS rule admits a lookup of a name (see CiliumFQDNMatches).
func CiliumDNSMatches(rule cilium.PortRuleDNS, name string) bool {
	return CiliumFQDNMatches(cilium.FQDNSelector(rule), name)
}

var (
	dnsWildcard      = regexp.MustCompile(`^[*]{1,}[.]?$`)
	dnsPatternChars  = regexp.MustCompile(`^[-a-zA-Z0-9_.*]+$`)
	dnsSubdomainsAny = regexp.MustCompile(`^[*]{2,}\[\.\]`)
	dnsStars         = regexp.MustCompile(`[*]{1,}`)
)

// ciliumFQDN is dns.FQDN: lower case, with the trailing dot.
func ciliumFQDN(name string) string {
	name = strings.ToLower(name)
	if strings.HasSuffix(name, ".") {
		return name
	}
	return name + "."
}

// ciliumFQDNRegex is matchpattern.ToAnchoredRegexp.
func ciliumFQDNRegex(pattern string) string {
	const dnsChars = "[-a-zA-Z0-9_]"
	pattern = strings.ToLower(strings.TrimSpace(pattern))
	if dnsWildcard.MatchString(pattern) {
		return "(^(" + dnsChars + "+[.])+$)|(^[.]$)"
	}
	pattern = strings.ReplaceAll(pattern, ".", "[.]")
	pattern = dnsSubdomainsAny.ReplaceAllString(pattern, "("+dnsChars+"+([.]"+dnsChars+"+){0,})[.]")
	pattern = dnsStars.ReplaceAllString(pattern, dnsChars+"*")
	return "^" + pattern + "$"
}

var ciliumRegexps sync.Map // string → *regexp.Regexp or error

// ciliumRegex compiles an expression once.
func ciliumRegex(expr string) (*regexp.Regexp, error) {
	if v, ok := ciliumRegexps.Load(expr); ok {
		if re, ok := v.(*regexp.Regexp); ok {
			return re, nil
		}
		return nil, v.(error)
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		ciliumRegexps.Store(expr, err)
		return nil, err
	}
	ciliumRegexps.Store(expr, re)
	return re, nil
}
