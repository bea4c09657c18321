package lint

import (
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"
	securityv1beta1 "istio.io/api/security/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/servicegraph/servicegraph-operator/internal/semantics"
)

var authorizationPolicyChecks = []check[*securityv1.AuthorizationPolicy]{
	allowsAnySource,
	allowsAnyPrincipal,
	allowsNamespaceWide,
	denyNeverMatches,
	allowsEverything,
	neverMatchingValues,
	allowsNearlyAnyone,
	httpFieldsOnTCP,
	invalidAuthorizationPolicy,
	httpFieldsForZtunnel,
	recursiveGlob,
}

// allowsAnySource finds ALLOW rules that match whatever the caller: a rule without from, or with
// a from entry whose source is empty (from entries are alternatives, so one empty entry is enough).
// A rule that can match nothing (HTTP fields on a port Istio sees as TCP: AP008), or whose when
// conditions name the caller (a JWT claim, a source address), is not reported.
func allowsAnySource(ap *securityv1.AuthorizationPolicy, opts Options) []problem {
	if !isAllow(ap) {
		return nil
	}
	var out []problem
	for i, r := range ap.Spec.GetRules() {
		if proto.Size(r) == 0 {
			continue // an empty rule is AP005's: one finding per hole
		}
		if len(r.GetFrom()) == 0 || slices.ContainsFunc(r.GetFrom(), func(f *securityv1beta1.Rule_From) bool { return proto.Size(f.GetSource()) == 0 }) {
			if len(tcpPortsOfHTTPRule(ap, r, opts)) == 0 && !callerInConditions(r) && contradiction(r) == "" {
				p := ruleAllowAnySource.problemf("spec.rules[%d] has no from.source: it matches any caller", i)
				p.opening = &opening{reach: reachAnywhere, ports: rulePorts(r)}
				out = append(out, p)
			}
		}
	}
	return out
}

// allowsAnyPrincipal finds ALLOW sources that take any workload of the mesh or of a trust domain:
// principals "*", "TRUST_DOMAIN/*" or a wildcard that pins no namespace ("*/sa/default"), and
// namespaces "*".
func allowsAnyPrincipal(ap *securityv1.AuthorizationPolicy, _ Options) []problem {
	if !isAllow(ap) {
		return nil
	}
	var out []problem
	for i, r := range ap.Spec.GetRules() {
		if contradiction(r) != "" {
			continue // AP006
		}
		for j, f := range r.GetFrom() {
			src := f.GetSource()
			open := &opening{reach: reachCluster, ports: rulePorts(r)}
			if len(src.GetTrustDomains()) > 0 && len(src.GetPrincipals())+len(src.GetNamespaces())+len(src.GetServiceAccounts()) == 0 {
				out = append(out, opens(ruleAnyPrincipal.problemf("spec.rules[%d].from[%d].source.trustDomains %v alone: it matches any workload of those trust domains", i, j, src.GetTrustDomains()), open))
			}
			for _, p := range f.GetSource().GetPrincipals() {
				if broadPrincipal(p) {
					out = append(out, opens(ruleAnyPrincipal.problemf(`spec.rules[%d].from[%d].source.principals has %q: it matches any workload with a mesh identity%s`, i, j, p, inTrustDomain(p)), open))
				}
			}
			if slices.Contains(f.GetSource().GetNamespaces(), "*") {
				out = append(out, opens(ruleAnyPrincipal.problemf(`spec.rules[%d].from[%d].source.namespaces has "*": it matches a workload of any namespace`, i, j), open))
			}
		}
	}
	return out
}

