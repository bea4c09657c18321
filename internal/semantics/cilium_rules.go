package semantics

import (
	"fmt"
	"regexp"
	"slices"
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
	// Assumed are what the rule also requires and a check cannot see, taken as met: mutual
	// authentication, a TLS server name, an Envoy listener's own decision.
	Assumed []string
}

// Restricted tells whether layer-7 rules narrow what the rule admits.
func (a CiliumAdmission) Restricted() bool { return a.HTTP != nil || a.DNS != nil }

// ciliumPeers are a rule's peers, of one kind (Cilium refuses a rule with two), as
// mergeEndpointSelectors gathers them.
type ciliumPeers struct {
	endpoints []metav1.LabelSelector
	cidr      []string
	cidrSet   []cilium.CIDRRule
	entities  []string
	fqdns     []cilium.FQDNSelector
	// others are peers that are never a pod, an address outside the cluster or the API server as
	// modelled here (nodes, cloud groups), or that a check cannot resolve (Services).
	others int
	// empty is an empty list of endpoints, nodes, entities or ranges, written out: it selects
	// nothing, whatever the ports.
	empty bool
}

func newCiliumPeers(endpoints, nodes []metav1.LabelSelector, cidr []string, cidrSet []cilium.CIDRRule, entities []string) ciliumPeers {
	p := ciliumPeers{endpoints: endpoints, cidr: cidr, cidrSet: cidrSet, entities: entities, others: len(nodes)}
	p.empty = endpoints != nil && len(endpoints) == 0 || nodes != nil && len(nodes) == 0 || entities != nil && len(entities) == 0 ||
		cidr != nil && len(cidr) == 0 || cidrSet != nil && len(cidrSet) == 0
	return p
}

func (p ciliumPeers) named() bool {
	return len(p.endpoints)+len(p.cidr)+len(p.cidrSet)+len(p.entities)+len(p.fqdns)+p.others > 0
}

func ingressPeers(r cilium.IngressRule) ciliumPeers {
	p := newCiliumPeers(r.FromEndpoints, r.FromNodes, r.FromCIDR, r.FromCIDRSet, r.FromEntities)
	p.others += len(r.FromGroups)
	return p
}

func egressPeers(r cilium.EgressRule) ciliumPeers {
	p := newCiliumPeers(r.ToEndpoints, r.ToNodes, r.ToCIDR, r.ToCIDRSet, r.ToEntities)
	p.fqdns = r.ToFQDNs
	p.others += len(r.ToGroups) + len(r.ToServices)
	return p
}

// CiliumIngressAdmits tells whether an ingress rule of a policy scoped to a namespace ("" for a
// clusterwide one) admits a connection from a peer on a port of the pods the policy selects, and
// what it lets through.
func CiliumIngressAdmits(namespace string, r cilium.IngressRule, peer CiliumEndpoint, port CiliumPort) (CiliumAdmission, bool) {
	a, ok := ciliumRuleAdmits(namespace, ingressPeers(r), r.ToPorts, len(r.ICMPs), peer, port)
	return withAuthentication(a, r.Authentication), ok
}

// CiliumEgressAdmits tells whether an egress rule of a policy scoped to a namespace admits a
// connection of the pods the policy selects to a peer on a port, and what it lets through.
func CiliumEgressAdmits(namespace string, r cilium.EgressRule, peer CiliumEndpoint, port CiliumPort) (CiliumAdmission, bool) {
	a, ok := ciliumRuleAdmits(namespace, egressPeers(r), r.ToPorts, len(r.ICMPs), peer, port)
	return withAuthentication(a, r.Authentication), ok
}

// CiliumIngressDenies tells whether an ingress deny rule refuses a connection from a peer on a
// port: deny rules win over every allow rule, of either kind of policy.
func CiliumIngressDenies(namespace string, r cilium.IngressDenyRule, peer CiliumEndpoint, port CiliumPort) bool {
	p := newCiliumPeers(r.FromEndpoints, r.FromNodes, r.FromCIDR, r.FromCIDRSet, r.FromEntities)
	p.others += len(r.FromGroups)
	return ciliumRuleDenies(namespace, p, r.ToPorts, len(r.ICMPs), peer, port)
}

