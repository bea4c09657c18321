package semantics

import (
	"errors"
	"fmt"
	"strings"

	securityv1beta1 "istio.io/api/security/v1beta1"
)

// Side is where Istio's builder puts an attribute: with the caller (an Envoy RBAC principal) or
// with the operation (a permission). A rule matches when one caller alternative and one operation
// alternative match; a when condition joins every alternative of its side.
type Side int

const (
	Caller Side = iota
	Operation
)

// Attribute is one thing an AuthorizationPolicy rule can match on, as Istio's
// pilot/pkg/security/authz/model/generator.go declares it.
type Attribute struct {
	// Key is its name in when conditions ("source.principal"); keys with a name in brackets
	// ("request.headers[X]") are written with "[]".
	Key string
	// Field is its name in from.source or to.operation ("principals"), "" when only a condition
	// names it.
	Field string
	Side  Side
	// HTTPOnly attributes exist only in an HTTP request: on a TCP connection Istio's builder
	// cannot express them (see Chain).
	HTTPOnly bool
	// match tells whether a value (a pattern) matches the request; known is false when the
	// request does not say (an attribute the evaluator is not given).
	match func(c Clause, value string, r *Request) (matched, known bool)
	// check is the builder's own refusal of a value (an address that does not parse, a port that
	// is not a number): Istio then treats the value like an HTTP-only one on TCP.
	check func(c Clause, value string) error
}

// The attributes, in the order Istio's model lists them.
var (
	AttrPrincipal        = &Attribute{Key: "source.principal", Field: "principals", Side: Caller, match: principalMatch}
	AttrNamespace        = &Attribute{Key: "source.namespace", Field: "namespaces", Side: Caller, match: namespaceMatch}
	AttrServiceAccount   = &Attribute{Key: "source.serviceAccount", Field: "serviceAccounts", Side: Caller, match: serviceAccountMatch}
	AttrTrustDomain      = &Attribute{Key: "source.trustDomain", Field: "trustDomains", Side: Caller, match: trustDomainMatch}
	AttrSourceIP         = &Attribute{Key: "source.ip", Field: "ipBlocks", Side: Caller, match: sourceIPMatch, check: checkAddress}
	AttrRemoteIP         = &Attribute{Key: "remote.ip", Field: "remoteIpBlocks", Side: Caller, match: remoteIPMatch, check: checkAddress}
	AttrRequestPrincipal = &Attribute{Key: "request.auth.principal", Field: "requestPrincipals", Side: Caller, HTTPOnly: true, match: requestPrincipalMatch}
	AttrAudiences        = &Attribute{Key: "request.auth.audiences", Side: Caller, HTTPOnly: true, match: claimMatch("aud")}
	AttrPresenter        = &Attribute{Key: "request.auth.presenter", Side: Caller, HTTPOnly: true, match: claimMatch("azp")}
	AttrClaims           = &Attribute{Key: "request.auth.claims[]", Side: Caller, HTTPOnly: true, match: claimMatch(""), check: checkClaimName}
	AttrHeader           = &Attribute{Key: "request.headers[]", Side: Caller, HTTPOnly: true, match: headerMatch, check: checkHeaderName}
	AttrDestinationIP    = &Attribute{Key: "destination.ip", Side: Operation, match: destinationIPMatch, check: checkAddress}
	AttrPort             = &Attribute{Key: "destination.port", Field: "ports", Side: Operation, match: portMatch, check: checkPort}
	AttrHost             = &Attribute{Field: "hosts", Side: Operation, HTTPOnly: true, match: hostMatch}
	AttrMethod           = &Attribute{Field: "methods", Side: Operation, HTTPOnly: true, match: methodMatch}
	AttrPath             = &Attribute{Field: "paths", Side: Operation, HTTPOnly: true, match: pathMatch}
	AttrSNI              = &Attribute{Key: "connection.sni", Side: Operation, match: unknownMatch}
	AttrEnvoyFilter      = &Attribute{Key: "experimental.envoy.filters.", Side: Operation, match: unknownMatch}
)

// conditionAttribute finds the attribute a when key names; nil for a key Istio does not know,
// which makes its builder skip the whole rule, whatever the action.
func conditionAttribute(key string) (*Attribute, string) {
	for _, a := range []*Attribute{AttrPrincipal, AttrNamespace, AttrServiceAccount, AttrTrustDomain, AttrSourceIP, AttrRemoteIP,
		AttrRequestPrincipal, AttrAudiences, AttrPresenter, AttrDestinationIP, AttrPort, AttrSNI} {
		if key == a.Key {
			return a, ""
		}
	}
	switch {
	case strings.HasPrefix(key, "request.headers"):
		return AttrHeader, strings.TrimPrefix(key, "request.headers")
	case strings.HasPrefix(key, "request.auth.claims"):
		return AttrClaims, strings.TrimPrefix(key, "request.auth.claims")
	case strings.HasPrefix(key, AttrEnvoyFilter.Key):
		return AttrEnvoyFilter, key
	}
	return nil, ""
}

