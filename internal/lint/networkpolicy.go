package lint

import (
	"cmp"
	"fmt"
	"maps"
	"math/big"
	"net/netip"
	"slices"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/cilium"
	"github.com/servicegraph/servicegraph-operator/internal/semantics"
)

var networkPolicyChecks = []check[*networkingv1.NetworkPolicy]{
	invalidNetworkPolicy,
	allowsEveryPeer,
	selectsEveryPod,
	admitsAnyAddress,
	everyPodOfEveryNamespace,
}

// direction names the parts of one side of a NetworkPolicy, so that one check reads both.
type direction struct {
	field    string // spec field
	peers    string // the rule's peer field
	effect   string // what a rule without peers does
	allowAll *Rule
}

var (
	ingress = &direction{"ingress", "from", "admits every source", ruleIngressFromAll}
	egress  = &direction{"egress", "to", "allows every destination", ruleEgressToAll}
)

// policyRule is one allow rule in force, of either direction.
type policyRule struct {
	dir   *direction
	index int
	peers []networkingv1.NetworkPolicyPeer
	ports []networkingv1.NetworkPolicyPort
}

// dnsPorts are the ports name lookups use: 53, and 5353 where OpenShift's DNS listens.
var dnsPorts = []intstr.IntOrString{intstr.FromInt32(53), intstr.FromInt32(5353), intstr.FromString("dns"), intstr.FromString("dns-tcp")}

// dnsOnly tells whether a rule's ports are DNS ports only: egress for name lookups to wherever DNS
// runs is the usual allowance, not a broad one.
func dnsOnly(ports []networkingv1.NetworkPolicyPort) bool {
	return len(ports) > 0 && !slices.ContainsFunc(ports, func(p networkingv1.NetworkPolicyPort) bool {
		return p.Port == nil || p.EndPort != nil || !slices.Contains(dnsPorts, *p.Port)
	})
}

// rulesInForce returns the policy's allow rules of the directions it applies to: rules of a
// direction that policyTypes leaves out are ignored by Kubernetes, and so here.
func rulesInForce(np *networkingv1.NetworkPolicy) []policyRule {
	in, out := policyTypes(np)
	var rules []policyRule
	if in {
		for i, r := range np.Spec.Ingress {
			rules = append(rules, policyRule{ingress, i, r.From, r.Ports})
		}
	}
	if out {
		for i, r := range np.Spec.Egress {
			rules = append(rules, policyRule{egress, i, r.To, r.Ports})
		}
	}
	return rules
}

// policyTypes are the directions the policy isolates; without policyTypes, Kubernetes takes
// Ingress, and Egress when there are egress rules.
func policyTypes(np *networkingv1.NetworkPolicy) (ingress, egress bool) {
	return semantics.Isolates(np, semantics.Ingress), semantics.Isolates(np, semantics.Egress)
}

// allowsEveryPeer finds rules without peers: they match everything. One finding per direction
// lists every such place. An empty peer is not one: the API server refuses it (NP008).
func allowsEveryPeer(np *networkingv1.NetworkPolicy, _ Options) []problem {
	places := map[*direction][]string{}
	opens := map[*direction]*opening{
		ingress: {reach: reachAnywhere, ports: []intstr.IntOrString{}},
		egress:  {reach: reachAnywhere, ports: []intstr.IntOrString{}, egress: true},
	}
	for _, r := range rulesInForce(np) {
		if r.dir == egress && dnsOnly(r.ports) {
			continue
		}
		if len(r.peers) == 0 {
			places[r.dir] = append(places[r.dir], fmt.Sprintf("spec.%s[%d] has no %s", r.dir.field, r.index, r.dir.peers))
			opens[r.dir].add(r.ports)
		}
	}
	var out []problem
	for _, dir := range []*direction{ingress, egress} {
		if len(places[dir]) > 0 {
			p := dir.allowAll.problemf("%s: it %s", strings.Join(places[dir], ", "), dir.effect)
			p.opening = opens[dir]
			out = append(out, p)
		}
	}
	return out
}

