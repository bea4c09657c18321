package cilium

import (
	"regexp"
	"strings"
	"testing"

	cilium "github.com/cilium/proxy/go/cilium/api"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/cilium/cilium/pkg/crypto/certificatemanager"
	envoypolicy "github.com/cilium/cilium/pkg/envoy/policy"
	"github.com/cilium/cilium/pkg/policy/api"

	"github.com/servicegraph/servicegraph-operator/internal/compiler"
)

// graphPaths are the paths of the golden inputs and random worlds, and forms with characters a
// regular expression reads specially ("?" and "#" excepted: see TestPathWithQueryIsRefused).
var graphPaths = []string{"/data", "/", "/api/*", "/v1/orders", "/healthz", "*.json", "/reports/*", "/shop.Catalog/*",
	"/cache.v1.Cache/*", "/orders/*", "/cart", "/v1/reports", "*", "/a+b(c)", "/x.y[z]", "/$1^|{2}"}

// TestCiliumPathAsEnvoyMatchesIt holds compiler.CiliumPath to the graph's meaning of a path, as
// Istio reads it (exact, "/prefix/*", "*suffix", "*" any; the query string left out): each path's
// expression is turned into the proxy's rules by Cilium's own translator (what the agent sends
// Envoy: a safe_regex on :path, which must match the whole value, query string included), and
// each request built around the path is let through exactly when the graph's path matches it.
func TestCiliumPathAsEnvoyMatchesIt(t *testing.T) {
	checked := 0
	for _, p := range graphPaths {
		rules := envoyRules(t, compiler.CiliumPath(p))
		for _, req := range requestsAround(p) {
			path, _, _ := strings.Cut(req, "?")
			if want, got := graphPathMatches(p, path), envoyAllows(t, rules, "GET", req); got != want {
				t.Errorf("graph path %q (%q): request %q let through %v, the graph says %v", p, compiler.CiliumPath(p), req, got, want)
			}
			checked++
		}
	}
	t.Logf("%d requests against %d paths", checked, len(graphPaths))
}

// envoyRules are what Cilium's translator makes of an HTTP rule with this path expression, once
// Cilium's Sanitize takes it.
func envoyRules(t *testing.T, path string) *cilium.HttpNetworkPolicyRules {
	t.Helper()
	rule := api.PortRuleHTTP{Path: path}
	if err := rule.Sanitize(); err != nil {
		t.Fatalf("Cilium refuses the expression %q: %v", path, err)
	}
	tr := envoypolicy.NewEnvoyL7RulesTranslator(logger, certificatemanager.NewMockSecretManagerInline())
	rules, _ := tr.GetEnvoyHTTPRules(&api.L7Rules{HTTP: api.PortRulesHTTP{rule}}, "shop")
	return rules
}

// requestsAround are requests that match a path and requests that nearly do.
func requestsAround(p string) []string {
	base := strings.Trim(p, "*")
	if base == "" {
		base = "/x"
	}
	out := []string{"/", "/other", base, base + "?a=1&b", base + "/", base + "/x", base + "x", "/x" + base, base[:len(base)-1],
		strings.ToUpper(base), base + "?", base + "#f"}
	if strings.HasPrefix(p, "*") {
		out = append(out, "/dir/file"+base, "/dir/file"+base+"?q="+base, base+base)
	}
	return out
}

// graphPathMatches is a graph path as Istio reads it, against a request's path without its query.
func graphPathMatches(p, path string) bool {
	switch {
	case p == "*":
		return true
	case strings.HasPrefix(p, "*"):
		return strings.HasSuffix(path, p[1:])
	case strings.HasSuffix(p, "*"):
		return strings.HasPrefix(path, p[:len(p)-1])
	}
	return path == p
}

// envoyAllows evaluates Cilium's HTTP rules as its Envoy filter does: a request passes when every
// header matcher of one rule matches; a safe_regex must match the whole value (RE2, as Go's).
func envoyAllows(t *testing.T, rules *cilium.HttpNetworkPolicyRules, method, path string) bool {
	t.Helper()
	if rules == nil {
		return true
	}
	for _, r := range rules.GetHttpRules() {
		if allMatch(t, r.GetHeaders(), map[string]string{":method": method, ":path": path}) {
			return true
		}
	}
	return false
}

func allMatch(t *testing.T, headers []*routev3.HeaderMatcher, request map[string]string) bool {
	t.Helper()
	for _, h := range headers {
		v, ok := request[h.GetName()]
		re, isRegex := h.GetStringMatch().GetMatchPattern().(*matcherv3.StringMatcher_SafeRegex)
		if !isRegex {
			t.Fatalf("a header matcher this evaluator does not know: %v", h)
		}
		if !ok || !regexp.MustCompile(`^(?:`+re.SafeRegex.GetRegex()+`)$`).MatchString(v) {
			return false
		}
	}
	return true
}
