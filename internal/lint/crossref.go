package lint

import (
	"fmt"
	"iter"
	"net/netip"
	"slices"
	"strings"

	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Rules that read a policy against the Services and workloads beside it in the input: what it
// names that the pods never see.
var (
	ruleServicePort = &Rule{"NP009", SeverityError,
		"a NetworkPolicy allows a Service's port where its pods listen on the Service's targetPort: policies match the pod's port (after the Service's translation), so the Service's callers are refused",
		"allow the targetPort (the container port) in the policy, not the Service's port"}
	ruleSameNamespacePeer = &Rule{"NP010", SeverityWarning,
		"a podSelector peer without a namespaceSelector matches pods of the policy's own namespace only, but the pods of the input it names live in other namespaces",
		"add a namespaceSelector (kubernetes.io/metadata.name: NAMESPACE) beside the podSelector in the same peer"}
	ruleClusterIPBlock = &Rule{"NP011", SeverityError,
		"an ipBlock holds a Service's ClusterIP: no packet comes from one, and Kubernetes leaves undefined whether policy sees a destination before its translation to a pod address (kube-proxy, Cilium and kube-network-policies translate first), so it does not match",
		"select the Service's pods with podSelector and namespaceSelector instead"}
	ruleHostNetwork = &Rule{"NP013", SeverityWarning,
		"a NetworkPolicy selects only pods on the node's network (hostNetwork): Kubernetes leaves policy for them undefined, and most network plugins do not enforce it, so the restriction may not hold",
		"restrict the node's ports with the node's firewall or the plugin's host policies, or run the pods on the pod network"}
	ruleRecursiveGlob = &Rule{"AP012", SeverityError,
		"a path with ** outside a {**} template: Istio has no recursive glob there, a trailing * is a prefix match and the rest is literal, so the rule matches far less (ALLOW) or denies far less (DENY) than written",
		"write a prefix as /api/* (everything under /api/), or a template as /api/{**}"}
)

// servicePortFindings finds NetworkPolicy ingress ports that are a Service's port, not its
// targetPort, on the Service's pods, where the pods do not listen on that port too.
func servicePortFindings(objs []Object, ri *roleIndex) []Finding {
	var out []Finding
	for o, np := range networkPolicies(objs) {
		sel, _ := policySelector(np)
		if sel == nil {
			sel = labels.Everything()
		}
		pods := ri.pods(np.Namespace, sel)
		var found []string
		for _, r := range rulesInForce(np) {
			if r.dir != ingress {
				continue
			}
			for _, p := range r.ports {
				if p.Port == nil || p.Port.Type != intstr.Int || p.EndPort != nil {
					continue
				}
				svc, sp := translatedPort(ri.services[np.Namespace], pods, p.Port.IntVal)
				if svc != nil && !allowsTarget(r.ports, pods, targetOf(*sp)) {
					found = append(found, fmt.Sprintf("spec.ingress[%d] allows port %d, the port of Service %s/%s, whose pods listen on targetPort %s",
						r.index, p.Port.IntVal, svc.Namespace, svc.Name, sp.TargetPort.String()))
				}
			}
		}
		if len(found) > 0 {
			out = append(out, locate(o, []problem{ruleServicePort.problemf("%s: the Service's callers are refused", strings.Join(found, "; "))})...)
		}
	}
	return out
}

// allowsTarget tells whether a rule's ports include a Service's target port (by number or name) on
// every pod: then the Service's callers pass, whatever else the rule lists.
func allowsTarget(ports []networkingv1.NetworkPolicyPort, pods []*corev1.PodTemplate, target intstr.IntOrString) bool {
	return slices.ContainsFunc(ports, func(p networkingv1.NetworkPolicyPort) bool {
		return p.Port != nil && !slices.ContainsFunc(pods, func(pod *corev1.PodTemplate) bool { return !samePort(pod, target, *p.Port) })
	})
}

// translatedPort finds a Service of the pods whose port is port and whose targetPort is another
// one, when no pod listens on port itself (no container declares it, nor any Service targets it).
func translatedPort(services []*corev1.Service, pods []*corev1.PodTemplate, port int32) (*corev1.Service, *corev1.ServicePort) {
	if len(pods) == 0 {
		return nil, nil
	}
	var hit *corev1.Service
	var hitPort *corev1.ServicePort
	for _, p := range pods {
		for _, c := range p.Template.Spec.Containers {
			if slices.ContainsFunc(c.Ports, func(cp corev1.ContainerPort) bool { return cp.ContainerPort == port }) {
				return nil, nil
			}
		}
		for _, svc := range services {
			if len(svc.Spec.Selector) == 0 || !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(p.Template.Labels)) {
				continue
			}
			for i, sp := range svc.Spec.Ports {
				target := resolve(p, targetOf(sp))
				switch {
				case target == port:
					return nil, nil // the pods listen on it
				case sp.Port == port && target != 0:
					hit, hitPort = svc, &svc.Spec.Ports[i]
				}
			}
		}
	}
	return hit, hitPort
}

