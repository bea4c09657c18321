package semantics

import (
	"slices"
	"strings"
	"testing"

	securityv1beta1 "istio.io/api/security/v1beta1"
	"sigs.k8s.io/yaml"
)

func rule(t *testing.T, spec string) *securityv1beta1.Rule {
	t.Helper()
	r := &securityv1beta1.Rule{}
	if err := yaml.UnmarshalStrict([]byte(spec), r); err != nil {
		t.Fatal(err)
	}
	return r
}

// Each value form of each attribute, matched as Istio's generator.go builds it.
func TestAttributeMatches(t *testing.T) {
	web := &Request{Principal: "cluster.local/ns/shop/sa/web", SourceIP: "10.0.0.1", RemoteIP: "10.0.0.1", DestinationIP: "10.0.0.2", DestinationPort: 8080}
	plain := &Request{SourceIP: "192.0.2.9", RemoteIP: "192.0.2.9", DestinationPort: 8080}
	remote := &Request{Principal: "east.example.com/ns/pay/sa/checkout", SourceIP: "10.1.0.1", RemoteIP: "10.1.0.1", DestinationPort: 8080}
	http := func(path, method, host string) *Request {
		r := *web
		r.HTTP = &HTTP{Path: path, Method: method, Host: host, Headers: map[string]string{"X-Team": "blue"},
			JWT: &JWT{Issuer: "https://idp.example.com", Subject: "alice", Claims: map[string][]string{"groups": {"dev", "ops"}, "aud": {"shop"}, "a.b": {"deep"}}}}
		return &r
	}
	get := http("/api/v1/items?x=1", "GET", "Shop.Example.com")
	for _, tc := range []struct {
		name, rule string
		req        *Request
		want       bool
	}{
		{"principal exact", "from: [{source: {principals: [cluster.local/ns/shop/sa/web]}}]", web, true},
		{"principal prefix", "from: [{source: {principals: [cluster.local/ns/shop/*]}}]", web, true},
		{"principal suffix", "from: [{source: {principals: ['*/sa/web']}}]", web, true},
		{"principal presence", "from: [{source: {principals: ['*']}}]", web, true},
		{"principal presence without mTLS", "from: [{source: {principals: ['*']}}]", plain, false},
		{"not principal presence without mTLS", "from: [{source: {notPrincipals: ['*']}}]", plain, true},
		{"principal with spiffe:// never matches", "from: [{source: {principals: ['spiffe://cluster.local/ns/shop/sa/web']}}]", web, false},
		// Istio checks the leading * first: "*shop*" is a suffix "shop*", taken literally.
		{"principal with * at both ends", "from: [{source: {principals: ['*shop*']}}]", web, false},
		{"principal with * at both ends, literal tail", "from: [{source: {principals: ['*web*']}}]", &Request{Principal: "cluster.local/ns/shop/sa/web*"}, true},
		{"namespace", "from: [{source: {namespaces: [shop]}}]", web, true},
		{"namespace wildcard inside", "from: [{source: {namespaces: ['s*p']}}]", web, true},
		{"namespace wildcard inside, no match", "from: [{source: {namespaces: ['team-*-prod']}}]", web, false},
		{"namespace needs an identity", "from: [{source: {namespaces: [shop]}}]", plain, false},
		{"service account bare name: the policy's namespace", "from: [{source: {serviceAccounts: [web]}}]", web, true},
		{"service account of another namespace", "from: [{source: {serviceAccounts: [other/web]}}]", web, false},
		{"service account with its namespace", "from: [{source: {serviceAccounts: [shop/web]}}]", web, true},
		{"service account name is not a prefix", "from: [{source: {serviceAccounts: [we]}}]", web, false},
		{"trust domain", "from: [{source: {trustDomains: [cluster.local]}}]", web, true},
		{"trust domain other", "from: [{source: {trustDomains: [cluster.local]}}]", remote, false},
		{"trust domain wildcard", "from: [{source: {trustDomains: ['*.example.com']}}]", remote, true},
		{"trust domain presence", "from: [{source: {trustDomains: ['*']}}]", plain, false},
		{"ipBlocks range", "from: [{source: {ipBlocks: [10.0.0.0/8]}}]", web, true},
		{"ipBlocks bare address", "from: [{source: {ipBlocks: [10.0.0.1]}}]", web, true},
		{"ipBlocks unmasked range", "from: [{source: {ipBlocks: [10.0.0.9/24]}}]", web, true},
		{"notIpBlocks", "from: [{source: {notIpBlocks: [10.0.0.0/8]}}]", web, false},
		{"remoteIpBlocks", "from: [{source: {remoteIpBlocks: [192.0.2.0/24]}}]", plain, true},
		{"ports", "to: [{operation: {ports: ['8080']}}]", web, true},
		{"notPorts", "to: [{operation: {notPorts: ['8080']}}]", web, false},
		{"path exact", "to: [{operation: {paths: [/api/v1/items]}}]", get, true},
		{"path prefix", "to: [{operation: {paths: [/api/*]}}]", get, true},
		{"path suffix", "to: [{operation: {paths: ['*/items']}}]", get, true},
		{"path presence", "to: [{operation: {paths: ['*']}}]", get, true},
		{"path template one segment", "to: [{operation: {paths: ['/api/{*}/items']}}]", get, true},
		{"path template one segment is not two", "to: [{operation: {paths: ['/{*}/items']}}]", get, false},
		{"path template any segments", "to: [{operation: {paths: ['/api/{**}']}}]", get, true},
		{"path ** is literal outside a template", "to: [{operation: {paths: ['/api/**']}}]", get, false},
		{"method", "to: [{operation: {methods: [GET]}}]", get, true},
		{"method is case-sensitive", "to: [{operation: {methods: [get]}}]", get, false},
		{"host is case-insensitive", "to: [{operation: {hosts: [shop.example.com]}}]", get, true},
		{"host suffix", "to: [{operation: {hosts: ['*.example.com']}}]", get, true},
		{"request principal any", "from: [{source: {requestPrincipals: ['*']}}]", get, true},
		{"request principal exact", "from: [{source: {requestPrincipals: [https://idp.example.com/alice]}}]", get, true},
		{"request principal issuer wildcard", "from: [{source: {requestPrincipals: ['*/alice']}}]", get, true},
		{"request principal subject prefix", "from: [{source: {requestPrincipals: ['https://idp.example.com/al*']}}]", get, true},
		{"request principal without a token", "from: [{source: {requestPrincipals: ['*']}}]", http("/", "GET", "x"), true},
		{"header", "when: [{key: 'request.headers[x-team]', values: [blue]}]", get, true},
		{"header absent", "when: [{key: 'request.headers[x-other]', notValues: ['*']}]", get, true},
		{"claim in a list", "when: [{key: 'request.auth.claims[groups]', values: [ops]}]", get, true},
		{"nested claim", "when: [{key: 'request.auth.claims[a][b]', values: [deep]}]", get, true},
		{"audiences", "when: [{key: request.auth.audiences, values: [shop]}]", get, true},
		{"source.serviceAccount condition", "when: [{key: source.serviceAccount, values: [web]}]", web, true},
		{"destination.port condition", "when: [{key: destination.port, values: ['8081']}]", web, false},
		{"destination.ip condition", "when: [{key: destination.ip, values: [10.0.0.0/24]}]", web, true},
		{"from entries are alternatives", "from: [{source: {namespaces: [other]}}, {source: {principals: ['*']}}]", web, true},
		{"fields of a source all match", "from: [{source: {namespaces: [shop], principals: ['*/sa/api']}}]", web, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := ReadRule(rule(t, tc.rule), "shop")
			built, skipped := r.Chain(DenyLike, tc.req.HTTP == nil)
			if skipped != "" {
				t.Fatalf("skipped: %s", skipped)
			}
			got, unknown := built.Matches(tc.req)
			if unknown != "" || got != tc.want {
				t.Errorf("got %v (unknown %q), want %v", got, unknown, tc.want)
			}
		})
	}
	// The request without a token: requestPrincipals never match it.
	noToken := http("/", "GET", "x")
	noToken.HTTP.JWT = nil
	if ok, _ := ReadRule(rule(t, "from: [{source: {requestPrincipals: ['*']}}]"), "shop").Matches(noToken); ok {
		t.Error("requestPrincipals [*] matches a request without a token")
	}
}

