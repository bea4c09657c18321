package eval

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	securityv1beta1 "istio.io/api/security/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/servicegraph/servicegraph-operator/internal/semantics"
)

// authorization evaluates the AuthorizationPolicies a destination's proxy enforces, as Istio's
// builder builds them for the connection's filter chain (HTTP, or TCP when the request carries no
// HTTP) and Envoy runs them: CUSTOM first (the extension provider, not evaluated here, is assumed
// to allow, and the step says it was asked), then DENY (any match denies), then ALLOW (when any
// applies, one of its rules must match). Dry runs enforce nothing. A destination in ambient mode is
// ztunnel's: layer 4 only (every rule as on a TCP chain), no CUSTOM or AUDIT policy.
func (c *Cluster) authorization(r Request, identity bool) Step {
	if !r.To.Meshed || r.Protocol != corev1.ProtocolTCP {
		return Step{Layer: Authorization, Allowed: true, By: "Istio does not see this connection: no AuthorizationPolicy applies"}
	}
	req := c.attributes(r, identity)
	ps := c.applying(r.To)
	if r.To.ambient() {
		req.HTTP, ps.custom = nil, nil
		s := c.decide(ps, req, "no ALLOW policy applies: allowed")
		s.By = "ztunnel: " + s.By
		return s
	}
	return c.decide(ps, req, "no ALLOW policy applies: allowed")
}

// decide runs the policies in force on a request: CUSTOM, DENY, then ALLOW; noAllow is the step's
// reason when no ALLOW policy applies.
func (c *Cluster) decide(ps applied, req *semantics.Request, noAllow string) Step {
	var notes []string
	if step, denied := c.custom(ps.custom, req, &notes); denied {
		return step
	}
	for _, ap := range ps.deny {
		if i, ok := matchingRule(ap, req, &notes); ok {
			return Step{Layer: Authorization, Allowed: false, Applies: true, By: ruleName(ap, i), Detail: "DENY matches"}
		}
	}
	if len(ps.allow) == 0 {
		return Step{Layer: Authorization, Allowed: true, Applies: true, By: noAllow, Detail: strings.Join(notes, "; ")}
	}
	for _, ap := range ps.allow {
		if i, ok := matchingRule(ap, req, &notes); ok {
			return Step{Layer: Authorization, Allowed: true, Applies: true, By: ruleName(ap, i)}
		}
	}
	return c.allowNothing(ps.allow, req, notes)
}

// attributes is what the destination's proxy knows of the connection: the caller's principal
// when mutual TLS carries it, addresses, port and the HTTP request.
func (c *Cluster) attributes(r Request, identity bool) *semantics.Request {
	a := &semantics.Request{SourceIP: r.From.IP, DestinationIP: r.To.IP, DestinationPort: r.Port, HTTP: r.HTTP}
	if w := r.From.Workload; w != nil {
		a.SourceIP = cmp.Or(a.SourceIP, w.IP)
		if identity {
			a.Principal = semantics.Principal(cmp.Or(w.TrustDomain, c.trustDomain()), w.Namespace, cmp.Or(w.ServiceAccount, "default"))
		}
	}
	a.RemoteIP = a.SourceIP
	return a
}

// applied are the policies a workload's proxy enforces, by action, oldest first as Istio lists
// them (model.AuthorizationPoliciesResult).
type applied struct {
	custom, deny, allow []*securityv1.AuthorizationPolicy
}

// applying buckets the policies that apply to a workload (semantics.AuthorizationPolicyApplies);
// dry runs, which enforce nothing, and AUDIT policies, which only log, are left out.
func (c *Cluster) applying(to *Workload) applied {
	var out applied
	w := semantics.Workload{Namespace: to.Namespace, Labels: to.Labels}
	for _, ap := range semantics.SortedByAge(c.AuthorizationPolicies) {
		if semantics.AuthorizationPolicyApplies(ap, w, c.rootNamespace()) && semantics.Enforced(ap) {
			out.add(ap)
		}
	}
	return out
}