// Clause is one attribute of a rule with its values and not-values: it matches when some value
// matches (or none is given) and no not-value does.
type Clause struct {
	Attribute *Attribute
	// Name is the bracketed part of a header or claim key ("[x-team]"), "" for other attributes.
	Name              string
	Values, NotValues []string
	// Where is the clause's place in the policy ("from[0].source.principals", "when[1]").
	Where string
	// PolicyNamespace is what a bare service account name means.
	PolicyNamespace string
}

// Rule is an AuthorizationPolicy rule as Istio's builder reads it: alternatives of callers (one
// per from entry, or one without) and of operations (one per to entry, or one without), each
// joined with the when conditions of its side.
type Rule struct {
	Callers, Operations [][]Clause
	// Invalid names a when key Istio does not know: its builder skips the rule for every action.
	Invalid string
}

// ReadRule reads a rule of a policy of a namespace.
func ReadRule(r *securityv1beta1.Rule, policyNamespace string) Rule {
	var out Rule
	var callerWhen, operationWhen []Clause
	for i, w := range r.GetWhen() {
		a, name := conditionAttribute(w.GetKey())
		if a == nil {
			out.Invalid = fmt.Sprintf("when[%d] key %q is not an attribute Istio knows", i, w.GetKey())
			continue
		}
		c := Clause{Attribute: a, Name: name, Values: w.GetValues(), NotValues: w.GetNotValues(), Where: fmt.Sprintf("when[%d] %s", i, w.GetKey()), PolicyNamespace: policyNamespace}
		if a.Side == Caller {
			callerWhen = append(callerWhen, c)
		} else {
			operationWhen = append(operationWhen, c)
		}
	}
	field := func(where string, a *Attribute, values, notValues []string) []Clause {
		if len(values)+len(notValues) == 0 {
			return nil
		}
		return []Clause{{Attribute: a, Values: values, NotValues: notValues, Where: where + "." + a.Field, PolicyNamespace: policyNamespace}}
	}
	for i, f := range r.GetFrom() {
		s, where := f.GetSource(), fmt.Sprintf("from[%d].source", i)
		var alt []Clause
		alt = append(alt, field(where, AttrPrincipal, s.GetPrincipals(), s.GetNotPrincipals())...)
		alt = append(alt, field(where, AttrRequestPrincipal, s.GetRequestPrincipals(), s.GetNotRequestPrincipals())...)
		alt = append(alt, field(where, AttrServiceAccount, s.GetServiceAccounts(), s.GetNotServiceAccounts())...)
		alt = append(alt, field(where, AttrTrustDomain, s.GetTrustDomains(), s.GetNotTrustDomains())...)
		alt = append(alt, field(where, AttrNamespace, s.GetNamespaces(), s.GetNotNamespaces())...)
		alt = append(alt, field(where, AttrRemoteIP, s.GetRemoteIpBlocks(), s.GetNotRemoteIpBlocks())...)
		alt = append(alt, field(where, AttrSourceIP, s.GetIpBlocks(), s.GetNotIpBlocks())...)
		out.Callers = append(out.Callers, append(alt, callerWhen...))
	}
	if len(r.GetFrom()) == 0 {
		out.Callers = [][]Clause{callerWhen}
	}
	for i, t := range r.GetTo() {
		o, where := t.GetOperation(), fmt.Sprintf("to[%d].operation", i)
		var alt []Clause
		alt = append(alt, field(where, AttrHost, o.GetHosts(), o.GetNotHosts())...)
		alt = append(alt, field(where, AttrMethod, o.GetMethods(), o.GetNotMethods())...)
		alt = append(alt, field(where, AttrPath, o.GetPaths(), o.GetNotPaths())...)
		alt = append(alt, field(where, AttrPort, o.GetPorts(), o.GetNotPorts())...)
		out.Operations = append(out.Operations, append(alt, operationWhen...))
	}
	if len(r.GetTo()) == 0 {
		out.Operations = [][]Clause{operationWhen}
	}
	return out
}

// Clauses lists every clause of the rule, callers first.
func (r Rule) Clauses() []Clause {
	var out []Clause
	for _, alt := range append(append([][]Clause{}, r.Callers...), r.Operations...) {
		out = append(out, alt...)
	}
	return out
}

// HTTPOnly names the clauses of a rule that only an HTTP request carries ("to[0].operation.paths"),
// each once.
func HTTPOnly(r *securityv1beta1.Rule) []string {
	var out []string
	seen := map[string]bool{}
	for _, c := range ReadRule(r, "").Clauses() {
		if c.Attribute.HTTPOnly && !seen[c.Where] {
			seen[c.Where] = true
			out = append(out, c.Where)
		}
	}
	return out
}

