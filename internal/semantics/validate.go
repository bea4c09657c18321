package semantics

import (
	"fmt"
	"strconv"
	"strings"

	securityv1beta1 "istio.io/api/security/v1beta1"
)

// Refusals lists what istiod's validation (pkg/config/validation ValidateAuthorizationPolicy,
// checkDryRunAnnotation and pkg/config/security) refuses in an AuthorizationPolicy, one message
// each, fields named as in the policy: a dry-run annotation ParseBool cannot read or on an action
// other than ALLOW and DENY, empty sources and operations, empty values, service accounts and
// trust domains Istio cannot read, addresses, ports, path templates and condition keys.
func Refusals(annotations map[string]string, spec *securityv1beta1.AuthorizationPolicy) []string {
	var out []string
	add := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	if v, ok := annotations[AnnotationDryRun]; ok {
		switch spec.GetAction() {
		case securityv1beta1.AuthorizationPolicy_ALLOW, securityv1beta1.AuthorizationPolicy_DENY:
			if _, err := strconv.ParseBool(v); err != nil {
				add("annotation %s: %q is not a boolean", AnnotationDryRun, v)
			}
		default:
			add("annotation %s goes with action ALLOW or DENY only, not %s", AnnotationDryRun, spec.GetAction())
		}
	}
	for i, r := range spec.GetRules() {
		for j, f := range r.GetFrom() {
			where := fmt.Sprintf("spec.rules[%d].from[%d].source", i, j)
			src := f.GetSource()
			if src == nil || len(ReadRule(&securityv1beta1.Rule{From: []*securityv1beta1.Rule_From{f}}, "").Callers[0]) == 0 {
				add("%s is empty", where)
				continue
			}
			if len(src.GetServiceAccounts())+len(src.GetNotServiceAccounts()) > 0 && len(src.GetPrincipals())+len(src.GetNotPrincipals())+len(src.GetNamespaces())+len(src.GetNotNamespaces()) > 0 {
				add("%s has serviceAccounts with principals or namespaces", where)
			}
		}
		for j, t := range r.GetTo() {
			if t.GetOperation() == nil || len(ReadRule(&securityv1beta1.Rule{To: []*securityv1beta1.Rule_To{t}}, "").Operations[0]) == 0 {
				add("spec.rules[%d].to[%d].operation is empty", i, j)
			}
		}
		for j, w := range r.GetWhen() {
			if len(w.GetValues())+len(w.GetNotValues()) == 0 {
				add("spec.rules[%d].when[%d] %s has no values", i, j, w.GetKey())
			}
			if err := conditionKey(w.GetKey()); err != nil {
				add("spec.rules[%d].when[%d]: %v", i, j, err)
			}
		}
		for _, c := range ReadRule(r, "").Clauses() {
			for _, v := range append(append([]string{}, c.Values...), c.NotValues...) {
				if err := refusedValue(c, v); err != nil {
					add("spec.rules[%d].%s %q: %v", i, c.Where, v, err)
				}
			}
			if c.Attribute == AttrServiceAccount && (len(c.Values) > 16 || len(c.NotValues) > 16) {
				add("spec.rules[%d].%s: more than 16 values", i, c.Where)
			}
		}
	}
	return out
}

// conditionKey is security.ValidateAttribute's test of a when key.
func conditionKey(key string) error {
	a, _ := conditionAttribute(key)
	switch {
	case key == "destination.namespace" || strings.HasPrefix(key, "destination.labels") || key == "destination.name" || key == "destination.user":
		return fmt.Errorf("attribute %s is not supported (replaced by the policy's namespace and selector)", key)
	case a == nil:
		return fmt.Errorf("unknown attribute %s", key)
	case a == AttrHeader || a == AttrClaims || a == AttrEnvoyFilter:
		if open := strings.Index(key, "["); !strings.HasSuffix(key, "]") || open <= 0 || open >= len(key)-2 {
			return fmt.Errorf("bad key %s: should have format a[b]", key)
		}
	}
	return nil
}

// refusedValue is what istiod refuses in one value of a clause.
func refusedValue(c Clause, v string) error {
	if v == "" {
		return fmt.Errorf("empty value")
	}
	switch c.Attribute {
	case AttrSourceIP, AttrRemoteIP, AttrDestinationIP:
		_, err := IstioCIDR(v)
		return err
	case AttrPort:
		_, err := IstioPort(v)
		return err
	case AttrServiceAccount:
		return serviceAccountValue(v)
	case AttrTrustDomain:
		if strings.Contains(v, "/") {
			return fmt.Errorf("a trust domain has no '/'")
		}
		return wildcardValue(v)
	case AttrPath:
		return pathTemplate(v)
	}
	return nil
}

// serviceAccountValue is security.CheckServiceAccount: NAME or NAMESPACE/NAME, no wildcard.
func serviceAccountValue(v string) error {
	switch ns, sa, ok := strings.Cut(v, "/"); {
	case strings.Contains(v, "*"):
		return fmt.Errorf("a wildcard is not allowed in serviceAccounts")
	case strings.Count(v, "/") > 1, ok && (ns == "" || sa == ""):
		return fmt.Errorf("want serviceAccount or namespace/serviceAccount")
	case len(v) > 320:
		return fmt.Errorf("longer than 320 characters")
	}
	return nil
}

// wildcardValue is security.CheckWildcardValues: one * at most, at the start or the end.
func wildcardValue(v string) error {
	if n := strings.Count(v, "*"); n > 1 || n == 1 && v != "*" && !strings.HasPrefix(v, "*") && !strings.HasSuffix(v, "*") {
		return fmt.Errorf("one * at most, at the start or the end")
	}
	return nil
}

// pathTemplate is security.CheckValidPathTemplate: {*} and {**} as whole segments, {**} last,
// and, in a template, segments of path characters only.
func pathTemplate(path string) error {
	template := strings.Contains(path, "{*}") || strings.Contains(path, "{**}")
	anySeen := false
	for _, glob := range strings.Split(strings.Trim(path, "/"), "/") {
		switch {
		case (glob == "{*}" || glob == "{**}") && anySeen:
			return fmt.Errorf("{**} is not the last operator")
		case glob == "{**}":
			anySeen = true
		case glob == "{*}":
		case strings.ContainsAny(glob, "{}"):
			return fmt.Errorf("'{' or '}' beyond a supported path template")
		case template && !pcharOnly(glob):
			return fmt.Errorf("segment %s has characters a path template cannot hold", glob)
		}
	}
	return nil
}

func pcharOnly(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-._~%!$&'()+,;:@=", r)) {
			return false
		}
	}
	return true
}
