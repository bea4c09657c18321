package lint

import (
	"maps"
	"net/netip"
	"slices"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
)

var networkPolicyChecks = []check[*networkingv1.NetworkPolicy]{
	allowsEveryPeer,
	selectsEveryPod,
	admitsAnyAddress,
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
}

// rulesInForce returns the policy's allow rules of the directions it applies to: rules of a
// direction that policyTypes leaves out are ignored by Kubernetes, and so here.
func rulesInForce(np *networkingv1.NetworkPolicy) []policyRule {
	in, out := policyTypes(np)
	var rules []policyRule
	if in {
		for i, r := range np.Spec.Ingress {
			rules = append(rules, policyRule{ingress, i, r.From})
		}
	}
	if out {
		for i, r := range np.Spec.Egress {
			rules = append(rules, policyRule{egress, i, r.To})
		}
	}
	return rules
}

// policyTypes are the directions the policy isolates; without policyTypes, Kubernetes takes
// Ingress, and Egress when there are egress rules.
func policyTypes(np *networkingv1.NetworkPolicy) (ingress, egress bool) {
	if len(np.Spec.PolicyTypes) == 0 {
		return true, len(np.Spec.Egress) > 0
	}
	return slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress),
		slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress)
}

// allowsEveryPeer finds rules without peers, and empty peers: either matches everything (the API
// server rejects an empty peer, but kubectl apply --validate=false and some tools let it by).
func allowsEveryPeer(np *networkingv1.NetworkPolicy, _ Options) []problem {
	var out []problem
	for _, r := range rulesInForce(np) {
		if len(r.peers) == 0 {
			out = append(out, r.dir.allowAll.problemf("spec.%s[%d] has no %s: it %s", r.dir.field, r.index, r.dir.peers, r.dir.effect))
		}
		for j, p := range r.peers {
			if p.PodSelector == nil && p.NamespaceSelector == nil && p.IPBlock == nil {
				out = append(out, r.dir.allowAll.problemf("spec.%s[%d].%s[%d] is an empty peer: it %s", r.dir.field, r.index, r.dir.peers, j, r.dir.effect))
			}
		}
	}
	return out
}

func selectsEveryPod(np *networkingv1.NetworkPolicy, _ Options) []problem {
	if !selectsAll(&np.Spec.PodSelector) || len(rulesInForce(np)) == 0 {
		return nil
	}
	return []problem{ruleSelectsEveryPod.problemf("podSelector is empty: every pod of namespace %s gets the policy's allow rules", np.Namespace)}
}

func selectsAll(sel *metav1.LabelSelector) bool {
	return len(sel.MatchLabels) == 0 && len(sel.MatchExpressions) == 0
}

// admitsAnyAddress finds ingress from a zero-length prefix. An "except" list does not help much:
// it carves holes out of the whole internet.
func admitsAnyAddress(np *networkingv1.NetworkPolicy, _ Options) []problem {
	var out []problem
	for _, r := range rulesInForce(np) {
		for j, p := range r.peers {
			if r.dir != ingress || p.IPBlock == nil {
				continue
			}
			if prefix, err := netip.ParsePrefix(p.IPBlock.CIDR); err == nil && prefix.Bits() == 0 {
				out = append(out, ruleAnyAddress.problemf("spec.ingress[%d].from[%d].ipBlock.cidr %s admits every address", r.index, j, p.IPBlock.CIDR))
			}
		}
	}
	return out
}

// defaultDenyFindings finds the namespaces that have NetworkPolicies but none that isolates every
// pod for ingress, and no ServiceGraph (whose compiled policies include one). The finding sits on
// the namespace's first NetworkPolicy in the input.
func defaultDenyFindings(objs []Object) []Finding {
	covered := map[string]bool{}
	first := map[string]Object{}
	for _, o := range objs {
		ns := o.Object.GetNamespace()
		switch obj := o.Object.(type) {
		case *v1alpha1.ServiceGraph:
			covered[ns] = true
		case *networkingv1.NetworkPolicy:
			covered[ns] = covered[ns] || deniesAllIngress(obj)
			if _, ok := first[ns]; !ok {
				first[ns] = o
			}
		}
	}
	var out []Finding
	for _, ns := range slices.Sorted(maps.Keys(first)) {
		if !covered[ns] {
			p := ruleNoDefaultDeny.problemf("namespace %s has no default-deny: no NetworkPolicy selects every pod without admitting ingress", ns)
			out = append(out, locate(first[ns], []problem{p})...)
		}
	}
	return out
}

func deniesAllIngress(np *networkingv1.NetworkPolicy) bool {
	in, _ := policyTypes(np)
	return in && selectsAll(&np.Spec.PodSelector) && len(np.Spec.Ingress) == 0
}
