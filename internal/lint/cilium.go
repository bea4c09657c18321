package lint

import (
	"fmt"
	"slices"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/servicegraph/servicegraph-operator/internal/cilium"
	"github.com/servicegraph/servicegraph-operator/internal/object"
	"github.com/servicegraph/servicegraph-operator/internal/semantics"
)

// CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy rules: the holes of the NetworkPolicy
// rules, as Cilium v1.20 reads a policy (pkg/policy/utils/parserules.go, pkg/policy/rule.go,
// pkg/k8s/apis/cilium.io/utils/utils.go), with the same severities.
var (
	ruleCiliumFromAll = &Rule{"CNP001", SeverityError,
		"a Cilium ingress rule admits every source, in the cluster and out: fromEntities all, or toPorts without a from… peer (Cilium's layer-4 wildcard)",
		"name the sources: fromEndpoints (with k8s:io.kubernetes.pod.namespace for another namespace), fromCIDRSet or fromEntities; ingress: [{}] admits nothing"}
	ruleCiliumToAll = &Rule{"CNP002", SeverityWarning,
		"a Cilium egress rule allows every destination, in the cluster and out: toEntities all, or toPorts without a to… peer, on ports other than DNS",
		"name the destinations: toEndpoints, toFQDNs (with a DNS rule), toCIDRSet or toEntities such as kube-apiserver"}
	ruleCiliumWorld = &Rule{"CNP003", SeverityError,
		"a Cilium ingress rule admits anything outside the cluster: fromEntities world (world-ipv4, world-ipv6), or fromCIDR/fromCIDRSet covering half or more of all addresses (0.0.0.0/0, ::/0, ...), except ranges or not",
		"narrow it to the addresses that must connect, such as a load balancer's range in fromCIDRSet"}
	ruleCiliumEveryPod = &Rule{"CNP004", SeverityError,
		"a Cilium ingress rule admits every pod of every namespace on every port: fromEntities cluster, a fromEndpoints selector without pod labels whose namespace key only exists or only excludes, or fromEndpoints: [{}] in a clusterwide policy",
		"select the namespaces that must connect (k8s:io.kubernetes.pod.namespace: NAME) and their pods' labels"}
	ruleCiliumEveryPodOnPorts = &Rule{"CNP005", SeverityWarning,
		"a Cilium ingress rule admits every pod of every namespace (as CNP004) on the ports it lists",
		"select the namespaces that must connect (k8s:io.kubernetes.pod.namespace: NAME) and their pods' labels; a metrics port a ServiceMonitor, PodMonitor or prometheus.io/port names is a note"}
	ruleCiliumEgressAnywhere = &Rule{"CNP006", SeverityWarning,
		"a Cilium egress rule allows anything outside the cluster (toEntities world, toCIDR/toCIDRSet covering half or more of all addresses) or every pod of every namespace (toEntities cluster, a toEndpoints selector as CNP004's), on ports other than DNS",
		"name the destinations: toFQDNs for names outside, toCIDRSet for their ranges, toEndpoints with a namespace and labels"}
	ruleCiliumSelectsEveryPod = &Rule{"CNP007", SeverityWarning,
		"a Cilium policy for every pod of its namespace (endpointSelector: {}) admits addresses (fromCIDR, fromCIDRSet) or the world: whatever they are, they reach every workload",
		"select the pods that must be reached with endpointSelector.matchLabels"}
	ruleCiliumFQDNWithoutDNS = &Rule{"CNP008", SeverityWarning,
		"toFQDNs where no DNS rule (toPorts rules: dns) of the input's Cilium policies for the same pods lets Cilium's DNS proxy see the names' lookups: Cilium learns their addresses only from lookups it sees, so the rule allows nothing",
		"add an egress rule to the cluster DNS on port 53 with rules: {dns: [{matchPattern: \"*\"}]} (toEndpoints k8s:io.kubernetes.pod.namespace: kube-system, k8s:k8s-app: kube-dns)"}
	ruleCiliumNoDefaultDeny = &Rule{"CNP009", SeverityWarning,
		"a namespace has CiliumNetworkPolicies but none selects every pod for ingress: pods no policy selects accept all traffic",
		"add a CiliumNetworkPolicy with endpointSelector: {} and ingress: [{}] (or a default-deny NetworkPolicy, or a ServiceGraph)"}
	ruleCiliumRefused = &Rule{"CNP010", SeverityError,
		"the API server or Cilium's agent refuses it, and none of its rules is enforced: no rule, a rule without sections, fromRequires, two kinds of peer in one rule, a bad selector, entity, CIDR, port, protocol or FQDN, a layer-7 rule where it cannot apply",
		"fix the field the message names; the agent reports its refusal only in the policy's status"}
)