// allowsNamespaceWide finds ALLOW policies without a selector (or targetRefs): every workload of
// the namespace, or of the mesh from the root namespace, admits what they allow. With a rule for
// any caller it is a warning; for named callers only, the usual way to say who may call a
// namespace, a note. Without rules it is Istio's allow-nothing.
func allowsNamespaceWide(ap *securityv1.AuthorizationPolicy, opts Options) []problem {
	if !isAllow(ap) || len(ap.Spec.GetRules()) == 0 || !semantics.NamespaceWide(ap.Spec.GetSelector()) || semantics.TargetsRefs(ap) {
		return nil
	}
	scope := "every workload of namespace " + ap.Namespace
	if ap.Namespace == opts.RootNamespace {
		scope = "every workload of the mesh (root namespace " + ap.Namespace + ")"
	}
	open := &opening{reach: reachAnywhere, ports: []intstr.IntOrString{}}
	for _, r := range ap.Spec.GetRules() {
		if proto.Size(r) == 0 || len(r.GetFrom()) == 0 || slices.ContainsFunc(r.GetFrom(), func(f *securityv1beta1.Rule_From) bool { return proto.Size(f.GetSource()) == 0 }) {
			if ports := rulePorts(r); ports == nil || open.ports == nil {
				open.ports = nil
			} else {
				open.ports = append(open.ports, ports...)
			}
		}
	}
	if len(allowsAnySource(ap, opts))+len(allowsEverything(ap, opts)) == 0 {
		p := ruleAllowNamespaceWide.problemf("no selector: %s admits the callers its rules name", scope)
		p.severity = SeverityNote
		return []problem{p}
	}
	return []problem{opens(ruleAllowNamespaceWide.problemf("no selector, and a rule for any caller: %s is open to it", scope), open)}
}

// rulePorts are the ports a rule matches, nil for every port (a to without ports, or none).
func rulePorts(r *securityv1beta1.Rule) []intstr.IntOrString {
	if len(r.GetTo()) == 0 {
		return nil
	}
	var ports []intstr.IntOrString
	for _, t := range r.GetTo() {
		if len(t.GetOperation().GetPorts()) == 0 {
			return nil
		}
		for _, p := range t.GetOperation().GetPorts() {
			port, ok := portOf(p)
			if !ok || port.Type != intstr.Int {
				return nil // istiod refuses it (AP010, AP006): judged as every port
			}
			ports = append(ports, port)
		}
	}
	return ports
}

// opens sets what a problem opens.
func opens(p problem, op *opening) problem {
	p.opening = op
	return p
}

// denyNeverMatches finds DENY policies without rules: Istio matches a policy only through one of
// its rules, so such a policy denies nothing (unlike rules: [{}], an empty rule, which matches
// every request).
func denyNeverMatches(ap *securityv1.AuthorizationPolicy, _ Options) []problem {
	if ap.Spec.GetAction() != securityv1beta1.AuthorizationPolicy_DENY || len(ap.Spec.GetRules()) > 0 {
		return nil
	}
	return []problem{ruleDenyNeverMatches.problemf("action DENY without rules never matches: the policy denies nothing")}
}

// allowsEverything finds ALLOW rules that are empty: an empty rule matches every request.
func allowsEverything(ap *securityv1.AuthorizationPolicy, _ Options) []problem {
	if !isAllow(ap) {
		return nil
	}
	var out []problem
	for i, r := range ap.Spec.GetRules() {
		if proto.Size(r) == 0 {
			out = append(out, opens(ruleAllowEverything.problemf("spec.rules[%d] is empty: it matches every request from anyone", i), &opening{reach: reachAnywhere}))
		}
	}
	return out
}

