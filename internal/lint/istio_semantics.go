package lint

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	securityv1beta1 "istio.io/api/security/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	networkingv1 "k8s.io/api/networking/v1"

	"github.com/servicegraph/servicegraph-operator/internal/compiler"
	"github.com/servicegraph/servicegraph-operator/internal/semantics"
)

// isAllow tells whether a policy allows what it matches, in force: an ALLOW policy that is not a
// dry run (semantics.DryRun: a dry run only logs what it would do).
func isAllow(ap *securityv1.AuthorizationPolicy) bool {
	return ap.Spec.GetAction() == securityv1beta1.AuthorizationPolicy_ALLOW && !semantics.DryRun(ap.Annotations)
}

// contradiction names a clause that makes a rule match nothing: "*" among both its values and
// its not-values, for an attribute where "*" is presence (semantics.PresenceMatches), or an HTTP
// not-field with "*" (every HTTP request has a host, a method and a path, and on TCP traffic Istio
// leaves an ALLOW rule with HTTP fields out). "" when there is none.
func contradiction(r *securityv1beta1.Rule) string {
	for _, c := range semantics.ReadRule(r, "").Clauses() {
		star := slices.Contains(c.NotValues, "*")
		switch {
		case !star || !semantics.PresenceMatches(c.Attribute):
		case slices.Contains(c.Values, "*"):
			return c.Where
		case c.Attribute == semantics.AttrHost || c.Attribute == semantics.AttrMethod || c.Attribute == semantics.AttrPath:
			return c.Where
		}
	}
	return ""
}

// callerKeys are the condition keys that say who the caller is: a rule with one of them in when is
// not open to any caller (a JWT's claims, a source address or identity).
var callerKeys = []string{"request.auth.", "source.", "remote.ip"}

func callerInConditions(r *securityv1beta1.Rule) bool {
	return slices.ContainsFunc(r.GetWhen(), func(c *securityv1beta1.Condition) bool {
		return len(c.GetValues()) > 0 && slices.ContainsFunc(callerKeys, func(k string) bool { return strings.HasPrefix(c.GetKey(), k) })
	})
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

// tcpPortsOfHTTPRule describes the ports, of the rule or else of every Service port in front of the
// workloads, that a Service of the input declares as a protocol other than HTTP, when the rule
// matches attributes only HTTP carries (semantics.HTTPOnly: hosts, methods, paths, request
// principals, headers, JWT claims) and every one of its ports is such. None otherwise.
func tcpPortsOfHTTPRule(ap *securityv1.AuthorizationPolicy, r *securityv1beta1.Rule, opts Options) []string {
	http, ports := len(semantics.HTTPOnly(r)) > 0, []string{}
	for _, t := range r.GetTo() {
		ports = append(ports, t.GetOperation().GetPorts()...)
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
			target := compiler.TargetPort(sp)
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
