package lint

import (
	"reflect"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/servicegraph/servicegraph-operator/internal/cilium"
)

// Identity label keys (without their source) that say where a pod is rather than what it is.
const (
	ciliumNamespaceKey       = "io.kubernetes.pod.namespace"
	ciliumNamespaceLabelsKey = "io.cilium.k8s.namespace.labels."
	ciliumClusterKey         = "io.cilium.k8s.policy.cluster"
)

// ciliumKey reads a selector key as Cilium does (labels.ParseSelectLabel): SOURCE:KEY, "$KEY" for
// a reserved label; a key without a source matches any ("any").
func ciliumKey(key string) (source, name string) {
	if rest, ok := strings.CutPrefix(key, "$"); ok {
		return "reserved", rest
	}
	if src, rest, ok := strings.Cut(key, ":"); ok && src != "" {
		return src, rest
	}
	return "any", strings.TrimPrefix(key, ":")
}

// requirement is one requirement of a selector: a matchLabels entry (label) reads as In with one
// value.
type requirement struct {
	source, name string
	op           metav1.LabelSelectorOperator
	values       []string
	label        bool
}

func requirementsOf(sel metav1.LabelSelector) []requirement {
	var out []requirement
	for k, v := range sel.MatchLabels {
		src, name := ciliumKey(k)
		out = append(out, requirement{src, name, metav1.LabelSelectorOpIn, []string{v}, true})
	}
	for _, e := range sel.MatchExpressions {
		src, name := ciliumKey(e.Key)
		out = append(out, requirement{src, name, e.Operator, e.Values, false})
	}
	return out
}

// placement tells whether a requirement is on where a pod runs (its namespace, its namespace's
// labels, its cluster) rather than on the pod; reserved and other sources name no Kubernetes label.
func (r requirement) placement() bool {
	return (r.source == "k8s" || r.source == "any") &&
		(r.name == ciliumNamespaceKey || strings.HasPrefix(r.name, ciliumNamespaceLabelsKey) || r.name == ciliumClusterKey)
}

// podRequirements are a selector's requirements on the pods themselves.
func podRequirements(sel metav1.LabelSelector) []requirement {
	var out []requirement
	for _, r := range requirementsOf(sel) {
		if !r.placement() {
			out = append(out, r)
		}
	}
	return out
}

// everyPodOf says how a peer's endpoint selector takes every pod of every namespace (or of every
// namespace but some), "" when it does not. A selector that names neither the namespace nor a
// namespace's labels takes pods of the policy's own namespace; in a clusterwide policy, Cilium
// adds "namespace exists" to it (getEndpointSelector).
func everyPodOf(sel metav1.LabelSelector, clusterwide bool) string {
	namespaced, onlyExists, excludes := false, true, true
	for _, r := range requirementsOf(sel) {
		switch {
		case r.source == "reserved":
			return "" // an entity's identity, not pods
		case !r.placement():
			return "" // pod labels narrow it
		case r.name == ciliumClusterKey: // which cluster, not which pods
		case r.name == ciliumNamespaceKey && r.op == metav1.LabelSelectorOpExists:
			namespaced = true
		case r.name == ciliumNamespaceKey && r.op == metav1.LabelSelectorOpDoesNotExist:
			return "" // identities outside any namespace
		case r.op == metav1.LabelSelectorOpNotIn || r.op == metav1.LabelSelectorOpDoesNotExist:
			namespaced, onlyExists = true, false
		default:
			namespaced, excludes = true, false
		}
	}
	switch {
	case !namespaced && clusterwide:
		return "no pod labels nor namespace in a clusterwide policy: every pod of every namespace"
	case !namespaced || !excludes:
		return ""
	case onlyExists:
		return "k8s:io.kubernetes.pod.namespace exists and no pod labels: every pod of every namespace"
	}
	return "a namespace selection that only excludes (NotIn, DoesNotExist) and no pod labels: every pod of every other namespace, new ones included"
}