// neverMatchingValues finds values Istio's validation accepts but its authorization builder can never
// match (the builder's output shows it; test/istio checks each against it): a principal written
// with spiffe:// (Istio adds the prefix itself) or with a wildcard inside or at both ends, a path
// without a leading / (other than a * form), port "0", and a method in lower case. One finding per
// policy lists them all.
func neverMatchingValues(ap *securityv1.AuthorizationPolicy, _ Options) []problem {
	var found []string
	bad := func(field string, i, j int, value, why string) {
		found = append(found, fmt.Sprintf("spec.rules[%d].%s[%d] %q (%s)", i, field, j, value, why))
	}
	for i, r := range ap.Spec.GetRules() {
		for _, f := range r.GetFrom() {
			for j, p := range append(slices.Clone(f.GetSource().GetPrincipals()), f.GetSource().GetNotPrincipals()...) {
				switch {
				case strings.HasPrefix(p, "spiffe://"):
					bad("from.source.principals", i, j, p, "Istio matches spiffe://"+p+"; write it without spiffe://")
				case strings.Contains(strings.Trim(p, "*"), "*"):
					bad("from.source.principals", i, j, p, "a * matches only at the start or the end")
				case len(p) > 1 && strings.HasPrefix(p, "*") && strings.HasSuffix(p, "*"):
					bad("from.source.principals", i, j, p, "a * matches at the start or the end, not both: Istio takes the last * literally")
				}
			}
		}
		for _, t := range r.GetTo() {
			op := t.GetOperation()
			for j, p := range append(slices.Clone(op.GetPaths()), op.GetNotPaths()...) {
				if !strings.HasPrefix(p, "/") && !strings.HasPrefix(p, "*") && !strings.HasSuffix(p, "*") {
					bad("to.operation.paths", i, j, p, "request paths start with /")
				}
			}
			for j, p := range append(slices.Clone(op.GetPorts()), op.GetNotPorts()...) {
				if p == "0" {
					bad("to.operation.ports", i, j, p, "no connection has port 0")
				}
			}
			for j, m := range append(slices.Clone(op.GetMethods()), op.GetNotMethods()...) {
				if m != strings.ToUpper(m) {
					bad("to.operation.methods", i, j, m, "methods are matched case-sensitively and sent in upper case")
				}
			}
		}
	}
	for i, r := range ap.Spec.GetRules() {
		if field := contradiction(r); field != "" {
			found = append(found, fmt.Sprintf("spec.rules[%d]: %s excludes everything (\"*\" in its not-field)", i, field))
		}
	}
	if len(found) == 0 {
		return nil
	}
	return []problem{ruleNeverMatches.problemf("never matches: %s", strings.Join(found, "; "))}
}

// allowsNearlyAnyone finds ALLOW sources that exclude some callers and name none (only not*
// fields), or whose address ranges cover every address: they match nearly every caller.
func allowsNearlyAnyone(ap *securityv1.AuthorizationPolicy, _ Options) []problem {
	if !isAllow(ap) {
		return nil
	}
	var out []problem
	for i, r := range ap.Spec.GetRules() {
		for j, f := range r.GetFrom() {
			src := f.GetSource()
			positive := len(src.GetPrincipals()) + len(src.GetRequestPrincipals()) + len(src.GetNamespaces()) + len(src.GetIpBlocks()) +
				len(src.GetRemoteIpBlocks()) + len(src.GetServiceAccounts()) + len(src.GetTrustDomains())
			negative := len(src.GetNotPrincipals()) + len(src.GetNotRequestPrincipals()) + len(src.GetNotNamespaces()) + len(src.GetNotIpBlocks()) +
				len(src.GetNotRemoteIpBlocks()) + len(src.GetNotServiceAccounts()) + len(src.GetNotTrustDomains())
			if contradiction(r) != "" {
				continue
			}
			open := &opening{reach: reachAnywhere, ports: rulePorts(r)}
			if positive == 0 && negative > 0 {
				out = append(out, opens(ruleNearlyAnyone.problemf("spec.rules[%d].from[%d].source has only not* fields: it matches every caller but those", i, j), open))
			}
			for field, blocks := range map[string][]string{"ipBlocks": src.GetIpBlocks(), "remoteIpBlocks": src.GetRemoteIpBlocks()} {
				if family := universalRanges(blocks); family != "" {
					out = append(out, opens(ruleNearlyAnyone.problemf("spec.rules[%d].from[%d].source.%s cover every %s address", i, j, field, family), open))
				}
			}
		}
	}
	return out
}

// httpFieldsOnTCP finds rules with fields only HTTP carries (semantics.HTTPOnly) on ports that a
// Service of the input in front of the policy's workloads declares as another protocol. On such
// traffic Istio's builder leaves an ALLOW rule out (it allows nothing there) and builds a DENY or
// CUSTOM rule without those fields (it matches every connection its other fields match: Istio's
// own validation warns that such a DENY "will deny all traffic to TCP ports").
func httpFieldsOnTCP(ap *securityv1.AuthorizationPolicy, opts Options) []problem {
	var out []problem
	for i, r := range ap.Spec.GetRules() {
		if ports := tcpPortsOfHTTPRule(ap, r, opts); len(ports) > 0 {
			effect := "the rule never matches there"
			if ap.Spec.GetAction() != securityv1beta1.AuthorizationPolicy_ALLOW {
				effect = "Istio drops those fields there, and the rule matches every connection its other fields match"
			}
			out = append(out, ruleAPHTTPOnTCP.problemf("spec.rules[%d] matches %s, only HTTP carries them, but Istio sees %s: %s",
				i, strings.Join(semantics.HTTPOnly(r), ", "), strings.Join(ports, ", "), effect))
		}
	}
	return out
}

