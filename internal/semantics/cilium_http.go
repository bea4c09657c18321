package semantics

import (
	"regexp/syntax"
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

// CiliumHTTPExample is a request an HTTP rule admits (a path and a method its expressions match),
// for probing a rule; ok is false when none could be made.
func CiliumHTTPExample(rule cilium.PortRuleHTTP) (path, method string, ok bool) {
	path, ok = regexExample(rule.Path, "/")
	if !ok {
		return "", "", false
	}
	method, ok = regexExample(rule.Method, "GET")
	return path, method, ok
}

// regexExample is a short string an expression matches whole (def for the empty expression).
func regexExample(expr, def string) (string, bool) {
	if expr == "" {
		return def, true
	}
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return "", false
	}
	var b strings.Builder
	writeExample(&b, re.Simplify())
	return b.String(), ciliumRegexMatches(expr, b.String())
}

// writeExample writes a string a parsed expression matches: the first branch of alternations, one
// repetition of a star, the fewest of others, a letter or digit for a class when it has one.
func writeExample(b *strings.Builder, re *syntax.Regexp) {
	switch re.Op {
	case syntax.OpLiteral:
		b.WriteString(string(re.Rune))
	case syntax.OpCharClass:
		b.WriteRune(classExample(re.Rune))
	case syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		b.WriteByte('x')
	case syntax.OpCapture, syntax.OpPlus, syntax.OpStar: // one of any number reads better than none
		writeExample(b, re.Sub[0])
	case syntax.OpRepeat:
		for range re.Min {
			writeExample(b, re.Sub[0])
		}
	case syntax.OpConcat:
		for _, s := range re.Sub {
			writeExample(b, s)
		}
	case syntax.OpAlternate:
		writeExample(b, re.Sub[0])
	}
}

// classExample picks a rune of a character class (pairs of ranges): x, a letter or a digit when
// the class has one.
func classExample(ranges []rune) rune {
	for _, want := range []rune{'x', 'a', 'A', '0', '-'} {
		for i := 0; i+1 < len(ranges); i += 2 {
			if ranges[i] <= want && want <= ranges[i+1] {
				return want
			}
		}
	}
	if len(ranges) == 0 {
		return 'x'
	}
	return ranges[0]
}