// Istio's builder on a TCP chain (model.go checkError): an ALLOW rule with an HTTP-only field is
// left out whole; a DENY rule loses only that field, so it matches more.
func TestChain(t *testing.T) {
	tcp := &Request{Principal: "cluster.local/ns/shop/sa/web", SourceIP: "10.0.0.1", DestinationPort: 5432}
	for _, tc := range []struct {
		name, rule  string
		action      Action
		tcp         bool
		skipped     bool
		matchesTCP  bool
		httpOnlyLen int
	}{
		{"ALLOW with paths on TCP is left out", "to: [{operation: {paths: [/data]}}]", Allow, true, true, false, 1},
		{"ALLOW with paths in one to entry is left out whole", "to: [{operation: {ports: ['5432']}}, {operation: {paths: [/data]}}]", Allow, true, true, false, 1},
		{"ALLOW with hosts on TCP is left out", "to: [{operation: {hosts: [x]}}]", Allow, true, true, false, 1},
		{"ALLOW with a header condition on TCP is left out", "when: [{key: 'request.headers[x]', values: [z]}]", Allow, true, true, false, 1},
		{"DENY with requestPrincipals on TCP denies every caller", "from: [{source: {requestPrincipals: ['*']}}]", DenyLike, true, false, true, 1},
		{"DENY with notRequestPrincipals on TCP denies every caller", "from: [{source: {notRequestPrincipals: ['*']}}]", DenyLike, true, false, true, 1},
		{"DENY keeps its L4 fields on TCP", "from: [{source: {requestPrincipals: ['*'], namespaces: [other]}}]", DenyLike, true, false, false, 1},
		{"DENY with paths on TCP matches the port", "to: [{operation: {ports: ['5432'], paths: [/admin]}}]", DenyLike, true, false, true, 1},
		{"ALLOW on HTTP keeps everything", "to: [{operation: {paths: [/data]}}]", Allow, false, false, false, 1},
		{"ALLOW with an address Istio refuses is left out", "from: [{source: {ipBlocks: [not-an-ip]}}]", Allow, true, true, false, 0},
		{"DENY drops an address Istio refuses", "from: [{source: {ipBlocks: [not-an-ip]}}]", DenyLike, true, false, true, 0},
		{"a key Istio does not know skips the rule for DENY too", "when: [{key: request.unknown, values: [x]}]", DenyLike, true, true, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := rule(t, tc.rule)
			built, skipped := ReadRule(r, "shop").Chain(tc.action, tc.tcp)
			if (skipped != "") != tc.skipped {
				t.Fatalf("skipped %q, want skipped=%v", skipped, tc.skipped)
			}
			if tc.tcp && !tc.skipped {
				if got, _ := built.Matches(tcp); got != tc.matchesTCP {
					t.Errorf("matches a TCP connection: %v, want %v", got, tc.matchesTCP)
				}
			}
			if got := HTTPOnly(r); len(got) != tc.httpOnlyLen {
				t.Errorf("HTTPOnly = %v", got)
			}
		})
	}
}