// selectsEveryPod finds a policy for every pod of its namespace that admits addresses: whatever
// the range reaches, it reaches every workload. Namespace-wide rules from pods or namespaces (the
// "same namespace" baseline, a monitoring namespace, DNS egress) are deliberate and not reported.
func selectsEveryPod(np *networkingv1.NetworkPolicy, _ Options) []problem {
	if !selectsAll(&np.Spec.PodSelector) {
		return nil
	}
	for _, r := range rulesInForce(np) {
		if r.dir == ingress && slices.ContainsFunc(r.peers, func(p networkingv1.NetworkPolicyPeer) bool { return p.IPBlock != nil }) {
			return []problem{ruleSelectsEveryPod.problemf("podSelector is empty: spec.ingress[%d] lets addresses reach every pod of namespace %s", r.index, np.Namespace)}
		}
	}
	return nil
}

func selectsAll(sel *metav1.LabelSelector) bool {
	return sel == nil || len(sel.MatchLabels) == 0 && len(sel.MatchExpressions) == 0
}

// admitsAnyAddress finds rules whose ipBlocks together cover a whole address family: 0.0.0.0/0,
// ::/0, or a split such as 0.0.0.0/1 and 128.0.0.0/1. Except ranges carve holes out of the
// internet and do not make it narrow. Ingress is an error (NP004), egress a warning (NP007).
func admitsAnyAddress(np *networkingv1.NetworkPolicy, _ Options) []problem {
	var out []problem
	for _, r := range rulesInForce(np) {
		var blocks []*networkingv1.IPBlock
		for _, p := range r.peers {
			if p.IPBlock != nil {
				blocks = append(blocks, p.IPBlock)
			}
		}
		family, share, excepts := universal(blocks)
		if family == "" {
			continue
		}
		what := share + " " + family + " addresses"
		if share == "every" {
			what = "every " + family + " address"
		}
		if excepts > 0 {
			what += fmt.Sprintf(" but %d except range(s)", excepts)
		}
		if r.dir == ingress {
			p := ruleAnyAddress.problemf("spec.ingress[%d] admits %s: in the cluster and out", r.index, what)
			p.opening = openingOf(reachAnywhere, r.ports)
			out = append(out, p)
		} else {
			p := ruleEgressAnywhere.problemf("spec.egress[%d] allows %s: anything on the internet", r.index, what)
			p.opening = openingOf(reachAnywhere, r.ports)
			p.opening.egress = true
			out = append(out, p)
		}
	}
	return out
}

// universal tells whether the blocks' ranges cover half or more of IPv4 or IPv6 (the internet, or
// a near-universal split such as 0.0.0.0/1), how much ("every", "57% of all"), and how many except
// ranges they carve out.
func universal(blocks []*networkingv1.IPBlock) (family, share string, excepts int) {
	var v4, v6 []netip.Prefix
	for _, b := range blocks {
		p, err := netip.ParsePrefix(b.CIDR)
		if err != nil {
			continue
		}
		if p.Addr().Is4() {
			v4 = append(v4, p.Masked())
		} else {
			v6 = append(v6, p.Masked())
		}
		excepts += len(b.Except)
	}
	for _, f := range []struct {
		name     string
		prefixes []netip.Prefix
		bits     int
	}{{"IPv4", v4, 32}, {"IPv6", v6, 128}} {
		c := coverage(f.prefixes, f.bits)
		switch {
		case c.Cmp(big.NewRat(1, 1)) == 0:
			return f.name, "every", excepts
		case c.Cmp(big.NewRat(1, 2)) >= 0:
			pct, _ := c.Float64()
			return f.name, fmt.Sprintf("%.0f%% of all", 100*pct), excepts
		}
	}
	return "", "", 0
}

// coverage is the share of a family's address space that prefixes of it cover.
func coverage(prefixes []netip.Prefix, bits int) *big.Rat {
	slices.SortFunc(prefixes, func(a, b netip.Prefix) int { return cmp.Or(a.Bits()-b.Bits(), a.Addr().Compare(b.Addr())) })
	var kept []netip.Prefix
	for _, p := range prefixes {
		if !slices.ContainsFunc(kept, func(k netip.Prefix) bool { return k.Contains(p.Addr()) }) {
			kept = append(kept, p)
		}
	}
	total := new(big.Int)
	for _, p := range kept {
		total.Add(total, new(big.Int).Lsh(big.NewInt(1), uint(bits-p.Bits())))
	}
	return new(big.Rat).SetFrac(total, new(big.Int).Lsh(big.NewInt(1), uint(bits)))
}