// CiliumEgressDenies tells whether an egress deny rule refuses a connection to a peer on a port.
func CiliumEgressDenies(namespace string, r cilium.EgressDenyRule, peer CiliumEndpoint, port CiliumPort) bool {
	p := newCiliumPeers(r.ToEndpoints, r.ToNodes, r.ToCIDR, r.ToCIDRSet, r.ToEntities)
	p.others += len(r.ToGroups) + len(r.ToServices)
	return ciliumRuleDenies(namespace, p, r.ToPorts, len(r.ICMPs), peer, port)
}

// ciliumRuleAdmits is a rule as pkg/policy/utils RulesToPolicyEntries and L4Filter build it: a rule
// without peers admits every peer on its ports (and nothing without ports: the empty rule {});
// peers without ports admit every port of TCP, UDP and SCTP; ICMP rules are ports no connection
// here uses.
func ciliumRuleAdmits(namespace string, peers ciliumPeers, ports []cilium.PortRule, icmps int, peer CiliumEndpoint, port CiliumPort) (CiliumAdmission, bool) {
	switch {
	case peers.empty, peers.named() && !ciliumPeerMatches(namespace, peers, peer):
		return CiliumAdmission{}, false
	case len(ports)+icmps == 0:
		return CiliumAdmission{}, peers.named()
	}
	return ciliumPortsAdmit(ports, port)
}

// ciliumRuleDenies is ciliumRuleAdmits for a deny rule, which has no layer-7 rules.
func ciliumRuleDenies(namespace string, peers ciliumPeers, ports []cilium.PortDenyRule, icmps int, peer CiliumEndpoint, port CiliumPort) bool {
	switch {
	case peers.empty, peers.named() && !ciliumPeerMatches(namespace, peers, peer):
		return false
	case len(ports)+icmps == 0:
		return peers.named()
	}
	return slices.ContainsFunc(ports, func(pr cilium.PortDenyRule) bool { return ciliumPortRuleMatches(pr.Ports, port) })
}

func withAuthentication(a CiliumAdmission, auth *cilium.Authentication) CiliumAdmission {
	if auth != nil && auth.Mode != "disabled" {
		a.Assumed = append(a.Assumed, fmt.Sprintf("mutual authentication (mode %s) succeeds", auth.Mode))
	}
	return a
}

// ciliumPeerMatches tells whether one of a rule's peers is the endpoint.
func ciliumPeerMatches(namespace string, peers ciliumPeers, e CiliumEndpoint) bool {
	for _, s := range peers.endpoints {
		if ciliumPeerSelectorMatches(namespace, s, e.Labels) {
			return true
		}
	}
	for _, c := range peers.cidrSet {
		if CiliumCIDRMatches(c, e) {
			return true
		}
	}
	for _, c := range peers.cidr {
		if CiliumCIDRMatches(cilium.CIDRRule{Cidr: c}, e) {
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
		if len(pr.ServerNames) > 0 {
			out.Assumed = append(out.Assumed, "the TLS server name is one of "+strings.Join(pr.ServerNames, ", "))
		}
		if l := pr.Listener; l != nil {
			out.Assumed = append(out.Assumed, fmt.Sprintf("Envoy listener %s admits it", l.Name))
		}
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
		out.HTTP, out.DNS = nil, nil
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
		if p.Protocol != "" && !strings.EqualFold(p.Protocol, "ANY") && !strings.EqualFold(p.Protocol, string(port.Protocol)) {
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
// A name has a letter: digits alone are a number, without running the expression.
var ianaServiceName = func() func(string) bool {
	re := regexp.MustCompile(`^([a-zA-Z0-9]-?)*[a-zA-Z](-?[a-zA-Z0-9])*$`)
	digits := func(s string) bool {
		return strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' }) < 0
	}
	return func(s string) bool { return len(s) > 0 && len(s) <= 15 && !digits(s) && re.MatchString(s) }
}()

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