func TestHTTPOnlyNamesEachField(t *testing.T) {
	got := HTTPOnly(rule(t, "from: [{source: {requestPrincipals: ['*']}}]\nto: [{operation: {hosts: [a], methods: [GET], paths: [/x], ports: ['80']}}]\nwhen: [{key: 'request.auth.claims[iss]', values: [x]}, {key: source.ip, values: [10.0.0.1]}]"))
	want := []string{"from[0].source.requestPrincipals", "when[0] request.auth.claims[iss]", "to[0].operation.hosts", "to[0].operation.methods", "to[0].operation.paths"}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("got %v\nwant %v", got, want)
	}
}

func TestDryRun(t *testing.T) {
	for v, want := range map[string]bool{"true": true, "True": true, "1": true, "t": true, "TRUE": true, "false": false, "0": false, "yes": false, "": false} {
		if got := DryRun(map[string]string{AnnotationDryRun: v}); got != want {
			t.Errorf("%q: %v, want %v", v, got, want)
		}
	}
	if DryRun(nil) {
		t.Error("no annotation is a dry run")
	}
}

func TestPrincipal(t *testing.T) {
	p := Principal("cluster.local", "shop", "web")
	td, ns, sa, ok := ParsePrincipal(p)
	if p != "cluster.local/ns/shop/sa/web" || !ok || td != "cluster.local" || ns != "shop" || sa != "web" {
		t.Errorf("%s → %s %s %s %v", p, td, ns, sa, ok)
	}
	for _, bad := range []string{"cluster.local/ns/shop", "cluster.local/sa/web/ns/shop", "*"} {
		if _, _, _, ok := ParsePrincipal(bad); ok {
			t.Errorf("%s parsed", bad)
		}
	}
	if !strings.HasPrefix(SpiffePrefix+p, "spiffe://cluster.local/") {
		t.Error("prefix")
	}
}
