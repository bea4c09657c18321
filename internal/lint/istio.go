package lint

import (
	"fmt"
	"maps"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/servicegraph/servicegraph-operator/internal/compiler"

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
	allowsNearlyAnyone,
	httpFieldsOnTCP,
	invalidAuthorizationPolicy,
}

var peerAuthenticationChecks = []check[*securityv1.PeerAuthentication]{
	weakMTLS,
	disabledForWorkloads,
	portLevelWithoutSelector,
	invalidPorts,
}

// isAllow tells whether a policy allows what it matches, in force: an ALLOW policy that is not a
// dry run (istio.io/dry-run: "true" only logs what it would do).
func isAllow(ap *securityv1.AuthorizationPolicy) bool {
	return ap.Spec.GetAction() == securityv1beta1.AuthorizationPolicy_ALLOW && ap.Annotations[annotationDryRun] != "true"
}

const annotationDryRun = "istio.io/dry-run"

// contradiction names a field that makes a rule match nothing: values and not-values that both
// contain "*" (presence and absence at once), or an HTTP not-field with "*". "" when there is none.
func contradiction(r *securityv1beta1.Rule) string {
	star := func(v []string) bool { return slices.Contains(v, "*") }
	for _, f := range r.GetFrom() {
		src := f.GetSource()
		for field, pair := range map[string][2][]string{
			"principals": {src.GetPrincipals(), src.GetNotPrincipals()}, "requestPrincipals": {src.GetRequestPrincipals(), src.GetNotRequestPrincipals()},
			"namespaces": {src.GetNamespaces(), src.GetNotNamespaces()}, "serviceAccounts": {src.GetServiceAccounts(), src.GetNotServiceAccounts()},
		} {
			if star(pair[0]) && star(pair[1]) {
				return "from.source." + field
			}
		}
	}
	for _, c := range r.GetWhen() {
		if star(c.GetValues()) && star(c.GetNotValues()) {
			return "when " + c.GetKey()
		}
	}
	for _, t := range r.GetTo() {
		op := t.GetOperation()
		if star(op.GetPorts()) && star(op.GetNotPorts()) {
			return "to.operation.ports"
		}
		// Every HTTP request has a host, a method and a path, and on TCP traffic Istio skips a rule
		// with HTTP fields: "not any" of them matches nothing.
		for field, not := range map[string][]string{"hosts": op.GetNotHosts(), "methods": op.GetNotMethods(), "paths": op.GetNotPaths()} {
			if star(not) {
				return "to.operation." + field
			}
		}
	}
	return ""
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
		if len(r.GetFrom()) == 0 || slices.ContainsFunc(r.GetFrom(), func(f *securityv1beta1.Rule_From) bool { return proto.Size(f.GetSource()) == 0 }) {
			if len(tcpPortsOfHTTPRule(ap, r, opts)) == 0 && !callerInConditions(r) && contradiction(r) == "" {
				out = append(out, ruleAllowAnySource.problemf("spec.rules[%d] has no from.source: it matches any caller", i))
			}
		}
	}
	return out
}

// callerKeys are the condition keys that say who the caller is: a rule with one of them in when is
// not open to any caller (a JWT's claims, a source address or identity).
var callerKeys = []string{"request.auth.", "source.", "remote.ip"}

func callerInConditions(r *securityv1beta1.Rule) bool {
	return slices.ContainsFunc(r.GetWhen(), func(c *securityv1beta1.Condition) bool {
		return len(c.GetValues()) > 0 && slices.ContainsFunc(callerKeys, func(k string) bool { return strings.HasPrefix(c.GetKey(), k) })
	})
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
			if len(src.GetTrustDomains()) > 0 && len(src.GetPrincipals())+len(src.GetNamespaces())+len(src.GetServiceAccounts()) == 0 {
				out = append(out, ruleAnyPrincipal.problemf("spec.rules[%d].from[%d].source.trustDomains %v alone: it matches any workload of those trust domains", i, j, src.GetTrustDomains()))
			}
			for _, p := range f.GetSource().GetPrincipals() {
				if broadPrincipal(p) {
					out = append(out, ruleAnyPrincipal.problemf(`spec.rules[%d].from[%d].source.principals has %q: it matches any workload with a mesh identity%s`, i, j, p, inTrustDomain(p)))
				}
			}
			if slices.Contains(f.GetSource().GetNamespaces(), "*") {
				out = append(out, ruleAnyPrincipal.problemf(`spec.rules[%d].from[%d].source.namespaces has "*": it matches a workload of any namespace`, i, j))
			}
		}
	}
	return out
}