// sameNamespacePeerFindings finds NetworkPolicy peers with a podSelector and no namespaceSelector
// whose labels match none of the policy's namespace's workloads in the input, and some of another
// namespace's: the author meant pods the peer can never match. As WL001, only where the input's
// workloads of the namespace may be taken as all of them.
func sameNamespacePeerFindings(objs []Object, ri *roleIndex, opts Options) []Finding {
	var out []Finding
	for o, np := range networkPolicies(objs) {
		if len(ri.workloads[np.Namespace]) == 0 || !ri.complete(o, opts) {
			continue
		}
		var found []string
		for _, r := range rulesInForce(np) {
			for j, peer := range r.peers {
				if peer.PodSelector == nil || peer.NamespaceSelector != nil || selectsAll(peer.PodSelector) {
					continue
				}
				sel, err := metav1.LabelSelectorAsSelector(peer.PodSelector)
				if err != nil || len(ri.matching(np.Namespace, sel)) > 0 {
					continue
				}
				var elsewhere []string
				for ns := range ri.workloads {
					if ns != np.Namespace && len(ri.matching(ns, sel)) > 0 {
						elsewhere = append(elsewhere, ns)
					}
				}
				if len(elsewhere) > 0 {
					slices.Sort(elsewhere)
					found = append(found, fmt.Sprintf("spec.%s[%d].%s[%d].podSelector %s matches pods of namespace %s only, and the input's pods it names are in %s",
						r.dir.field, r.index, r.dir.peers, j, sel, np.Namespace, strings.Join(elsewhere, ", ")))
				}
			}
		}
		if len(found) > 0 {
			out = append(out, locate(o, []problem{ruleSameNamespacePeer.problemf("%s", strings.Join(found, "; "))})...)
		}
	}
	return out
}

// clusterIPFindings finds ipBlocks of a single address that is a ClusterIP of a Service of the
// input.
func clusterIPFindings(objs []Object, ri *roleIndex) []Finding {
	clusterIPs := map[netip.Addr]*corev1.Service{}
	for _, services := range ri.services {
		for _, svc := range services {
			for _, ip := range append([]string{svc.Spec.ClusterIP}, svc.Spec.ClusterIPs...) {
				if a, err := netip.ParseAddr(ip); err == nil {
					clusterIPs[a] = svc
				}
			}
		}
	}
	if len(clusterIPs) == 0 {
		return nil
	}
	var out []Finding
	for o, np := range networkPolicies(objs) {
		var found []string
		for _, r := range rulesInForce(np) {
			for j, peer := range r.peers {
				if peer.IPBlock == nil {
					continue
				}
				prefix, err := netip.ParsePrefix(peer.IPBlock.CIDR)
				if err != nil || !prefix.IsSingleIP() || clusterIPs[prefix.Addr()] == nil {
					continue
				}
				svc := clusterIPs[prefix.Addr()]
				found = append(found, fmt.Sprintf("spec.%s[%d].%s[%d].ipBlock %s is the ClusterIP of Service %s/%s",
					r.dir.field, r.index, r.dir.peers, j, peer.IPBlock.CIDR, svc.Namespace, svc.Name))
			}
		}
		if len(found) > 0 {
			out = append(out, locate(o, []problem{ruleClusterIPBlock.problemf("%s: it never matches", strings.Join(found, "; "))})...)
		}
	}
	return out
}

// recursiveGlob finds path values with ** outside Istio's {**} template: Istio's matcher takes a
// trailing * as a prefix match and every other * literally (test/istio checks what its builder
// makes of them).
func recursiveGlob(ap *securityv1.AuthorizationPolicy, _ Options) []problem {
	var found []string
	for i, r := range ap.Spec.GetRules() {
		for _, t := range r.GetTo() {
			op := t.GetOperation()
			for _, p := range append(slices.Clone(op.GetPaths()), op.GetNotPaths()...) {
				if strings.Contains(strings.ReplaceAll(p, "{**}", ""), "**") {
					found = append(found, fmt.Sprintf("spec.rules[%d] path %q", i, p))
				}
			}
		}
	}
	if len(found) == 0 {
		return nil
	}
	return []problem{ruleRecursiveGlob.problemf("%s: ** is no recursive glob for Istio (a trailing * is a prefix match, any other * a literal *)", strings.Join(found, "; "))}
}

// hostNetworkFindings finds NetworkPolicies for named pods whose pods in the input all run on the
// node's network.
func hostNetworkFindings(objs []Object, ri *roleIndex, opts Options) []Finding {
	var out []Finding
	for o, np := range networkPolicies(objs) {
		sel, _ := policySelector(np)
		if sel == nil && !opts.Workloads {
			continue // a namespace-wide policy: the namespace's other pods may be on the pod network
		}
		if sel == nil {
			sel = labels.Everything()
		}
		pods := ri.matching(np.Namespace, sel)
		if len(pods) == 0 || slices.ContainsFunc(pods, func(p *corev1.PodTemplate) bool { return !p.Template.Spec.HostNetwork }) {
			continue
		}
		var names []string
		for _, p := range pods {
			names = append(names, p.Kind+" "+p.Name)
		}
		out = append(out, locate(o, []problem{ruleHostNetwork.problemf("the pods it selects (%s) run with hostNetwork: true: the policy may not restrict them", strings.Join(names, ", "))})...)
	}
	return out
}

// networkPolicies are the input's NetworkPolicies with where they were read.
func networkPolicies(objs []Object) iter.Seq2[Object, *networkingv1.NetworkPolicy] {
	return func(yield func(Object, *networkingv1.NetworkPolicy) bool) {
		for _, o := range objs {
			if np, ok := o.Object.(*networkingv1.NetworkPolicy); ok && !yield(o, np) {
				return
			}
		}
	}
}
