package lint

import (
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"
	securityv1beta1 "istio.io/api/security/v1beta1"
	typev1beta1 "istio.io/api/type/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
)

var authorizationPolicyChecks = []check[*securityv1.AuthorizationPolicy]{
	allowsAnySource,
	allowsAnyPrincipal,
	allowsNamespaceWide,
	denyNeverMatches,
	allowsEverything,
	neverMatches,
}

var peerAuthenticationChecks = []check[*securityv1.PeerAuthentication]{
	weakMTLS,
}

func isAllow(ap *securityv1.AuthorizationPolicy) bool {
	return ap.Spec.GetAction() == securityv1beta1.AuthorizationPolicy_ALLOW
}

// allowsAnySource finds ALLOW rules that match whatever the caller: a rule without from, or with
// a from entry whose source is empty (from entries are alternatives, so one empty entry is enough).
func allowsAnySource(ap *securityv1.AuthorizationPolicy, _ Options) []problem {
	if !isAllow(ap) {
		return nil
	}
	var out []problem
	for i, r := range ap.Spec.GetRules() {
		if len(r.GetFrom()) == 0 || slices.ContainsFunc(r.GetFrom(), func(f *securityv1beta1.Rule_From) bool { return proto.Size(f.GetSource()) == 0 }) {
			out = append(out, ruleAllowAnySource.problemf("spec.rules[%d] has no from.source: it matches any caller", i))
		}
	}
	return out
}

func allowsAnyPrincipal(ap *securityv1.AuthorizationPolicy, _ Options) []problem {
	if !isAllow(ap) {
		return nil
	}
	var out []problem
	for i, r := range ap.Spec.GetRules() {
		for j, f := range r.GetFrom() {
			if slices.Contains(f.GetSource().GetPrincipals(), "*") {
				out = append(out, ruleAnyPrincipal.problemf(`spec.rules[%d].from[%d].source.principals has "*": it matches any workload with a mesh identity`, i, j))
			}
		}
	}
	return out
}

// allowsNamespaceWide finds ALLOW policies with rules and no selector outside the root namespace.
// Without rules such a policy is Istio's allow-nothing (namespace-wide deny), which is the point;
// in the root namespace a mesh-wide policy is the platform team's deliberate choice.
func allowsNamespaceWide(ap *securityv1.AuthorizationPolicy, opts Options) []problem {
	if !isAllow(ap) || len(ap.Spec.GetRules()) == 0 || ap.Namespace == opts.RootNamespace || !selectsAllWorkloads(ap.Spec.GetSelector()) ||
		ap.Spec.GetTargetRef() != nil || len(ap.Spec.GetTargetRefs()) > 0 {
		return nil
	}
	return []problem{ruleAllowNamespaceWide.problemf("no selector: its rules apply to every workload of namespace %s", ap.Namespace)}
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
			out = append(out, ruleAllowEverything.problemf("spec.rules[%d] is empty: it matches every request from anyone", i))
		}
	}
	return out
}

// neverMatches finds values Istio's validation accepts but its authorization builder can never
// match (the builder's output shows it; test/istio checks each against it): a principal written
// with spiffe:// (Istio adds the prefix itself) or with a wildcard between other characters, a path
// without a leading / (other than a * form), port "0", and a method in lower case.
func neverMatches(ap *securityv1.AuthorizationPolicy, _ Options) []problem {
	var out []problem
	bad := func(field string, i, j int, value, why string) {
		out = append(out, ruleNeverMatches.problemf("spec.rules[%d].%s[%d] %q never matches: %s", i, field, j, value, why))
	}
	for i, r := range ap.Spec.GetRules() {
		for _, f := range r.GetFrom() {
			for j, p := range append(slices.Clone(f.GetSource().GetPrincipals()), f.GetSource().GetNotPrincipals()...) {
				switch {
				case strings.HasPrefix(p, "spiffe://"):
					bad("from.source.principals", i, j, p, "Istio matches spiffe://"+p+"; write it without spiffe://")
				case strings.Contains(strings.Trim(p, "*"), "*"):
					bad("from.source.principals", i, j, p, "a * matches only at the start or the end")
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
					bad("to.operation.methods", i, j, m, "HTTP methods are matched case-sensitively and sent in upper case")
				}
			}
		}
	}
	return out
}

func selectsAllWorkloads(sel *typev1beta1.WorkloadSelector) bool {
	return len(sel.GetMatchLabels()) == 0
}

// weakModes are the mutual-TLS modes worth a finding when they apply beyond single workloads.
var weakModes = map[securityv1beta1.PeerAuthentication_MutualTLS_Mode]*Rule{
	securityv1beta1.PeerAuthentication_MutualTLS_DISABLE:    ruleMTLSDisabled,
	securityv1beta1.PeerAuthentication_MutualTLS_PERMISSIVE: ruleMTLSPermissive,
}

// weakMTLS finds DISABLE and PERMISSIVE for a whole namespace, or the whole mesh from the root
// namespace. A workload-scoped exception (with a selector) is how Istio means them to be used.
func weakMTLS(pa *securityv1.PeerAuthentication, opts Options) []problem {
	mode := pa.Spec.GetMtls().GetMode()
	rule, weak := weakModes[mode]
	if !weak || !selectsAllWorkloads(pa.Spec.GetSelector()) {
		return nil
	}
	scope := "every workload of namespace " + pa.Namespace
	if pa.Namespace == opts.RootNamespace {
		scope = "the whole mesh (root namespace " + pa.Namespace + ")"
	}
	return []problem{rule.problemf("mtls.mode %s applies to %s", mode, scope)}
}
