package eval

import (
	"strings"
	"testing"
	"time"

	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The forms on which the evaluator once disagreed with Istio, each now read as Istio's builder and
// authn code read them (test/istio holds the evaluator to the builder on every such form).
func TestAsIstioReadsIt(t *testing.T) {
	database := &Workload{Namespace: "shop", Name: "database", Labels: map[string]string{"app": "database"}, IP: "10.0.0.3", ServiceAccount: "database", Meshed: true}
	legacy := &Workload{Namespace: "shop", Name: "legacy", Labels: map[string]string{"app": "legacy"}, IP: "10.0.0.9"}
	aged := func(p *securityv1.PeerAuthentication, minutes int) *securityv1.PeerAuthentication {
		p.CreationTimestamp = metav1.NewTime(time.Date(2026, 1, 1, 0, minutes, 0, 0, time.UTC))
		return p
	}
	dryRun := func(p *securityv1.AuthorizationPolicy, v string) *securityv1.AuthorizationPolicy {
		p.Annotations = map[string]string{"istio.io/dry-run": v}
		return p
	}
	allowNothing := ap(t, "deny-all", "shop", "  {}\n")
	for _, tc := range []struct {
		name    string
		objects []any
		from    *Workload
		to      *Workload
		http    *HTTP
		allowed bool
		by      string
	}{
		{"serviceAccounts: a bare name is the policy's namespace", []any{allowNothing,
			ap(t, "db", "shop", "  selector: {matchLabels: {app: database}}\n  rules: [{from: [{source: {serviceAccounts: [web]}}]}]\n")},
			web, database, nil, true, "AuthorizationPolicy shop/db spec.rules[0]"},
		{"serviceAccounts: another namespace's", []any{allowNothing,
			ap(t, "db", "shop", "  selector: {matchLabels: {app: database}}\n  rules: [{from: [{source: {serviceAccounts: [other/web]}}]}]\n")},
			web, database, nil, false, "no ALLOW rule matches"},
		{"namespaces: a wildcard inside", []any{allowNothing,
			ap(t, "db", "shop", "  rules: [{from: [{source: {namespaces: ['s*p']}}]}]\n")},
			web, database, nil, true, "AuthorizationPolicy shop/db spec.rules[0]"},
		{"principals: a leading * is matched first", []any{allowNothing,
			ap(t, "db", "shop", "  rules: [{from: [{source: {principals: ['*shop*']}}]}]\n")},
			web, database, nil, false, "no ALLOW rule matches"},
		{"dry-run True is a dry run", []any{dryRun(ap(t, "nope", "shop", "  action: DENY\n  rules: [{}]\n"), "True")},
			web, api, nil, true, "no ALLOW policy applies: allowed"},
		{"dry-run 1 is a dry run", []any{dryRun(ap(t, "nope", "shop", "  action: DENY\n  rules: [{}]\n"), "1")},
			web, api, nil, true, "no ALLOW policy applies: allowed"},
		{"dry-run yes is enforced (ParseBool refuses it)", []any{dryRun(ap(t, "nope", "shop", "  action: DENY\n  rules: [{}]\n"), "yes")},
			web, api, nil, false, "AuthorizationPolicy shop/nope spec.rules[0]"},
		{"DENY with requestPrincipals on TCP denies every caller", []any{ap(t, "jwt", "shop", "  action: DENY\n  rules: [{from: [{source: {requestPrincipals: ['*']}}]}]\n")},
			web, api, nil, false, "AuthorizationPolicy shop/jwt spec.rules[0]"},
		{"DENY with requestPrincipals on HTTP denies only a token", []any{ap(t, "jwt", "shop", "  action: DENY\n  rules: [{from: [{source: {requestPrincipals: ['*']}}]}]\n")},
			web, api, &HTTP{Path: "/", Method: "GET"}, true, "no ALLOW policy applies: allowed"},
		{"ALLOW with a path in one to entry is left out on TCP", []any{ap(t, "api", "shop", "  rules: [{to: [{operation: {ports: ['8080']}}, {operation: {paths: [/x]}}]}]\n")},
			web, api, nil, false, "no ALLOW rule matches"},
		{"two CUSTOM providers: Istio denies what their rules match", []any{
			ap(t, "a", "shop", "  action: CUSTOM\n  provider: {name: opa}\n  rules: [{to: [{operation: {ports: ['8080']}}]}]\n"),
			ap(t, "b", "shop", "  action: CUSTOM\n  provider: {name: oauth}\n  rules: [{to: [{operation: {ports: ['9090']}}]}]\n")},
			web, api, nil, false, "AuthorizationPolicy shop/a spec.rules[0]"},
		{"one CUSTOM provider is asked", []any{
			ap(t, "a", "shop", "  action: CUSTOM\n  provider: {name: opa}\n  rules: [{to: [{operation: {ports: ['8080']}}]}]\n")},
			web, api, nil, true, "no ALLOW policy applies: allowed"},
		{"two namespace PeerAuthentications: the oldest wins", []any{
			aged(pa(t, "young", "shop", "  mtls: {mode: PERMISSIVE}\n"), 5), aged(pa(t, "old", "shop", "  mtls: {mode: STRICT}\n"), 1)},
			legacy, api, nil, false, "PeerAuthentication shop/old"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &Cluster{}
			c.Add(tc.objects...)
			v := c.Check(Request{From: Endpoint{Workload: tc.from}, To: tc.to, Port: 8080, Protocol: corev1.ProtocolTCP, HTTP: tc.http})
			var by string
			for _, s := range v.Steps {
				if !s.Allowed || s.Applies && strings.Contains(s.By, "/") {
					by = s.By
					break
				}
			}
			if !v.Allowed && by == "" || v.Allowed && by == "" {
				by = stepOf(v, Authorization).By
			}
			if v.Allowed != tc.allowed || by != tc.by {
				t.Errorf("allowed %v by %q, want %v by %q\n%+v", v.Allowed, by, tc.allowed, tc.by, v.Steps)
			}
		})
	}
}