// broadPrincipal tells whether a principal pattern pins no namespace: "*", a prefix match that ends
// before /ns/NAMESPACE/, or a suffix match that does not contain it.
func broadPrincipal(p string) bool {
	switch {
	case p == "*":
		return true
	case strings.HasSuffix(p, "*"):
		return !pinnedNamespace.MatchString(strings.TrimSuffix(p, "*"))
	case strings.HasPrefix(p, "*"):
		return !pinnedNamespace.MatchString(strings.TrimPrefix(p, "*"))
	}
	return false
}

// pinnedNamespace is the part of a principal that names its namespace in full.
var pinnedNamespace = regexp.MustCompile(`(^|/)ns/[^/*]+/`)

func inTrustDomain(p string) string {
	if td, _, ok := strings.Cut(p, "/"); ok && !strings.Contains(td, "*") {
		return " of trust domain " + td
	}
	return ""
}

// allowsNamespaceWide finds ALLOW policies without a selector, outside the root namespace, with a
// rule that admits any caller: every workload of the namespace is open to it. A namespace-wide
// policy for named callers is the usual way to say who may call the namespace; without rules it is
// Istio's allow-nothing; in the root namespace it is the platform team's deliberate choice.
func allowsNamespaceWide(ap *securityv1.AuthorizationPolicy, opts Options) []problem {
	if !isAllow(ap) || len(ap.Spec.GetRules()) == 0 || ap.Namespace == opts.RootNamespace || !selectsAllWorkloads(ap.Spec.GetSelector()) ||
		ap.Spec.GetTargetRef() != nil || len(ap.Spec.GetTargetRefs()) > 0 || len(allowsAnySource(ap, opts)) == 0 {
		return nil
	}
	return []problem{ruleAllowNamespaceWide.problemf("no selector, and a rule for any caller: every workload of namespace %s is open to it", ap.Namespace)}
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
// with spiffe:// (Istio adds the prefix itself) or with a wildcard inside or at both ends, a path
// without a leading / (other than a * form), port "0", and a method in lower case. One finding per
// policy lists them all.
func neverMatches(ap *securityv1.AuthorizationPolicy, _ Options) []problem {
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
			if positive == 0 && negative > 0 {
				out = append(out, ruleNearlyAnyone.problemf("spec.rules[%d].from[%d].source has only not* fields: it matches every caller but those", i, j))
			}
			for field, blocks := range map[string][]string{"ipBlocks": src.GetIpBlocks(), "remoteIpBlocks": src.GetRemoteIpBlocks()} {
				if family := universalRanges(blocks); family != "" {
					out = append(out, ruleNearlyAnyone.problemf("spec.rules[%d].from[%d].source.%s cover every %s address", i, j, field, family))
				}
			}
		}
	}
	return out
}

// universalRanges tells whether address ranges (or single addresses) cover a whole family.
func universalRanges(ranges []string) string {
	blocks := make([]*networkingv1.IPBlock, len(ranges))
	for i, r := range ranges {
		blocks[i] = &networkingv1.IPBlock{CIDR: r}
	}
	family, share, _ := universal(blocks)
	if share != "every" {
		return ""
	}
	return family
}