// everyPodOfEveryNamespace finds peers with an empty namespaceSelector and no pod labels: every
// pod of the cluster. Ingress on every port is an error (NP006), on the ports it lists a warning
// (NP012: what a Service without policies gets, worth a look), egress a warning (NP007).
func everyPodOfEveryNamespace(np *networkingv1.NetworkPolicy, _ Options) []problem {
	var out []problem
	for _, r := range rulesInForce(np) {
		if r.dir == egress && dnsOnly(r.ports) {
			continue
		}
		for j, p := range r.peers {
			if p.NamespaceSelector == nil || !selectsAll(p.PodSelector) {
				continue
			}
			what := ""
			switch {
			case selectsAll(p.NamespaceSelector):
				what = "namespaceSelector: {} and no pod labels: every pod of every namespace"
			case onlyExcludes(p.NamespaceSelector):
				what = "a namespaceSelector that only excludes (NotIn, DoesNotExist) and no pod labels: every pod of every other namespace, new ones included"
			default:
				continue
			}
			if r.dir == ingress {
				rule := ruleEveryPod
				if !widePorts(r.ports) {
					rule = ruleEveryPodOnPorts
				}
				p := rule.problemf("spec.ingress[%d].from[%d] admits %s", r.index, j, what)
				p.opening = openingOf(reachCluster, r.ports)
				out = append(out, p)
			} else {
				out = append(out, ruleEgressAnywhere.problemf("spec.egress[%d].to[%d] allows %s", r.index, j, what))
			}
		}
	}
	return out
}

// defaultDenyFindings finds the namespaces that have NetworkPolicies or CiliumNetworkPolicies but
// none that isolates every pod for ingress (a default-deny, or namespace-wide allow rules: of
// either kind, as Cilium enforces both, or a clusterwide Cilium policy for the namespace), and no
// ServiceGraph (whose compiled policies include one). The finding sits on the namespace's first
// NetworkPolicy in the input (NP005), else on its first CiliumNetworkPolicy (CNP009).
func defaultDenyFindings(objs []Object) []Finding {
	covered := map[string]bool{}
	first, firstCilium := map[string]Object{}, map[string]Object{}
	var clusterwide []*ciliumPolicy
	nsLabels := namespaceLabels(objs)
	for _, o := range objs {
		ns := o.Object.GetNamespace()
		switch obj := o.Object.(type) {
		case *v1alpha1.ServiceGraph:
			covered[ns] = true
		case *networkingv1.NetworkPolicy:
			covered[ns] = covered[ns] || isolatesEveryPod(obj)
			if _, ok := first[ns]; !ok {
				first[ns] = o
			}
		case *cilium.CiliumNetworkPolicy:
			p, _ := asCiliumPolicy(obj)
			covered[ns] = covered[ns] || p.isolatesEveryPod(ns, nsLabels[ns])
			if _, ok := firstCilium[ns]; !ok {
				firstCilium[ns] = o
			}
		case *cilium.CiliumClusterwideNetworkPolicy:
			p, _ := asCiliumPolicy(obj)
			clusterwide = append(clusterwide, p)
		}
	}
	var out []Finding
	for _, ns := range slices.Sorted(maps.Keys(covered)) {
		if covered[ns] || slices.ContainsFunc(clusterwide, func(p *ciliumPolicy) bool { return p.isolatesEveryPod(ns, nsLabels[ns]) }) {
			continue
		}
		if o, ok := first[ns]; ok {
			p := ruleNoDefaultDeny.problemf("namespace %s has no default-deny: no NetworkPolicy selects every pod for ingress, so pods no policy selects accept everything", ns)
			out = append(out, locate(o, []problem{p})...)
		} else if o, ok := firstCilium[ns]; ok {
			p := ruleCiliumNoDefaultDeny.problemf("namespace %s has no default-deny: no CiliumNetworkPolicy selects every pod for ingress, so pods no policy selects accept everything", ns)
			out = append(out, locate(o, []problem{p})...)
		}
	}
	return out
}