// ciliumPolicy is a CiliumNetworkPolicy or a CiliumClusterwideNetworkPolicy as lint reads it: its
// rules, spec first, then specs.
type ciliumPolicy struct {
	namespace string
	// clusterwide: selectors that name no namespace select pods of every namespace.
	clusterwide bool
	rules       []ciliumSpec
	// agent is the policy as internal/semantics reads it, for what refuses it.
	agent semantics.CiliumPolicy
}

// ciliumSpec is one rule of a policy and where it is ("spec", "specs[1]").
type ciliumSpec struct {
	at   string
	rule *cilium.Rule
}

func asCiliumPolicy(obj object.Object) (*ciliumPolicy, bool) {
	var spec *cilium.Rule
	var specs []cilium.Rule
	p := &ciliumPolicy{namespace: obj.GetNamespace()}
	switch o := obj.(type) {
	case *cilium.CiliumNetworkPolicy:
		spec, specs, p.agent = o.Spec, o.Specs, semantics.CiliumPolicyOf(o)
	case *cilium.CiliumClusterwideNetworkPolicy:
		spec, specs, p.clusterwide, p.namespace, p.agent = o.Spec, o.Specs, true, "", semantics.CiliumClusterwidePolicyOf(o)
	default:
		return nil, false
	}
	if spec != nil {
		p.rules = append(p.rules, ciliumSpec{"spec", spec})
	}
	for i := range specs {
		p.rules = append(p.rules, ciliumSpec{fmt.Sprintf("specs[%d]", i), &specs[i]})
	}
	return p, true
}

// ciliumAllow is one allow rule of either direction, read for whom it lets through.
type ciliumAllow struct {
	spec   ciliumSpec
	egress bool
	index  int
	// endpoints, blocks (fromCIDR and fromCIDRSet) and entities are the peers lint judges.
	endpoints []metav1.LabelSelector
	blocks    []*networkingv1.IPBlock
	entities  []string
	// peers: some peer is named. none: a peer list is given empty, so the rule selects no one.
	peers, none bool
	// ports are toPorts' ports (none listed: every port); icmp: the rule has only ICMP types.
	ports []networkingv1.NetworkPolicyPort
	icmp  bool
	// nothing: the rule admits nothing (no peer and no port, or port rules without ports).
	nothing bool
	fqdns   []cilium.FQDNSelector
	dns     []cilium.PortRuleDNS
	// worldDenied: a deny rule of the same spec refuses the world on every port, so that what
	// this rule admits stops at the cluster.
	worldDenied bool
}

func (a ciliumAllow) at() string {
	if a.egress {
		return fmt.Sprintf("%s.egress[%d]", a.spec.at, a.index)
	}
	return fmt.Sprintf("%s.ingress[%d]", a.spec.at, a.index)
}

// peerList is the given-ness and length of one peer field: nil and empty differ in Cilium.
type peerList struct {
	given bool
	n     int
}

func listOf[T any](s []T) peerList { return peerList{s != nil, len(s)} }

// allows are the policy's allow rules in force: a rule selecting nodes reaches no pod, but its
// holes are the nodes' (host firewall), so it is read the same.
func (p *ciliumPolicy) allows() []ciliumAllow {
	var out []ciliumAllow
	for _, s := range p.rules {
		for i, r := range s.rule.Ingress {
			a := ciliumAllow{spec: s, index: i, endpoints: r.FromEndpoints, entities: r.FromEntities, blocks: ciliumBlocks(r.FromCIDR, r.FromCIDRSet)}
			// Explicitly empty lists of endpoints, nodes, entities or CIDRs select no one
			// (mergeEndpointSelectors); groups only add peers.
			a.setPeers([]peerList{listOf(r.FromEndpoints), listOf(r.FromNodes), listOf(r.FromEntities), listOf(r.FromCIDR), listOf(r.FromCIDRSet)},
				listOf(r.FromGroups))
			a.setPorts(r.ToPorts, len(r.ICMPs) > 0)
			a.worldDenied = slices.ContainsFunc(s.rule.IngressDeny, func(d cilium.IngressDenyRule) bool {
				return len(d.ToPorts)+len(d.ICMPs) == 0 && deniesWorld(d.FromEntities)
			})
			out = append(out, a)
		}
		for i, r := range s.rule.Egress {
			a := ciliumAllow{spec: s, egress: true, index: i, endpoints: r.ToEndpoints, entities: r.ToEntities, blocks: ciliumBlocks(r.ToCIDR, r.ToCIDRSet), fqdns: r.ToFQDNs}
			// toServices become toEndpoints or toCIDRSet once the agent resolves them.
			a.setPeers([]peerList{listOf(r.ToEndpoints), listOf(r.ToNodes), listOf(r.ToEntities), listOf(r.ToCIDR), listOf(r.ToCIDRSet)},
				listOf(r.ToGroups), listOf(r.ToServices), listOf(r.ToFQDNs))
			a.setPorts(r.ToPorts, len(r.ICMPs) > 0)
			a.worldDenied = slices.ContainsFunc(s.rule.EgressDeny, func(d cilium.EgressDenyRule) bool {
				return len(d.ToPorts)+len(d.ICMPs) == 0 && deniesWorld(d.ToEntities)
			})
			out = append(out, a)
		}
	}
	return out
}

