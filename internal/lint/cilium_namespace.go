package lint

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/servicegraph/servicegraph-operator/internal/cilium"
	"github.com/servicegraph/servicegraph-operator/internal/semantics"
)

// Checks of Cilium policies that need more than one object: whether a namespace has a
// default-deny (with NP005, in networkpolicy.go), and whether toFQDNs rules can learn anything.

// isolatesEveryPod tells whether a rule of the policy puts every pod of a namespace (whose labels
// are nsLabels, as far as the input says) in default deny for ingress without admitting everyone,
// or every pod of the cluster, on every port: then no pod there accepts what no policy allows. A namespaced policy's
// endpointSelector is scoped to its own namespace whatever it says of namespaces; a clusterwide
// one covers the namespaces its namespace requirements match.
func (p *ciliumPolicy) isolatesEveryPod(namespace string, nsLabels map[string]string) bool {
	for _, s := range p.rules {
		r := s.rule
		off := r.EnableDefaultDeny != nil && r.EnableDefaultDeny.Ingress != nil && !*r.EnableDefaultDeny.Ingress
		if off || r.NodeSelector != nil || len(r.Ingress)+len(r.IngressDeny) == 0 || len(podRequirements(r.EndpointSelector)) > 0 {
			continue
		}
		if p.clusterwide && !inNamespace(r.EndpointSelector, namespace, nsLabels) {
			continue
		}
		if !slices.ContainsFunc(p.allows(), func(a ciliumAllow) bool {
			return a.spec == s && !a.egress && !a.nothing && !a.icmp && (a.everyone() || a.everyPod(p.clusterwide)) && everyPort(a.ports)
		}) {
			return true
		}
	}
	return false
}

// inNamespace tells whether a selector's namespace requirements hold for a pod of the namespace.
func inNamespace(sel metav1.LabelSelector, namespace string, nsLabels map[string]string) bool {
	for _, r := range requirementsOf(sel) {
		value, ok := "", false
		switch {
		case r.name == ciliumNamespaceKey:
			value, ok = namespace, true
		case strings.HasPrefix(r.name, ciliumNamespaceLabelsKey):
			value, ok = nsLabels[strings.TrimPrefix(r.name, ciliumNamespaceLabelsKey)]
		default:
			continue // the cluster: every pod is in one
		}
		in := ok && slices.Contains(r.values, value)
		switch r.op {
		case metav1.LabelSelectorOpIn:
			ok = in
		case metav1.LabelSelectorOpNotIn:
			ok = !in
		case metav1.LabelSelectorOpDoesNotExist:
			ok = !ok
		}
		if !ok {
			return false
		}
	}
	return true
}

// namespaceLabels are the labels of the input's Namespaces.
func namespaceLabels(objs []Object) map[string]map[string]string {
	out := map[string]map[string]string{}
	for _, o := range objs {
		if ns, ok := o.Object.(*corev1.Namespace); ok {
			out[ns.Name] = ns.Labels
		}
	}
	return out
}

// dnsVisibility is the DNS rules of one rule of a Cilium policy: the lookups Cilium's DNS proxy
// sees for the pods it selects.
type dnsVisibility struct {
	policy      *ciliumPolicy
	namespace   string
	clusterwide bool
	selector    metav1.LabelSelector
	rules       []cilium.PortRuleDNS
}

