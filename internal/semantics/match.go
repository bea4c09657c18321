package semantics

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// Request is what Istio's proxy knows of a connection when it authorizes it.
type Request struct {
	// Principal is the caller's mutual-TLS identity, TRUST_DOMAIN/ns/NAMESPACE/sa/NAME; "" when the
	// connection carries none (plain text, or an unmeshed caller).
	Principal string
	// SourceIP is the direct peer's address, RemoteIP the original client's (the same when nothing
	// forwards), DestinationIP the destination pod's; "" when not known.
	SourceIP, RemoteIP, DestinationIP string
	DestinationPort                   int32
	// HTTP is the request when Istio sees the port as HTTP, nil for a TCP connection.
	HTTP *HTTP
}

// HTTP is what an HTTP request carries that AuthorizationPolicies match.
type HTTP struct {
	// Path and Method are the request's; "" when not known (a source that does not say).
	Path, Method string
	// Host is the :authority; "" when not known.
	Host string
	// Headers are the request's other headers (names in any case); none when nil.
	Headers map[string]string
	// JWT is the request's verified token, nil without one.
	JWT *JWT
}

// JWT is what Istio reads of a request's verified token.
type JWT struct {
	Issuer, Subject string
	// Claims are the token's other claims by name ("aud", "azp", "groups"), a nested claim by its
	// names joined with "." ("a.b" for request.auth.claims[a][b]).
	Claims map[string][]string
}

// principal is the string Istio's principal matchers see: the certificate's URI SAN.
func (r *Request) principal() string {
	if r.Principal == "" {
		return ""
	}
	return SpiffePrefix + r.Principal
}

// envoyString matches a value the way Istio's matcher.StringMatcherWithPrefix builds it: "*" is
// any non-empty value, a leading * (checked first) a suffix, a trailing * a prefix, anything else
// exact; prefix goes before the pattern except for "*".
func envoyString(pattern, prefix, s string) bool {
	switch {
	case pattern == "*":
		return s != ""
	case strings.HasPrefix(pattern, "*"):
		return strings.HasPrefix(s, prefix) && strings.HasSuffix(s[len(prefix):], pattern[1:])
	case strings.HasSuffix(pattern, "*"):
		return strings.HasPrefix(s, prefix+strings.TrimSuffix(pattern, "*"))
	}
	return s == prefix+pattern
}

// PatternMatches is Istio's string pattern for principals, paths and JWT claims (see envoyString).
func PatternMatches(pattern, value string) bool { return envoyString(pattern, "", value) }

// headerPattern is Istio's matcher.HeaderMatcher: "*" is presence.
func headerPattern(pattern string, value string, present bool) bool {
	if !present {
		return false
	}
	if pattern == "*" {
		return true
	}
	return envoyString(pattern, "", value)
}

func principalMatch(_ Clause, v string, r *Request) (bool, bool) {
	p := r.principal()
	return p != "" && envoyString(v, SpiffePrefix, p), true
}

// namespaceMatch is srcNamespaceGenerator: ".*/ns/NAMESPACE/.*" against the principal, where a *
// anywhere in the value stands for any text.
func namespaceMatch(_ Clause, v string, r *Request) (bool, bool) {
	p := r.principal()
	if p == "" {
		return false, true
	}
	parts := strings.Split(v, "*")
	for i, part := range parts {
		parts[i] = regexp.QuoteMeta(part)
	}
	return fullMatch(".*/ns/"+strings.Join(parts, ".*")+"/.*", p), true
}

// serviceAccountMatch is srcServiceAccountGenerator: NAMESPACE/NAME, or a bare NAME in the
// policy's own namespace, with no wildcard.
func serviceAccountMatch(c Clause, v string, r *Request) (bool, bool) {
	p := r.principal()
	if p == "" {
		return false, true
	}
	ns, sa, ok := strings.Cut(v, "/")
	if !ok {
		ns, sa = c.PolicyNamespace, v
	}
	return fullMatch("spiffe://.+/ns/"+regexp.QuoteMeta(ns)+"/(.+/|)sa/"+regexp.QuoteMeta(sa)+"(/.+)?", p), true
}

// ServiceAccountNamespace is the namespace a serviceAccounts value names: its own, or the policy's
// for a bare name.
func ServiceAccountNamespace(policyNamespace, value string) (namespace, name string) {
	if ns, sa, ok := strings.Cut(value, "/"); ok {
		return ns, sa
	}
	return policyNamespace, value
}

