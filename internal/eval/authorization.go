package eval

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	securityv1beta1 "istio.io/api/security/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// caller is what Istio knows of a request's source.
type caller struct {
	principal, namespace, serviceAccount, trustDomain string
	ip                                                string
}

// authorization evaluates the AuthorizationPolicies that apply to the destination workload the way
// Istio does: CUSTOM first (the extension provider, which is not evaluated here, is assumed to
// allow and the step says it was asked), then DENY (any match denies), then ALLOW (when any
// applies, one of its rules must match). Dry-run policies only log and are left out.
func (c *Cluster) authorization(r Request, identity bool) Step {
	to := r.To
	if !to.Meshed || r.Protocol != corev1.ProtocolTCP {
		return Step{Layer: Authorization, Allowed: true, By: "Istio does not see this connection: no AuthorizationPolicy applies"}
	}
	who := caller{ip: r.From.IP}
	if w := r.From.Workload; w != nil {
		who.ip = w.IP
		if identity {
			sa := w.ServiceAccount
			if sa == "" {
				sa = "default"
			}
			who = caller{principal: c.trustDomain() + "/ns/" + w.Namespace + "/sa/" + sa, namespace: w.Namespace,
				serviceAccount: w.Namespace + "/" + sa, trustDomain: c.trustDomain(), ip: w.IP}
		}
	}
	var allows []*securityv1.AuthorizationPolicy
	var unknown []string
	for _, action := range []securityv1beta1.AuthorizationPolicy_Action{securityv1beta1.AuthorizationPolicy_CUSTOM, securityv1beta1.AuthorizationPolicy_DENY} {
		for _, ap := range c.applying(to) {
			if ap.Spec.GetAction() != action {
				continue
			}
			for i, rule := range ap.Spec.GetRules() {
				m, why := c.ruleMatches(rule, r, who, action == securityv1beta1.AuthorizationPolicy_DENY)
				if why != "" {
					unknown = append(unknown, fmt.Sprintf("%s/%s spec.rules[%d]: %s", ap.Namespace, ap.Name, i, why))
				}
				if !m {
					continue
				}
				by := fmt.Sprintf("AuthorizationPolicy %s/%s spec.rules[%d]", ap.Namespace, ap.Name, i)
				if action == securityv1beta1.AuthorizationPolicy_CUSTOM {
					// The provider is asked first; if it allows, DENY and ALLOW still decide.
					unknown = append(unknown, fmt.Sprintf("%s asks CUSTOM provider %q first (assumed to allow)", by, ap.Spec.GetProvider().GetName()))
					break
				}
				return Step{Layer: Authorization, Allowed: false, Applies: true, By: by, Detail: "DENY matches"}
			}
		}
	}
	for _, ap := range c.applying(to) {
		if ap.Spec.GetAction() != securityv1beta1.AuthorizationPolicy_ALLOW {
			continue
		}
		allows = append(allows, ap)
		for i, rule := range ap.Spec.GetRules() {
			m, why := c.ruleMatches(rule, r, who, false)
			if why != "" {
				unknown = append(unknown, fmt.Sprintf("%s/%s spec.rules[%d]: %s", ap.Namespace, ap.Name, i, why))
			}
			if m {
				return Step{Layer: Authorization, Allowed: true, Applies: true, By: fmt.Sprintf("AuthorizationPolicy %s/%s spec.rules[%d]", ap.Namespace, ap.Name, i)}
			}
			if onHTTP, _ := c.ruleMatches(rule, r, who, true); onHTTP && r.HTTP == nil {
				unknown = append(unknown, fmt.Sprintf("%s/%s spec.rules[%d] matches HTTP requests only (paths, methods): this connection carries none", ap.Namespace, ap.Name, i))
			}
		}
	}
	detail := strings.Join(unknown, "; ")
	if len(allows) == 0 {
		return Step{Layer: Authorization, Allowed: true, Applies: true, By: "no ALLOW policy applies: allowed", Detail: detail}
	}
	names := make([]string, len(allows))
	for i, ap := range allows {
		names[i] = ap.Namespace + "/" + ap.Name
	}
	slices.Sort(names)
	by := "no ALLOW rule matches"
	if !slices.ContainsFunc(allows, func(ap *securityv1.AuthorizationPolicy) bool { return len(ap.Spec.GetRules()) > 0 }) {
		by = "allow-nothing: ALLOW policies without rules"
	}
	if who.principal == "" {
		by += " (the caller presents no identity)"
	}
	return Step{Layer: Authorization, Allowed: false, Applies: true, By: by,
		Detail: strings.TrimSuffix("ALLOW policies: "+strings.Join(names, ", ")+"; "+detail, "; ")}
}

// applying lists the policies in force on a workload, in a fixed order: its namespace's (selector
// matching or none), then the root namespace's mesh-wide ones. Dry runs and policies for gateways
// (targetRef) are left out.
func (c *Cluster) applying(to *Workload) []*securityv1.AuthorizationPolicy {
	var out []*securityv1.AuthorizationPolicy
	for _, ap := range c.AuthorizationPolicies {
		if ap.Annotations["istio.io/dry-run"] == "true" || ap.Spec.GetTargetRef() != nil || len(ap.Spec.GetTargetRefs()) > 0 {
			continue
		}
		if ap.Namespace != to.Namespace && ap.Namespace != c.rootNamespace() {
			continue
		}
		if sel := ap.Spec.GetSelector().GetMatchLabels(); len(sel) > 0 && !selectorMatches(&metav1.LabelSelector{MatchLabels: sel}, to.Labels) {
			continue
		}
		out = append(out, ap)
	}
	return out
}