// fqdnWithoutDNSFindings finds toFQDNs rules whose names Cilium cannot learn: no DNS rule of the
// input reaches their pods, or none of those lets the name's lookup through. DNS rules reach the
// pods when they are of the same policy, of a clusterwide policy, or of a policy of the namespace
// for the same or every pod; one for other pods of the namespace reaches them when it selects
// every workload of the input the toFQDNs rule's policy selects, and, without such workloads in
// the input, is given the benefit of the doubt.
func fqdnWithoutDNSFindings(objs []Object) []Finding {
	type located struct {
		o Object
		p *ciliumPolicy
	}
	var policies []located
	var visible []dnsVisibility
	workloads := map[string][]labels.Set{}
	for _, o := range objs {
		if w, ok := o.Object.(*corev1.PodTemplate); ok {
			workloads[w.Namespace] = append(workloads[w.Namespace], w.Template.Labels)
		}
		p, ok := asCiliumPolicy(o.Object)
		if !ok {
			continue
		}
		policies = append(policies, located{o, p})
		for _, s := range p.rules {
			v := dnsVisibility{policy: p, namespace: p.namespace, clusterwide: p.clusterwide, selector: s.rule.EndpointSelector}
			for _, a := range p.allows() {
				if a.spec == s && a.egress && !a.nothing {
					v.rules = append(v.rules, a.dns...)
				}
			}
			if len(v.rules) > 0 {
				visible = append(visible, v)
			}
		}
	}
	var out []Finding
	for _, l := range policies {
		var found []string
		for _, a := range l.p.allows() {
			if !a.egress || len(a.fqdns) == 0 || a.nothing {
				continue
			}
			pods := selected(workloads[l.p.namespace], a.spec.rule.EndpointSelector)
			var rules []cilium.PortRuleDNS
			for _, v := range visible {
				if v.reaches(l.p, a.spec.rule.EndpointSelector, pods) {
					rules = append(rules, v.rules...)
				}
			}
			if len(rules) == 0 {
				found = append(found, fmt.Sprintf("%s.toFQDNs: no DNS rule (toPorts rules: dns) of this policy, of a clusterwide policy or of a policy of its namespace for its pods", a.at()))
				continue
			}
			for j, f := range a.fqdns {
				name := f.MatchName
				if name == "" {
					name = strings.ReplaceAll(f.MatchPattern, "*", "x") // a name the pattern matches
				}
				if name != "" && !slices.ContainsFunc(rules, func(d cilium.PortRuleDNS) bool { return semantics.CiliumDNSMatches(d, name) }) {
					found = append(found, fmt.Sprintf("%s.toFQDNs[%d] %s: the DNS rules for these pods do not let its lookup through (%s)", a.at(), j, name, describeDNS(rules)))
				}
			}
		}
		if len(found) > 0 {
			pr := ruleCiliumFQDNWithoutDNS.problemf("%s: Cilium learns a name's addresses only from the lookups its DNS proxy lets through, so these are never reached", strings.Join(found, "; "))
			out = append(out, locate(l.o, []problem{pr})...)
		}
	}
	return out
}

// reaches tells whether a policy rule's DNS rules apply to the pods of another policy's rule
// (selector sel; pods, the input's workloads it selects).
func (v dnsVisibility) reaches(p *ciliumPolicy, sel metav1.LabelSelector, pods []labels.Set) bool {
	switch {
	case v.policy == p || v.clusterwide:
		return true
	case p.clusterwide || v.namespace != p.namespace:
		return false
	case len(podRequirements(v.selector)) == 0 || reflect.DeepEqual(v.selector, sel):
		return true
	case len(pods) == 0:
		return true // the input does not say which pods these are
	}
	return len(selected(pods, v.selector)) == len(pods)
}

// selected are the pods (by their labels) an endpointSelector takes, by its pod requirements; none
// for one that takes no pods.
func selected(pods []labels.Set, sel metav1.LabelSelector) []labels.Set {
	s := podSelectorOf(sel)
	if s == nil {
		return nil
	}
	var out []labels.Set
	for _, l := range pods {
		if s.Matches(l) {
			out = append(out, l)
		}
	}
	return out
}

func describeDNS(rules []cilium.PortRuleDNS) string {
	var parts []string
	for _, d := range rules {
		s := "matchName " + d.MatchName
		if d.MatchPattern != "" {
			s = "matchPattern " + d.MatchPattern
		}
		if !slices.Contains(parts, s) {
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, ", ")
}