// trustDomainMatch is srcTrustDomainGenerator: the principal's trust domain, with one * standing
// for any text without a slash.
func trustDomainMatch(_ Clause, v string, r *Request) (bool, bool) {
	p := r.principal()
	switch {
	case p == "":
		return false, true
	case v == "*":
		return true, true
	case !strings.Contains(v, "*"):
		return strings.HasPrefix(p, SpiffePrefix+v+"/"), true
	}
	before, after, _ := strings.Cut(v, "*")
	return fullMatch("spiffe://"+regexp.QuoteMeta(before)+"[^/]*"+regexp.QuoteMeta(after)+"/.*", p), true
}

func sourceIPMatch(_ Clause, v string, r *Request) (bool, bool) { return inRange(v, r.SourceIP) }
func remoteIPMatch(_ Clause, v string, r *Request) (bool, bool) { return inRange(v, r.RemoteIP) }
func destinationIPMatch(_ Clause, v string, r *Request) (bool, bool) {
	return inRange(v, r.DestinationIP)
}

// inRange matches an address against an address or a range as Istio reads them
// (util.AddrStrToCidrRange); known is false when the address is not known.
func inRange(pattern, ip string) (bool, bool) {
	if ip == "" {
		return false, false
	}
	addr, err := netip.ParseAddr(ip)
	prefix, perr := IstioCIDR(pattern)
	return err == nil && perr == nil && prefix.Masked().Contains(addr), true
}