// ruleMatches tells whether a rule matches the request. An empty rule matches everything. HTTP
// fields on traffic that is not HTTP make an ALLOW rule match nothing and are ignored in a DENY rule
// (Istio makes a DENY stricter, not looser). Conditions it cannot evaluate here (JWT claims,
// headers not given) make the rule not match, and say why.
func (c *Cluster) ruleMatches(rule *securityv1beta1.Rule, r Request, who caller, deny bool) (bool, string) {
	if len(rule.GetFrom()) > 0 && !slices.ContainsFunc(rule.GetFrom(), func(f *securityv1beta1.Rule_From) bool { return sourceMatches(f.GetSource(), who) }) {
		return false, ""
	}
	if len(rule.GetTo()) > 0 && !slices.ContainsFunc(rule.GetTo(), func(t *securityv1beta1.Rule_To) bool { return operationMatches(t.GetOperation(), r, deny) }) {
		return false, ""
	}
	for _, cond := range rule.GetWhen() {
		ok, known := conditionMatches(cond, r, who)
		if !known {
			return false, fmt.Sprintf("condition %s not evaluated", cond.GetKey())
		}
		if !ok {
			return false, ""
		}
	}
	return true, ""
}

func sourceMatches(s *securityv1beta1.Source, who caller) bool {
	fields := []struct {
		values, not []string
		value       string
		match       func(pattern, value string) bool
	}{
		{s.GetPrincipals(), s.GetNotPrincipals(), who.principal, wildcard},
		{s.GetNamespaces(), s.GetNotNamespaces(), who.namespace, wildcard},
		{s.GetServiceAccounts(), s.GetNotServiceAccounts(), who.serviceAccount, wildcard},
		{s.GetTrustDomains(), s.GetNotTrustDomains(), who.trustDomain, wildcard},
		{s.GetIpBlocks(), s.GetNotIpBlocks(), who.ip, inRange},
		{s.GetRemoteIpBlocks(), s.GetNotRemoteIpBlocks(), who.ip, inRange},
		{s.GetRequestPrincipals(), s.GetNotRequestPrincipals(), "", wildcard}, // no JWT here
	}
	for _, f := range fields {
		matchesAny := func(v []string) bool {
			return f.value != "" && slices.ContainsFunc(v, func(p string) bool { return f.match(p, f.value) })
		}
		if len(f.values) > 0 && !matchesAny(f.values) || matchesAny(f.not) {
			return false
		}
	}
	return true
}

func operationMatches(op *securityv1beta1.Operation, r Request, deny bool) bool {
	port := strconv.Itoa(int(r.Port))
	if len(op.GetPorts()) > 0 && !slices.Contains(op.GetPorts(), port) || slices.Contains(op.GetNotPorts(), port) {
		return false
	}
	httpFields := len(op.GetHosts()) + len(op.GetNotHosts()) + len(op.GetMethods()) + len(op.GetNotMethods()) + len(op.GetPaths()) + len(op.GetNotPaths())
	if httpFields == 0 {
		return true
	}
	if r.HTTP == nil {
		return deny
	}
	h := r.HTTP
	for _, f := range []struct {
		values, not []string
		value       string
		match       func(pattern, value string) bool
	}{
		{op.GetHosts(), op.GetNotHosts(), h.Host, hostMatch},
		{op.GetMethods(), op.GetNotMethods(), h.Method, wildcard},
		{op.GetPaths(), op.GetNotPaths(), h.Path, wildcard},
	} {
		matchesAny := func(v []string) bool {
			return slices.ContainsFunc(v, func(p string) bool { return f.match(p, f.value) })
		}
		if len(f.values) > 0 && !matchesAny(f.values) || matchesAny(f.not) {
			return false
		}
	}
	return true
}

// conditionMatches evaluates the conditions this package knows the value of; known is false for
// the others.
func conditionMatches(cond *securityv1beta1.Condition, r Request, who caller) (ok, known bool) {
	var value string
	match := wildcard
	switch cond.GetKey() {
	case "source.ip", "remote.ip":
		value, match = who.ip, inRange
	case "source.namespace":
		value = who.namespace
	case "source.principal":
		value = who.principal
	case "destination.port":
		value = strconv.Itoa(int(r.Port))
	case "destination.ip":
		value, match = r.To.IP, inRange
	default:
		return false, false
	}
	matchesAny := func(v []string) bool {
		return value != "" && slices.ContainsFunc(v, func(p string) bool { return match(p, value) })
	}
	return (len(cond.GetValues()) == 0 || matchesAny(cond.GetValues())) && !matchesAny(cond.GetNotValues()), true
}

// wildcard is Istio's string match: exact, "*" for presence, "x*" a prefix, "*x" a suffix.
func wildcard(pattern, value string) bool {
	switch {
	case pattern == "*":
		return value != ""
	case strings.HasSuffix(pattern, "*"):
		return strings.HasPrefix(value, strings.TrimSuffix(pattern, "*"))
	case strings.HasPrefix(pattern, "*"):
		return strings.HasSuffix(value, strings.TrimPrefix(pattern, "*"))
	}
	return pattern == value
}

func hostMatch(pattern, value string) bool {
	return wildcard(strings.ToLower(pattern), strings.ToLower(value))
}

// inRange matches an address against an IP or a CIDR.
func inRange(pattern, ip string) bool {
	if !strings.Contains(pattern, "/") {
		return pattern == ip
	}
	return ipInBlock(ip, &networkingv1.IPBlock{CIDR: pattern})
}
