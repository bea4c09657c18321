package semantics

import (
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/servicegraph/servicegraph-operator/internal/cilium"
)

// CiliumPolicy is a CiliumNetworkPolicy or a CiliumClusterwideNetworkPolicy as Cilium's agent
// reads it (CiliumNetworkPolicy.Parse): its rules (spec, then specs), scoped to its namespace, ""
// for a clusterwide policy.
type CiliumPolicy struct {
	Kind, Namespace, Name string
	Rules                 []CiliumRule
}

// CiliumRule is one rule of a policy and where the policy writes it: "spec" or "specs[N]".
type CiliumRule struct {
	*cilium.Rule
	Where string
}

// CiliumPolicyOf reads a CiliumNetworkPolicy.
func CiliumPolicyOf(p *cilium.CiliumNetworkPolicy) CiliumPolicy {
	return CiliumPolicy{Kind: "CiliumNetworkPolicy", Namespace: p.Namespace, Name: p.Name, Rules: ciliumRules(p.Spec, p.Specs)}
}

// CiliumClusterwidePolicyOf reads a CiliumClusterwideNetworkPolicy.
func CiliumClusterwidePolicyOf(p *cilium.CiliumClusterwideNetworkPolicy) CiliumPolicy {
	return CiliumPolicy{Kind: "CiliumClusterwideNetworkPolicy", Name: p.Name, Rules: ciliumRules(p.Spec, p.Specs)}
}

func ciliumRules(spec *cilium.Rule, specs []cilium.Rule) []CiliumRule {
	var out []CiliumRule
	if spec != nil {
		out = append(out, CiliumRule{Rule: spec, Where: "spec"})
	}
	for i := range specs {
		out = append(out, CiliumRule{Rule: &specs[i], Where: fmt.Sprintf("specs[%d]", i)})
	}
	return out
}

// String names the policy: its kind, namespace and name.
func (p CiliumPolicy) String() string {
	if p.Namespace == "" {
		return p.Kind + " " + p.Name
	}
	return p.Kind + " " + p.Namespace + "/" + p.Name
}

// Selects tells whether a rule of the policy applies to a pod: a rule with an endpointSelector
// (one with a nodeSelector selects nodes) that matches it, in the policy's namespace for a
// namespaced policy whatever namespace the selector names (ParseToCiliumRule).
func (p CiliumPolicy) Selects(r CiliumRule, pod CiliumEndpoint) bool {
	if r.NodeSelector != nil || pod.world() {
		return false
	}
	sel := metav1.LabelSelector{MatchLabels: map[string]string{}, MatchExpressions: r.EndpointSelector.MatchExpressions}
	for k, v := range r.EndpointSelector.MatchLabels {
		sel.MatchLabels[sourcedKey(k)] = v
	}
	if p.Namespace != "" {
		sel.MatchLabels[cilium.LabelNamespace] = p.Namespace
	}
	return CiliumSelectorMatches(sel, pod.Labels)
}

// CiliumHasRules tells whether a rule has rules for a direction, allow or deny: the pods it selects
// are then under policy that way.
func CiliumHasRules(r *cilium.Rule, dir Direction) bool {
	if dir == Ingress {
		return len(r.Ingress)+len(r.IngressDeny) > 0
	}
	return len(r.Egress)+len(r.EgressDeny) > 0
}

// CiliumDefaultDeny tells whether a rule puts the pods it selects in default deny for a direction:
// it has rules for it and enableDefaultDeny does not turn that off (Rule.Sanitize: the default is
// deny where there are rules, deny rules included).
func CiliumDefaultDeny(r *cilium.Rule, dir Direction) bool {
	if !CiliumHasRules(r, dir) {
		return false
	}
	if d := r.EnableDefaultDeny; d != nil {
		if flag := map[Direction]*bool{Ingress: d.Ingress, Egress: d.Egress}[dir]; flag != nil {
			return *flag
		}
	}
	return true
}

// ciliumPeerSelector is a fromEndpoints or toEndpoints selector as ParseToCiliumRule scopes it
// (getEndpointSelector): a selector that names a reserved label is left as it is; one that names
// neither the namespace label nor a namespace's labels selects pods of the policy's namespace,
// and, in a clusterwide policy (namespace ""), a selector that names no namespace selects pods
// only.
func ciliumPeerSelector(namespace string, sel metav1.LabelSelector) metav1.LabelSelector {
	nsKey := strings.TrimPrefix(cilium.LabelNamespace, cilium.SourcePrefix)
	nsLabels := strings.TrimPrefix(cilium.NamespaceLabelPrefix, cilium.SourcePrefix)
	k8sOrAny := func(k, key string, prefix bool) bool {
		for _, src := range []string{ciliumSourceK8s, ciliumSourceAny} {
			if k == src+":"+key || prefix && strings.HasPrefix(k, src+":"+key) {
				return true
			}
		}
		return false
	}
	namesNamespace := hasKey(sel, func(k string) bool { return k8sOrAny(k, nsKey, false) })
	switch {
	case hasKey(sel, func(k string) bool { return strings.HasPrefix(k, ciliumSourceReserved+":") }):
		return sel
	case namesNamespace:
		return sel
	case namespace == "":
		out := *sel.DeepCopy()
		out.MatchExpressions = append(out.MatchExpressions, metav1.LabelSelectorRequirement{Key: cilium.LabelNamespace, Operator: metav1.LabelSelectorOpExists})
		return out
	case hasKey(sel, func(k string) bool { return k8sOrAny(k, nsLabels, true) }):
		return sel
	}
	out := metav1.LabelSelector{MatchLabels: map[string]string{cilium.LabelNamespace: namespace}, MatchExpressions: sel.MatchExpressions}
	for k, v := range sel.MatchLabels {
		out.MatchLabels[sourcedKey(k)] = v
	}
	return out
}

// hasKey tells whether a selector has a key, its source written out as EndpointSelector.Sanitize
// writes it, that match accepts.
func hasKey(sel metav1.LabelSelector, match func(string) bool) bool {
	for k := range sel.MatchLabels {
		if match(sourcedKey(k)) {
			return true
		}
	}
	for _, e := range sel.MatchExpressions {
		if match(sourcedKey(e.Key)) {
			return true
		}
	}
	return false
}
