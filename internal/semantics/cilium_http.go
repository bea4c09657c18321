package semantics

import (
	"strings"

	"github.com/servicegraph/servicegraph-operator/internal/cilium"
)

// CiliumHTTPMatches tells whether an HTTP rule matches a request, as Cilium's Envoy filter reads it
// (pkg/envoy/policy getHTTPRule): path, method and host are regular expressions (RE2, Envoy's
// safe_regex) matched against the whole :path (query string included), :method and :authority,
// an empty one matching any; each of headers is "NAME VALUE" (the value exactly) or "NAME"
// (present); each of headerMatches requires its value (or presence, without one), unless it says
// what to do on a mismatch (log, add, delete, replace: the request passes). unknown says what the
// rule needs that the request does not tell (its path, method, host, a secret's value); the rule
// then does not match.
func CiliumHTTPMatches(rule cilium.PortRuleHTTP, req *HTTP) (matches bool, unknown string) {
	var unknowns []string
	known := func(expr, value, what string) bool {
		if expr != "" && value == "" {
			unknowns = append(unknowns, "the request's "+what+" is not known")
			return true
		}
		return ciliumRegexMatches(expr, value)
	}
	ok := known(rule.Path, req.Path, "path") && known(rule.Method, req.Method, "method") && known(rule.Host, req.Host, "host")
	if rule.Headers != nil {
		for _, h := range *rule.Headers {
			name, value, exact := strings.Cut(h, " ")
			got, present := header(req.Headers, strings.TrimRight(name, ":"))
			ok = ok && present && (!exact || got == value)
		}
	}
	if rule.HeaderMatches != nil {
		for _, m := range *rule.HeaderMatches {
			got, present := header(req.Headers, m.Name)
			switch {
			case m.Mismatch != "":
			case m.Secret != nil:
				unknowns = append(unknowns, "header "+m.Name+" is matched against a secret's value")
			default:
				ok = ok && present && (m.Value == "" || got == m.Value)
			}
		}
	}
	if !ok || len(unknowns) == 0 {
		return ok && len(unknowns) == 0, ""
	}
	return false, strings.Join(unknowns, "; ")
}

// header finds a request header by name, in any case.
func header(headers map[string]string, name string) (string, bool) {
	for k, v := range headers {
		if strings.EqualFold(k, name) {
			return v, true
		}
	}
	return "", false
}