// everyPod tells whether a rule admits every pod of every namespace: the entity cluster, an
// endpoint selector as everyPodOf reads it, or everyone but the world its spec denies.
func (a ciliumAllow) everyPod(clusterwide bool) bool {
	return hasEntity(a.entities, "cluster", "cluster-mesh") || a.worldDenied && a.everyone() ||
		slices.ContainsFunc(a.endpoints, func(sel metav1.LabelSelector) bool { return everyPodOf(sel, clusterwide) != "" })
}

// deniesWorld tells whether a deny rule's entities cover everything outside the cluster.
func deniesWorld(entities []string) bool {
	return hasEntity(entities, "world", "all") || hasEntity(entities, "world-ipv4") && hasEntity(entities, "world-ipv6")
}

// everyone tells whether a rule admits every peer (before its spec's deny rules): ports without
// peers, or the entity all.
func (a ciliumAllow) everyone() bool {
	return !a.peers || hasEntity(a.entities, "all")
}

func (a *ciliumAllow) setPeers(selecting []peerList, adding ...peerList) {
	for _, l := range selecting {
		a.none = a.none || l.given && l.n == 0
		a.peers = a.peers || l.n > 0
	}
	for _, l := range adding {
		a.peers = a.peers || l.n > 0
	}
}

// setPorts reads the layer-4 part: without toPorts and ICMP types the rule is layer-3 only (every
// port of its peers, nothing without peers); with them and no peer, a wildcard on those ports.
func (a *ciliumAllow) setPorts(rules []cilium.PortRule, icmp bool) {
	a.ports = ciliumPortsOf(rules)
	for _, r := range rules {
		if r.Rules != nil {
			a.dns = append(a.dns, r.Rules.DNS...)
		}
	}
	a.icmp = icmp && len(rules) == 0
	a.nothing = a.none || !a.peers && len(rules) == 0 && !icmp || len(rules) > 0 && len(a.ports) == 0
}

// judged tells whether a rule's holes are worth reporting: it admits something other than ICMP
// (echo from anywhere is the usual allowance), and for egress more than DNS lookups.
func (a ciliumAllow) judged() bool {
	return !a.nothing && !a.icmp && !(a.egress && dnsOnly(a.ports))
}

var ciliumChecks = []check[*ciliumPolicy]{
	ciliumRefused,
	ciliumAllowsEveryPeer,
	ciliumOutside,
	ciliumEveryPodOfEveryNamespace,
	ciliumSelectsEveryPod,
}

// ciliumRefused finds what the API server's schema or Cilium's agent refuses
// (semantics.CiliumRefusals): caught in review, where the agent would only say so in the
// policy's status and enforce none of it.
func ciliumRefused(p *ciliumPolicy, _ Options) []problem {
	var out []problem
	for _, m := range semantics.CiliumRefusals(p.agent) {
		out = append(out, ruleCiliumRefused.problemf("%s", m))
	}
	return out
}

// ciliumAllowsEveryPeer finds rules that let everyone through: ports without peers (Cilium's
// wildcard, world included) or the entity all. One finding per direction, as NP001 and NP002.
func ciliumAllowsEveryPeer(p *ciliumPolicy, _ Options) []problem {
	var places [2][]string
	opens := [2]*opening{{reach: reachAnywhere, ports: []intstr.IntOrString{}}, {reach: reachAnywhere, ports: []intstr.IntOrString{}, egress: true}}
	for _, a := range p.allows() {
		if !a.judged() {
			continue
		}
		d, peer := 0, "from"
		if a.egress {
			d, peer = 1, "to"
		}
		switch {
		case a.worldDenied:
			continue // every pod, not everyone: CNP004, CNP005, CNP006
		case !a.peers:
			places[d] = append(places[d], fmt.Sprintf("%s has toPorts and no %s… peer (Cilium's layer-4 wildcard)", a.at(), peer))
		case hasEntity(a.entities, "all"):
			places[d] = append(places[d], fmt.Sprintf("%s names the entity all", a.at()))
		default:
			continue
		}
		opens[d].add(a.ports)
	}
	var out []problem
	for d, r := range []*Rule{ruleCiliumFromAll, ruleCiliumToAll} {
		if len(places[d]) > 0 {
			effect := "admits every source, in the cluster and out"
			if d == 1 {
				effect = "allows every destination, in the cluster and out"
			}
			pr := r.problemf("%s: it %s", strings.Join(places[d], ", "), effect)
			pr.opening = opens[d]
			out = append(out, pr)
		}
	}
	return out
}