// IstioCIDR reads an address or a range as Istio does: a bare address is a /32 (or /128).
func IstioCIDR(s string) (netip.Prefix, error) {
	if s == "" {
		return netip.Prefix{}, errors.New("empty address")
	}
	if strings.Contains(s, "/") {
		return netip.ParsePrefix(s)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func checkAddress(_ Clause, v string) error {
	_, err := IstioCIDR(v)
	return err
}

// IstioPort reads a port as Istio's builder does (model/util.go convertToPort).
func IstioPort(v string) (int32, error) {
	p, err := strconv.ParseUint(v, 10, 32)
	if err != nil || p > 65535 {
		return 0, fmt.Errorf("invalid port %q", v)
	}
	return int32(p), nil
}

func checkPort(_ Clause, v string) error {
	_, err := IstioPort(v)
	return err
}

func portMatch(_ Clause, v string, r *Request) (bool, bool) {
	p, err := IstioPort(v)
	return err == nil && p == r.DestinationPort, true
}

func hostMatch(_ Clause, v string, r *Request) (bool, bool) {
	if r.HTTP == nil {
		return false, true
	}
	if r.HTTP.Host == "" {
		return false, false
	}
	return headerPattern(strings.ToLower(v), strings.ToLower(r.HTTP.Host), true), true
}

// methodMatch: "" is a request whose method is not known (seen by a source that does not say).
func methodMatch(_ Clause, v string, r *Request) (bool, bool) {
	if r.HTTP != nil && r.HTTP.Method == "" {
		return false, false
	}
	return r.HTTP != nil && headerPattern(v, r.HTTP.Method, true), true
}

// pathMatch is pathGenerator: a pattern, or a template whose {*} is one path segment and {**}
// any number of them (Envoy's uri_template), against the path without its query.
func pathMatch(_ Clause, v string, r *Request) (bool, bool) {
	if r.HTTP == nil {
		return false, true
	}
	if r.HTTP.Path == "" {
		return false, false // a request whose path is not known
	}
	path, _, _ := strings.Cut(r.HTTP.Path, "?")
	if strings.Contains(v, "{*}") || strings.Contains(v, "{**}") {
		return fullMatch(pathTemplateRegex(v), path), true
	}
	return envoyString(v, "", path), true
}

// pathTemplateRegex is Envoy's uri_template as a regular expression: a segment {*} is one or more
// path characters, {**} (last) any characters including slashes, others literal.
func pathTemplateRegex(template string) string {
	const pchar = `[a-zA-Z0-9\-._~%!$&'()+,;:@=]`
	segments := strings.Split(template, "/")
	for i, s := range segments {
		switch s {
		case "{*}":
			segments[i] = pchar + "+"
		case "{**}":
			segments[i] = `[a-zA-Z0-9\-._~%!$&'()+,;:@=/]*`
		default:
			segments[i] = regexp.QuoteMeta(s)
		}
	}
	return strings.Join(segments, "/")
}

func headerMatch(c Clause, v string, r *Request) (bool, bool) {
	if r.HTTP == nil {
		return false, true
	}
	name, err := bracketed(c.Name)
	if err != nil {
		return false, true
	}
	for k, value := range r.HTTP.Headers {
		if strings.EqualFold(k, name) {
			return headerPattern(v, value, true), true
		}
	}
	return false, true
}

func checkHeaderName(c Clause, _ string) error {
	_, err := bracketed(c.Name)
	return err
}

// bracketed reads "[NAME]" (model/util.go extractNameInBrackets).
func bracketed(s string) (string, error) {
	if !strings.HasPrefix(s, "[") || !strings.HasSuffix(s, "]") {
		return "", fmt.Errorf("expecting format [<NAME>], but found %s", s)
	}
	return strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"), nil
}

// claimNames reads "[a][b]" into its names, or one "[name]" (extractNameInNestedBrackets).
func claimNames(s string) ([]string, error) {
	var out []string
	for begin := 0; begin < len(s); {
		end := -1
		if s[begin] == '[' {
			for i := begin + 1; i < len(s) && s[i] != '['; i++ {
				if s[i] == ']' {
					end = i
					break
				}
			}
		}
		if end == -1 {
			name, err := bracketed(s)
			return []string{name}, err
		}
		out = append(out, s[begin+1:end])
		begin = end + 1
	}
	return out, nil
}

func checkClaimName(c Clause, _ string) error {
	_, err := claimNames(c.Name)
	return err
}

// claimMatch matches a claim of the request's token (aud, azp, or the one a key names): some of
// its values against the pattern.
func claimMatch(claim string) func(Clause, string, *Request) (bool, bool) {
	return func(c Clause, v string, r *Request) (bool, bool) {
		if r.HTTP == nil || r.HTTP.JWT == nil {
			return false, true
		}
		name := claim
		if name == "" {
			names, err := claimNames(c.Name)
			if err != nil {
				return false, true
			}
			name = strings.Join(names, ".")
		}
		for _, value := range r.HTTP.JWT.Claims[name] {
			if envoyString(v, "", value) {
				return true, true
			}
		}
		return false, true
	}
}

// requestPrincipalMatch is requestPrincipalGenerator: ISSUER/SUBJECT split at the last slash,
// each side matched on its own ("*" alone is any token).
func requestPrincipalMatch(_ Clause, v string, r *Request) (bool, bool) {
	if r.HTTP == nil || r.HTTP.JWT == nil {
		return false, true
	}
	iss, sub := r.HTTP.JWT.Issuer, r.HTTP.JWT.Subject
	anyValue := func(s string) bool { return s != "" }
	idx := strings.LastIndex(v, "/")
	found := idx >= 0
	wantIss, wantSub := v, ""
	if found {
		wantIss, wantSub = v[:idx], v[idx+1:]
	}
	var issOK, subOK bool
	switch {
	case v == "*":
		issOK, subOK = anyValue(iss), anyValue(sub)
	case strings.HasPrefix(v, "*") && found:
		issOK = wantIss == "*" && anyValue(iss) || wantIss != "*" && strings.HasSuffix(iss, strings.TrimPrefix(wantIss, "*"))
		subOK = sub == wantSub
	case strings.HasPrefix(v, "*"):
		issOK, subOK = anyValue(iss), strings.HasSuffix(sub, strings.TrimPrefix(v, "*"))
	case strings.HasSuffix(v, "*") && found:
		issOK = iss == wantIss
		subOK = wantSub == "*" && anyValue(sub) || wantSub != "*" && strings.HasPrefix(sub, strings.TrimSuffix(wantSub, "*"))
	case strings.HasSuffix(v, "*"):
		issOK, subOK = strings.HasPrefix(iss, strings.TrimSuffix(v, "*")), anyValue(sub)
	default:
		issOK, subOK = iss == wantIss, sub == wantSub && found
	}
	return issOK && subOK, true
}

func unknownMatch(Clause, string, *Request) (bool, bool) { return false, false }

var regexps sync.Map // string → *regexp.Regexp

// fullMatch matches the whole string, as Envoy's safe_regex does.
func fullMatch(expr, s string) bool {
	re, ok := regexps.Load(expr)
	if !ok {
		re, _ = regexps.LoadOrStore(expr, regexp.MustCompile("^(?:"+expr+")$"))
	}
	return re.(*regexp.Regexp).MatchString(s)
}