// Action is how a rule's policy treats what it matches, for the builder's degradation: ALLOW
// rules become narrower, the others (DENY, AUDIT, CUSTOM) wider.
type Action int

const (
	Allow Action = iota
	DenyLike
)

// ActionOf reads a policy's action.
func ActionOf(a securityv1beta1.AuthorizationPolicy_Action) Action {
	if a == securityv1beta1.AuthorizationPolicy_ALLOW {
		return Allow
	}
	return DenyLike
}

// Chain is the rule as Istio builds it on one filter chain (model.go checkError): a value the
// builder cannot express there (an HTTP-only attribute on a TCP connection, a value it refuses)
// drops the whole rule of an ALLOW policy ("a smaller allow policy") and only that value of the
// others ("a wider deny policy"): a clause left with no value matches every request. skipped says
// why the rule is left out, "" when it is kept; a when key Istio does not know skips the rule
// whatever the action.
func (r Rule) Chain(action Action, tcp bool) (built Rule, skipped string) {
	if r.Invalid != "" {
		return Rule{}, r.Invalid
	}
	for _, side := range []struct {
		in  [][]Clause
		out *[][]Clause
	}{{r.Callers, &built.Callers}, {r.Operations, &built.Operations}} {
		for _, alt := range side.in {
			kept := []Clause{}
			for _, c := range alt {
				values, notValues, refused := c.expressible(tcp)
				if refused != "" && action == Allow {
					return Rule{}, refused
				}
				if len(values)+len(notValues) > 0 {
					c.Values, c.NotValues = values, notValues
					kept = append(kept, c)
				}
			}
			*side.out = append(*side.out, kept)
		}
	}
	return built, ""
}

// expressible splits a clause's values into those the builder expresses on the chain and the
// reason it refuses the others.
func (c Clause) expressible(tcp bool) (values, notValues []string, refused string) {
	keep := func(in []string) []string {
		var out []string
		for _, v := range in {
			switch err := c.refusal(v, tcp); {
			case err == nil:
				out = append(out, v)
			case refused == "":
				refused = fmt.Sprintf("%s: %v", c.Where, err)
			}
		}
		return out
	}
	return keep(c.Values), keep(c.NotValues), refused
}

// refusal is the builder's error for one value on the chain, nil when it expresses it.
func (c Clause) refusal(value string, tcp bool) error {
	if tcp && c.Attribute.HTTPOnly {
		return errHTTPOnly
	}
	if c.Attribute.check != nil {
		return c.Attribute.check(c, value)
	}
	return nil
}

var errHTTPOnly = errors.New("HTTP only, and the connection is TCP")

// Matches tells whether a built rule (see Chain) matches a request: some caller alternative and
// some operation alternative. unknown names a clause the request does not say enough about; the
// rule then does not match.
func (r Rule) Matches(req *Request) (matched bool, unknown string) {
	any := func(alts [][]Clause) (bool, string) {
		var unknown string
		for _, alt := range alts {
			ok, why := allMatch(alt, req)
			if ok {
				return true, ""
			}
			if unknown == "" {
				unknown = why
			}
		}
		return false, unknown
	}
	callers, why := any(r.Callers)
	if !callers {
		return false, why
	}
	return any(r.Operations)
}

func allMatch(alt []Clause, req *Request) (bool, string) {
	for _, c := range alt {
		ok, known := c.Matches(req)
		if !known {
			return false, c.Where + " not evaluated: the request does not say"
		}
		if !ok {
			return false, ""
		}
	}
	return true, ""
}

// Matches tells whether the clause matches: one of its values (when it has any) and none of its
// not-values.
func (c Clause) Matches(req *Request) (matched, known bool) {
	anyOf := func(values []string) (bool, bool) {
		for _, v := range values {
			ok, known := c.Attribute.match(c, v, req)
			if !known {
				return false, false
			}
			if ok {
				return true, true
			}
		}
		return false, true
	}
	if len(c.Values) > 0 {
		ok, known := anyOf(c.Values)
		if !known || !ok {
			return false, known
		}
	}
	excluded, known := anyOf(c.NotValues)
	return !excluded, known
}

// PresenceMatches tells whether "*" among an attribute's values matches any request that has the
// attribute at all: true for identities, JWT fields, headers, hosts, methods and paths; false for
// service accounts (a literal name), addresses and ports (which Istio refuses as "*").
func PresenceMatches(a *Attribute) bool {
	switch a {
	case AttrServiceAccount, AttrSourceIP, AttrRemoteIP, AttrDestinationIP, AttrPort, AttrEnvoyFilter:
		return false
	}
	return true
}
