package semantics

import (
	"iter"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/servicegraph/servicegraph-operator/internal/cilium"
)

// CiliumPolicy is a CiliumNetworkPolicy or a CiliumClusterwideNetworkPolicy as Cilium's agent
// reads it (CiliumNetworkPolicy.Parse): its rules (spec, then specs; see Rules), scoped to its
// namespace, "" for a clusterwide policy.
type CiliumPolicy struct {
	Kind, Namespace, Name string
	Spec                  *cilium.Rule
	Specs                 []cilium.Rule
}

// CiliumRule is one rule of a policy: its spec (Index -1) or one of its specs.
type CiliumRule struct {
	*cilium.Rule
	Index int
}

// Where names the rule in the policy: "spec" or "specs[N]".
func (r CiliumRule) Where() string { return r.place().String() }

func (r CiliumRule) place() place {
	if r.Index < 0 {
		return place{}.at("spec", -1)
	}
	return place{}.at("specs", r.Index)
}

// CiliumPolicyOf reads a CiliumNetworkPolicy.
func CiliumPolicyOf(p *cilium.CiliumNetworkPolicy) CiliumPolicy {
	return CiliumPolicy{Kind: "CiliumNetworkPolicy", Namespace: p.Namespace, Name: p.Name, Spec: p.Spec, Specs: p.Specs}
}

// CiliumClusterwidePolicyOf reads a CiliumClusterwideNetworkPolicy.
func CiliumClusterwidePolicyOf(p *cilium.CiliumClusterwideNetworkPolicy) CiliumPolicy {
	return CiliumPolicy{Kind: "CiliumClusterwideNetworkPolicy", Name: p.Name, Spec: p.Spec, Specs: p.Specs}
}

// Rules are the policy's rules: spec, then specs.
func (p CiliumPolicy) Rules() iter.Seq[CiliumRule] {
	return func(yield func(CiliumRule) bool) {
		if p.Spec != nil && !yield(CiliumRule{Rule: p.Spec, Index: -1}) {
			return
		}
		for i := range p.Specs {
			if !yield(CiliumRule{Rule: &p.Specs[i], Index: i}) {
				return
			}
		}
	}
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
	if p.Namespace == "" {
		return CiliumSelectorMatches(r.EndpointSelector, pod.Labels)
	}
	return pod.Labels.K8s[ciliumNamespaceKey] == p.Namespace &&
		ciliumMatches(r.EndpointSelector, pod.Labels, func(src, name string) bool { return src == ciliumSourceK8s && name == ciliumNamespaceKey })
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

// ciliumPeerSelectorMatches tells whether a fromEndpoints or toEndpoints selector matches an identity,
// scoped as ParseToCiliumRule scopes it (getEndpointSelector): a selector that names a reserved
// label, or the namespace label, as it is; one that names a namespace's labels, as it is in a
// namespaced policy; otherwise the policy's namespace only, and, in a clusterwide policy
// (namespace ""), any pod.
func ciliumPeerSelectorMatches(namespace string, sel metav1.LabelSelector, l CiliumLabels) bool {
	reserved, namesNamespace, namesNamespaceLabels := false, false, false
	see := func(key string) {
		src, name := ciliumKey(key)
		k8sOrAny := src == ciliumSourceK8s || src == ciliumSourceAny
		reserved = reserved || src == ciliumSourceReserved
		namesNamespace = namesNamespace || k8sOrAny && name == ciliumNamespaceKey
		namesNamespaceLabels = namesNamespaceLabels || k8sOrAny && strings.HasPrefix(name, ciliumNamespaceLabelsKey)
	}
	for k := range sel.MatchLabels {
		see(k)
	}
	for _, e := range sel.MatchExpressions {
		see(e.Key)
	}
	switch ns, pod := l.K8s[ciliumNamespaceKey]; {
	case reserved, namesNamespace:
	case namespace == "":
		if !pod {
			return false
		}
	case !namesNamespaceLabels && ns != namespace:
		return false
	}
	return CiliumSelectorMatches(sel, l)
}