// isolatesEveryPod tells whether a policy selects every pod of its namespace for ingress without
// admitting everyone on every port: then no pod accepts what no policy allows. A namespace-wide
// policy that lets every source in on every port isolates nothing; one that opens a port to all is
// NP001's.
func isolatesEveryPod(np *networkingv1.NetworkPolicy) bool {
	in, _ := policyTypes(np)
	if !in || !selectsAll(&np.Spec.PodSelector) {
		return false
	}
	for _, r := range np.Spec.Ingress {
		var blocks []*networkingv1.IPBlock
		for _, p := range r.From {
			if (p.PodSelector == nil && p.NamespaceSelector == nil && p.IPBlock == nil ||
				p.NamespaceSelector != nil && selectsAll(p.NamespaceSelector) && selectsAll(p.PodSelector)) && everyPort(r.Ports) {
				return false
			}
			if p.IPBlock != nil {
				blocks = append(blocks, p.IPBlock)
			}
		}
		if family, share, _ := universal(blocks); (len(r.From) == 0 || family != "" && share == "every") && everyPort(r.Ports) {
			return false
		}
	}
	return true
}

// maxListedRange is the widest port range taken as listed ports, not as a wide opening: a range
// wider than this (2-65535 is every port but one) is judged as every port.
const maxListedRange = 64

// widePorts tells whether a rule's ports are every port or a range wider than maxListedRange.
func widePorts(ports []networkingv1.NetworkPolicyPort) bool {
	return everyPort(ports) || slices.ContainsFunc(ports, func(p networkingv1.NetworkPolicyPort) bool {
		return p.Port != nil && p.EndPort != nil && *p.EndPort-p.Port.IntVal > maxListedRange
	})
}

// everyPort tells whether a rule's ports are all of them: none listed, a protocol without a port, or
// the range 1-65535.
func everyPort(ports []networkingv1.NetworkPolicyPort) bool {
	return len(ports) == 0 || slices.ContainsFunc(ports, func(p networkingv1.NetworkPolicyPort) bool {
		return p.Port == nil || p.Port.Type == intstr.Int && p.Port.IntVal <= 1 && p.EndPort != nil && *p.EndPort >= 65535
	})
}

// invalidNetworkPolicy finds what the API server refuses in a NetworkPolicy
// (semantics.NetworkPolicyRefusals): caught in review, not at apply.
func invalidNetworkPolicy(np *networkingv1.NetworkPolicy, _ Options) []problem {
	errs := semantics.NetworkPolicyRefusals(np)
	out := make([]problem, len(errs))
	for i, e := range errs {
		out[i] = ruleInvalidNetworkPolicy.problemf("%s", e.Error())
	}
	return out
}

// onlyExcludes tells whether a selector names no label a namespace must have, only ones it must
// not: it matches every namespace but a few.
func onlyExcludes(sel *metav1.LabelSelector) bool {
	return len(sel.MatchLabels) == 0 && len(sel.MatchExpressions) > 0 && !slices.ContainsFunc(sel.MatchExpressions, func(e metav1.LabelSelectorRequirement) bool {
		return e.Operator != metav1.LabelSelectorOpNotIn && e.Operator != metav1.LabelSelectorOpDoesNotExist
	})
}

// openingOf is what a rule opens on its ports.
func openingOf(r reach, ports []networkingv1.NetworkPolicyPort) *opening {
	op := &opening{reach: r, ports: []intstr.IntOrString{}}
	op.add(ports)
	return op
}

// add adds a rule's ports to an opening: every port when the rule lists none, or a port range.
func (op *opening) add(ports []networkingv1.NetworkPolicyPort) {
	if op.ports == nil {
		return
	}
	if len(ports) == 0 {
		op.ports = nil
		return
	}
	for _, p := range ports {
		switch {
		case p.Port == nil || p.EndPort != nil && *p.EndPort-p.Port.IntVal > maxListedRange:
			op.ports = nil
			return
		case p.EndPort != nil:
			for n := p.Port.IntVal; n <= *p.EndPort; n++ {
				op.ports = append(op.ports, intstr.FromInt32(n))
			}
		default:
			op.ports = append(op.ports, *p.Port)
		}
	}
}