// ciliumBlocks are fromCIDR/toCIDR and fromCIDRSet/toCIDRSet as ipBlocks, for the coverage
// NetworkPolicies' ipBlocks are judged by. A CIDR group names its ranges elsewhere: not judged.
func ciliumBlocks(cidrs []string, sets []cilium.CIDRRule) []*networkingv1.IPBlock {
	var out []*networkingv1.IPBlock
	for _, c := range cidrs {
		out = append(out, &networkingv1.IPBlock{CIDR: c})
	}
	for _, s := range sets {
		if s.Cidr != "" {
			out = append(out, &networkingv1.IPBlock{CIDR: s.Cidr, Except: s.ExceptCIDRs})
		}
	}
	return out
}

// ciliumPortsOf reads toPorts as NetworkPolicy ports, for the checks and openings both kinds
// share: port 0 (or none, for protocols without ports) is every port, a name a container port's
// (Cilium compares names in lower case), ANY no protocol in particular.
func ciliumPortsOf(rules []cilium.PortRule) []networkingv1.NetworkPolicyPort {
	var out []networkingv1.NetworkPolicyPort
	for _, r := range rules {
		for _, p := range r.Ports {
			np := networkingv1.NetworkPolicyPort{}
			if proto := corev1.Protocol(strings.ToUpper(p.Protocol)); proto != "" && proto != "ANY" {
				np.Protocol = &proto
			}
			switch n, err := strconv.ParseUint(p.Port, 10, 16); {
			case p.Port == "" || err == nil && n == 0:
			case err == nil:
				port := intstr.FromInt32(int32(n))
				np.Port = &port
				if p.EndPort > int32(n) {
					end := p.EndPort
					np.EndPort = &end
				}
			default:
				port := intstr.FromString(strings.ToLower(p.Port))
				np.Port = &port
			}
			out = append(out, np)
		}
	}
	return out
}

// ciliumPodSelector is a policy's endpointSelector as a selector of the input's pods, for WL001
// and for roles (podSelectorOf), with the namespace the pods are in (ciliumNamespace). nil for
// one selecting nodes, one whose rules select different pods, a clusterwide one that does not pin
// one namespace, and one that selects every pod of its namespace.
func ciliumPodSelector(p *ciliumPolicy) labels.Selector {
	if len(p.rules) == 0 || p.clusterwide && ciliumNamespace(p) == "" {
		return nil
	}
	first := p.rules[0].rule.EndpointSelector
	for _, s := range p.rules {
		if s.rule.NodeSelector != nil || !reflect.DeepEqual(s.rule.EndpointSelector, first) {
			return nil
		}
	}
	sel := podSelectorOf(first)
	if sel == nil || sel.Empty() {
		return nil
	}
	return sel
}

// ciliumNamespace is the namespace of the pods a policy selects: a namespaced policy's own, and
// for a clusterwide one, the namespace every rule names in matchLabels ("" for none, or several).
func ciliumNamespace(p *ciliumPolicy) string {
	if !p.clusterwide {
		return p.namespace
	}
	namespace := ""
	for i, s := range p.rules {
		ns := ""
		for _, r := range requirementsOf(s.rule.EndpointSelector) {
			if r.label && r.name == ciliumNamespaceKey && (r.source == "k8s" || r.source == "any") {
				ns = r.values[0]
			}
		}
		if ns == "" || i > 0 && ns != namespace {
			return ""
		}
		namespace = ns
	}
	return namespace
}

// podSelectorOf is an endpointSelector as a selector of pods by their labels: the pod labels it
// requires. Where a pod runs, and its ServiceAccount, are not pod labels: left out, the selector
// takes more pods, which only makes the judgements that use it more careful. nil for a selector
// of reserved identities.
func podSelectorOf(es metav1.LabelSelector) labels.Selector {
	var pod metav1.LabelSelector
	for _, r := range podRequirements(es) {
		if r.source != "k8s" && r.source != "any" || r.name == "io.cilium.k8s.policy.serviceaccount" {
			if r.source == "reserved" {
				return nil
			}
			continue
		}
		if r.label {
			if pod.MatchLabels == nil {
				pod.MatchLabels = map[string]string{}
			}
			pod.MatchLabels[r.name] = r.values[0]
			continue
		}
		pod.MatchExpressions = append(pod.MatchExpressions, metav1.LabelSelectorRequirement{Key: r.name, Operator: r.op, Values: r.values})
	}
	sel, err := metav1.LabelSelectorAsSelector(&pod)
	if err != nil {
		return nil
	}
	return sel
}