// add files a policy under its action; AUDIT policies only log.
func (a *applied) add(ap *securityv1.AuthorizationPolicy) {
	switch ap.Spec.GetAction() {
	case securityv1beta1.AuthorizationPolicy_CUSTOM:
		a.custom = append(a.custom, ap)
	case securityv1beta1.AuthorizationPolicy_DENY:
		a.deny = append(a.deny, ap)
	case securityv1beta1.AuthorizationPolicy_ALLOW:
		a.allow = append(a.allow, ap)
	}
}

// custom asks the CUSTOM policies. With one extension provider a matching rule sends the request
// to it (assumed to allow: noted). With several, Istio (without
// PILOT_ENABLE_MULTIPLE_CUSTOM_AUTHZ_PROVIDERS, the default) turns every enforced CUSTOM rule into
// a DENY rule (builder.go getBadCustomDenyRules).
func (c *Cluster) custom(policies []*securityv1.AuthorizationPolicy, req *semantics.Request, notes *[]string) (Step, bool) {
	var providers []string
	for _, ap := range policies {
		providers = append(providers, ap.Spec.GetProvider().GetName())
	}
	slices.Sort(providers)
	providers = slices.Compact(providers)
	for _, ap := range policies {
		i, ok := matchingRule(ap, req, notes)
		switch {
		case !ok:
		case len(providers) > 1 && !semantics.DryRun(ap.Annotations):
			return Step{Layer: Authorization, Allowed: false, Applies: true, By: ruleName(ap, i),
				Detail: fmt.Sprintf("CUSTOM providers %s apply to this workload: Istio denies what their rules match unless PILOT_ENABLE_MULTIPLE_CUSTOM_AUTHZ_PROVIDERS is set", strings.Join(providers, ", "))}, true
		case len(providers) == 1:
			*notes = append(*notes, fmt.Sprintf("%s asks CUSTOM provider %q first (assumed to allow)", ruleName(ap, i), providers[0]))
		}
	}
	return Step{}, false
}

// matchingRule finds the policy's first rule that matches the request as Istio builds it for the
// request's filter chain; what it cannot evaluate, and rules the chain leaves out, are noted.
func matchingRule(ap *securityv1.AuthorizationPolicy, req *semantics.Request, notes *[]string) (int, bool) {
	action, tcp := semantics.ActionOf(ap.Spec.GetAction()), req.HTTP == nil
	for i, rule := range ap.Spec.GetRules() {
		built, skipped := semantics.ReadRule(rule, ap.Namespace).Chain(action, tcp)
		if skipped != "" {
			*notes = append(*notes, fmt.Sprintf("%s/%s spec.rules[%d] is left out: %s", ap.Namespace, ap.Name, i, skipped))
			continue
		}
		ok, unknown := built.Matches(req)
		if unknown != "" {
			*notes = append(*notes, fmt.Sprintf("%s/%s spec.rules[%d]: %s", ap.Namespace, ap.Name, i, unknown))
		}
		if ok {
			return i, true
		}
	}
	return 0, false
}

func ruleName(ap *securityv1.AuthorizationPolicy, i int) string {
	return fmt.Sprintf("AuthorizationPolicy %s/%s spec.rules[%d]", ap.Namespace, ap.Name, i)
}

// allowNothing is the denial when ALLOW policies apply and none of their rules matches.
func (c *Cluster) allowNothing(allows []*securityv1.AuthorizationPolicy, req *semantics.Request, notes []string) Step {
	names := make([]string, len(allows))
	for i, ap := range allows {
		names[i] = ap.Namespace + "/" + ap.Name
	}
	slices.Sort(names)
	by := "no ALLOW rule matches"
	if !slices.ContainsFunc(allows, func(ap *securityv1.AuthorizationPolicy) bool { return len(ap.Spec.GetRules()) > 0 }) {
		by = "allow-nothing: ALLOW policies without rules"
	}
	if req.Principal == "" {
		by += " (the caller presents no identity)"
	}
	return Step{Layer: Authorization, Allowed: false, Applies: true, By: by,
		Detail: strings.TrimSuffix("ALLOW policies: "+strings.Join(names, ", ")+"; "+strings.Join(notes, "; "), "; ")}
}