// httpFieldsOnTCP finds rules with HTTP fields (paths, methods) on ports that a Service of the input
// in front of the policy's workloads declares as another protocol: Istio applies such a rule to
// HTTP traffic only, so on those ports it matches nothing (an ALLOW rule allows nothing there, a
// DENY rule denies nothing).
func httpFieldsOnTCP(ap *securityv1.AuthorizationPolicy, opts Options) []problem {
	var out []problem
	for i, r := range ap.Spec.GetRules() {
		if ports := tcpPortsOfHTTPRule(ap, r, opts); len(ports) > 0 {
			out = append(out, ruleAPHTTPOnTCP.problemf("spec.rules[%d] matches paths or methods, but Istio sees %s: the rule never matches there", i, strings.Join(ports, ", ")))
		}
	}
	return out
}

// tcpPortsOfHTTPRule describes the ports, of the rule or else of every Service port in front of the
// workloads, that a Service of the input declares as a protocol other than HTTP, when the rule
// matches HTTP fields and every one of its ports is such. None otherwise.
func tcpPortsOfHTTPRule(ap *securityv1.AuthorizationPolicy, r *securityv1beta1.Rule, opts Options) []string {
	http, ports := false, []string{}
	for _, t := range r.GetTo() {
		op := t.GetOperation()
		http = http || len(op.GetPaths())+len(op.GetNotPaths())+len(op.GetMethods())+len(op.GetNotMethods()) > 0
		ports = append(ports, op.GetPorts()...)
	}
	labels := ap.Spec.GetSelector().GetMatchLabels()
	if !http || len(labels) == 0 {
		return nil
	}
	var found []string
	seen := map[string]bool{}
	for _, svc := range opts.services[ap.Namespace] {
		if !compiler.Selects(svc.Selector, labels) {
			continue
		}
		for _, sp := range svc.Ports {
			target := sp.TargetPort
			if target.IntVal == 0 && target.StrVal == "" {
				target = intstr.FromInt32(sp.Port)
			}
			number := target.String()
			if len(ports) > 0 && !slices.Contains(ports, number) {
				continue
			}
			protocol, source := compiler.IstioProtocol(sp)
			if protocol == "" || compiler.HTTPProtocol(protocol) {
				return nil // a port Istio may see as HTTP: the rule can match
			}
			seen[number] = true
			found = append(found, fmt.Sprintf("port %s as %s (Service %s, %s)", number, protocol, svc.Name, source))
		}
	}
	for _, p := range ports {
		if !seen[p] {
			return nil // a port no Service of the input declares: it may be HTTP
		}
	}
	return found
}

// disabledForWorkloads finds mutual TLS turned off for some workloads or ports: that traffic is
// plain text and carries no identity. Namespace and mesh scope are PA001's.
func disabledForWorkloads(pa *securityv1.PeerAuthentication, _ Options) []problem {
	var found []string
	if mode := pa.Spec.GetMtls().GetMode(); weakModes[mode] != nil && !selectsAllWorkloads(pa.Spec.GetSelector()) {
		found = append(found, fmt.Sprintf("mtls.mode %s for the workloads labelled %s", mode, labelList(pa.Spec.GetSelector().GetMatchLabels())))
	}
	for _, port := range slices.Sorted(maps.Keys(pa.Spec.GetPortLevelMtls())) {
		if mode := pa.Spec.GetPortLevelMtls()[port].GetMode(); weakModes[mode] != nil {
			found = append(found, fmt.Sprintf("portLevelMtls[%d] is %s", port, mode))
		}
	}
	if len(found) == 0 {
		return nil
	}
	return []problem{ruleMTLSDisabledSome.problemf("%s: plain text is accepted there", strings.Join(found, "; "))}
}

// invalidPorts finds portLevelMtls ports istiod refuses: 0 or above 65535.
func invalidPorts(pa *securityv1.PeerAuthentication, _ Options) []problem {
	var out []problem
	for _, port := range slices.Sorted(maps.Keys(pa.Spec.GetPortLevelMtls())) {
		if port == 0 || port > 65535 {
			out = append(out, rulePortLevelNoSelector.problemf("portLevelMtls port %d: istiod refuses ports outside 1-65535", port))
		}
	}
	return out
}