// ciliumOutside finds rules open to the world: a world entity, or CIDRs covering half or more of
// an address family (Cilium's CIDR peers never match the cluster's own pods, so 0.0.0.0/0 is the
// IPv4 world). Ingress is an error (CNP003), egress a warning (CNP006).
func ciliumOutside(p *ciliumPolicy, _ Options) []problem {
	var out []problem
	for _, a := range p.allows() {
		if !a.judged() || !a.peers || a.worldDenied {
			continue
		}
		var what []string
		for _, e := range a.entities {
			if strings.HasPrefix(e, "world") {
				what = append(what, "the entity "+e)
			}
		}
		if family, share, excepts := universal(a.blocks); family != "" {
			w := share + " " + family + " addresses"
			if share == "every" {
				w = "every " + family + " address"
			}
			if excepts > 0 {
				w += fmt.Sprintf(" but %d except range(s)", excepts)
			}
			what = append(what, w)
		}
		if len(what) == 0 {
			continue
		}
		rule, verb := ruleCiliumWorld, "admits"
		if a.egress {
			rule, verb = ruleCiliumEgressAnywhere, "allows"
		}
		pr := rule.problemf("%s %s %s: anything outside the cluster", a.at(), verb, strings.Join(what, " and "))
		pr.opening = openingOf(reachAnywhere, a.ports)
		pr.opening.egress = a.egress
		out = append(out, pr)
	}
	return out
}

// ciliumEveryPodOfEveryNamespace finds peers that are every pod of the cluster: the entity
// cluster, endpoints whose selector names no pod label and no namespace but to say it exists or
// to exclude some, or everyone but the world the spec denies. Ingress on every port is an error (CNP004), on listed ports a warning
// (CNP005), egress a warning (CNP006).
func ciliumEveryPodOfEveryNamespace(p *ciliumPolicy, _ Options) []problem {
	var out []problem
	for _, a := range p.allows() {
		if !a.judged() {
			continue
		}
		var found []string
		if a.worldDenied && a.everyone() {
			found = append(found, fmt.Sprintf("%s admits every source but the world, which a deny rule refuses: every pod of every namespace, and the nodes", a.at()))
		}
		for _, e := range a.entities {
			if e == "cluster" || e == "cluster-mesh" {
				found = append(found, fmt.Sprintf("%s names the entity %s: every pod of every namespace, and the nodes", a.at(), e))
			}
		}
		peers := "fromEndpoints"
		if a.egress {
			peers = "toEndpoints"
		}
		for j, sel := range a.endpoints {
			if what := everyPodOf(sel, p.clusterwide); what != "" {
				found = append(found, fmt.Sprintf("%s.%s[%d] has %s", a.at(), peers, j, what))
			}
		}
		for _, f := range found {
			rule := ruleCiliumEgressAnywhere
			switch {
			case a.egress:
			case widePorts(a.ports):
				rule = ruleCiliumEveryPod
			default:
				rule = ruleCiliumEveryPodOnPorts
			}
			pr := rule.problemf("%s", f)
			pr.opening = openingOf(reachCluster, a.ports)
			pr.opening.egress = a.egress
			out = append(out, pr)
		}
	}
	return out
}

// ciliumSelectsEveryPod finds a rule for every pod of its namespace that admits addresses or the
// world: whatever they reach, they reach every workload (as NP003). Rules from pods or
// namespaces are the usual namespace-wide baseline.
func ciliumSelectsEveryPod(p *ciliumPolicy, _ Options) []problem {
	if p.clusterwide {
		return nil
	}
	for _, a := range p.allows() {
		if a.egress || !a.judged() || a.spec.rule.NodeSelector != nil || len(podRequirements(a.spec.rule.EndpointSelector)) > 0 {
			continue
		}
		if len(a.blocks) > 0 || hasEntity(a.entities, "world", "world-ipv4", "world-ipv6") {
			return []problem{ruleCiliumSelectsEveryPod.problemf("%s.endpointSelector selects every pod: %s lets addresses reach every pod of namespace %s", a.spec.at, a.at(), p.namespace)}
		}
	}
	return nil
}

func hasEntity(entities []string, names ...string) bool {
	for _, e := range entities {
		for _, n := range names {
			if e == n {
				return true
			}
		}
	}
	return false
}