// customProviderFindings finds workloads that two CUSTOM policies with different providers apply
// to: unless istiod runs with PILOT_ENABLE_MULTIPLE_CUSTOM_AUTHZ_PROVIDERS, Istio then turns every
// CUSTOM rule of the workload into a DENY rule (builder.go getBadCustomDenyRules).
func customProviderFindings(objs []Object, opts Options) []Finding {
	var custom []Object
	for _, o := range objs {
		if ap, ok := o.Object.(*securityv1.AuthorizationPolicy); ok && ap.Spec.GetAction() == securityv1beta1.AuthorizationPolicy_CUSTOM {
			custom = append(custom, o)
		}
	}
	var out []Finding
	for i, o := range custom {
		a := o.Object.(*securityv1.AuthorizationPolicy)
		for _, p := range custom[:i] {
			b := p.Object.(*securityv1.AuthorizationPolicy)
			if a.Spec.GetProvider().GetName() == b.Spec.GetProvider().GetName() || !overlap(a, b, opts) {
				continue
			}
			out = append(out, locate(o, []problem{ruleTwoProviders.problemf("CUSTOM provider %q, but AuthorizationPolicy %s/%s (%s:%d) gives the same workloads provider %q: without PILOT_ENABLE_MULTIPLE_CUSTOM_AUTHZ_PROVIDERS Istio denies every request their rules match",
				a.Spec.GetProvider().GetName(), b.Namespace, b.Name, p.File, p.Line, b.Spec.GetProvider().GetName())})...)
		}
	}
	return out
}

// invalidAuthorizationPolicy finds what istiod's validation refuses (semantics.Refusals; test/istio
// holds it to that validation on the public corpus and random policies), and a CUSTOM action
// without a provider or a provider without CUSTOM.
func invalidAuthorizationPolicy(ap *securityv1.AuthorizationPolicy, _ Options) []problem {
	found := semantics.Refusals(ap.Annotations, &ap.Spec)
	custom := ap.Spec.GetAction() == securityv1beta1.AuthorizationPolicy_CUSTOM
	if custom != (ap.Spec.GetProvider() != nil) {
		found = append(found, "a provider goes with action CUSTOM, and CUSTOM needs one")
	}
	slices.Sort(found)
	if len(found) == 0 {
		return nil
	}
	return []problem{ruleInvalidAuthorizationPolicy.problemf("istiod refuses it: %s", strings.Join(found, "; "))}
}

// httpFieldsForZtunnel finds, in a namespace the input says is in ambient mode, selector and
// namespace-wide policies with fields only HTTP carries: ztunnel enforces them (waypoints take
// targetRefs policies only) and, seeing layer 4 only, drops an ALLOW rule with such a field
// (istiod reports ZtunnelAccepted False, UnsupportedValue) or drops the fields of a DENY rule.
func httpFieldsForZtunnel(ap *securityv1.AuthorizationPolicy, opts Options) []problem {
	if !opts.ambient[ap.Namespace] || semantics.TargetsRefs(ap) || semantics.DryRun(ap.Annotations) {
		return nil
	}
	effect := "ztunnel drops the rule, and refuses its callers"
	if ap.Spec.GetAction() != securityv1beta1.AuthorizationPolicy_ALLOW {
		effect = "ztunnel drops those fields and matches every connection the rest of the rule matches"
	}
	var out []problem
	for i, r := range ap.Spec.GetRules() {
		if fields := semantics.HTTPOnly(r); len(fields) > 0 {
			out = append(out, ruleZtunnelHTTP.problemf("spec.rules[%d] matches %s in namespace %s, which is in ambient mode: %s", i, strings.Join(fields, ", "), ap.Namespace, effect))
		}
	}
	return out
}