// portLevelWithoutSelector finds portLevelMtls on a policy without a selector, which istiod
// refuses (ports are a workload's).
func portLevelWithoutSelector(pa *securityv1.PeerAuthentication, _ Options) []problem {
	if len(pa.Spec.GetPortLevelMtls()) == 0 || !selectsAllWorkloads(pa.Spec.GetSelector()) {
		return nil
	}
	return []problem{rulePortLevelNoSelector.problemf("portLevelMtls without a selector: istiod refuses it, and the ports' modes never apply")}
}

func labelList(labels map[string]string) string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		out = append(out, k+"="+labels[k])
	}
	return strings.Join(out, ",")
}

// customProviderFindings finds workloads that two CUSTOM policies with different providers apply
// to: Istio takes one extension provider per workload and rejects the others.
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
			out = append(out, locate(o, []problem{ruleTwoProviders.problemf("CUSTOM provider %q, but AuthorizationPolicy %s/%s (%s:%d) gives the same workloads provider %q: Istio applies one provider per workload",
				a.Spec.GetProvider().GetName(), b.Namespace, b.Name, p.File, p.Line, b.Spec.GetProvider().GetName())})...)
		}
	}
	return out
}

// overlap tells whether two policies can apply to one workload: same namespace (or one in the root
// namespace, which applies mesh-wide) and selectors that do not contradict each other.
func overlap(a, b *securityv1.AuthorizationPolicy, opts Options) bool {
	if a.Namespace != b.Namespace && a.Namespace != opts.RootNamespace && b.Namespace != opts.RootNamespace {
		return false
	}
	la, lb := a.Spec.GetSelector().GetMatchLabels(), b.Spec.GetSelector().GetMatchLabels()
	for k, v := range la {
		if w, ok := lb[k]; ok && w != v {
			return false
		}
	}
	return true
}

// invalidAuthorizationPolicy finds what istiod's validation refuses (test/istio holds it to that
// validation on the public corpus): addresses that are not an IP or a CIDR, ports that are not
// numbers, a CUSTOM action without a provider or a provider without CUSTOM.
func invalidAuthorizationPolicy(ap *securityv1.AuthorizationPolicy, _ Options) []problem {
	var found []string
	custom := ap.Spec.GetAction() == securityv1beta1.AuthorizationPolicy_CUSTOM
	if custom != (ap.Spec.GetProvider() != nil) {
		found = append(found, "a provider goes with action CUSTOM, and CUSTOM needs one")
	}
	for i, r := range ap.Spec.GetRules() {
		for j, f := range r.GetFrom() {
			src := f.GetSource()
			if len(src.GetServiceAccounts())+len(src.GetNotServiceAccounts()) > 0 && len(src.GetPrincipals())+len(src.GetNotPrincipals())+len(src.GetNamespaces())+len(src.GetNotNamespaces()) > 0 {
				found = append(found, fmt.Sprintf("spec.rules[%d].from[%d].source has serviceAccounts with principals or namespaces", i, j))
			}
			for field, values := range map[string][]string{"ipBlocks": src.GetIpBlocks(), "notIpBlocks": src.GetNotIpBlocks(),
				"remoteIpBlocks": src.GetRemoteIpBlocks(), "notRemoteIpBlocks": src.GetNotRemoteIpBlocks()} {
				for _, v := range values {
					if _, err := netip.ParsePrefix(v); err != nil {
						if _, err := netip.ParseAddr(v); err != nil {
							found = append(found, fmt.Sprintf("spec.rules[%d].from[%d].source.%s %q is not an IP address or range", i, j, field, v))
						}
					}
				}
			}
		}
		for j, t := range r.GetTo() {
			for _, p := range append(slices.Clone(t.GetOperation().GetPorts()), t.GetOperation().GetNotPorts()...) {
				if n, err := strconv.Atoi(p); err != nil || n < 0 || n > 65535 {
					found = append(found, fmt.Sprintf("spec.rules[%d].to[%d].operation port %q is not a port number", i, j, p))
				}
			}
		}
	}
	slices.Sort(found)
	if len(found) == 0 {
		return nil
	}
	return []problem{ruleInvalidAuthorizationPolicy.problemf("istiod refuses it: %s", strings.Join(found, "; "))}
}
