package lint

import (
	"slices"

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
