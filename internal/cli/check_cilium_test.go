package cli

import (
	"fmt"
	"strings"
	"testing"
)

// check, offline, on the seed graph compiled for Cilium (spec.networkPolicy: Cilium, no mesh) and
// Cilium policies written by hand beside it: CiliumNetworkPolicies decide the layer-3/4 steps, an
// HTTP rule judges the request's path, an external host is admitted by name (toFQDNs), a
// clusterwide deny rule wins over every allow.
func TestCheckCiliumGolden(t *testing.T) {
	var out strings.Builder
	for _, args := range [][]string{
		{"web", "api:8080"},
		{"web", "database:5432"},
		{"api", "database:5432/data"},
		{"api", "database:5432/data?page=2", "--method", "DELETE"},
		{"api", "database:5432/admin"},
		{"api", "database:5432"},
		{"api", "api.stripe.com:443"},
		{"api", "stripe:443"},
		{"api", "evil.example.com:443"},
		{"web", "api.stripe.com:443"},
		{"api", "198.51.100.7:443"},
		{"monitoring/prometheus", "api:9090/metrics"},
		{"monitoring/prometheus", "api:9090/debug"},
		{"203.0.113.9", "web:22"},
		{"api", "api.stripe.com:443", "--output", "json"},
	} {
		code, stdout, stderr := run(t, "", append(append([]string{"check"}, args...), "-f", "testdata/check/cilium.yaml", "-n", "shop")...)
		fmt.Fprintf(&out, "$ servicegraph check %s\n%s[exit %d]%s\n", strings.Join(args, " "), stdout, code, stderr)
	}
	golden(t, "check/cilium.golden.txt", out.String())
}

// A destination outside the cluster is a workload's name first, then an address, a graph's
// external peer or a host name; anything else is still an unknown name.
func TestCheckExternalDestination(t *testing.T) {
	for _, tc := range []struct {
		to, want string
		code     int
	}{
		{"stripe:443", "shop/api -> api.stripe.com TCP/443: allowed", ExitAllowed},
		{"API.Stripe.com.:443", "shop/api -> API.Stripe.com. TCP/443: allowed", ExitAllowed},
		{"ghost:443", "", ExitUsage},
	} {
		code, stdout, stderr := run(t, "", "check", "api", tc.to, "-f", "testdata/check/cilium.yaml", "-n", "shop")
		if code != tc.code || !strings.HasPrefix(stdout, tc.want) {
			t.Errorf("check api %s: exit %d (want %d)\n%s%s", tc.to, code, tc.code, stdout, stderr)
		}
	}
}

// Cilium's policies are read strictly, as the API server reads them against Cilium's schema: a
// misspelt field would otherwise drop a rule in silence.
func TestCheckCiliumStrict(t *testing.T) {
	const objects = "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: x, namespace: shop}\nspec: {endpointSelector: {}, ingres: [{}]}\n" +
		"---\napiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: shop}\nspec: {containers: [{name: a, image: a}]}\n"
	code, _, stderr := run(t, objects, "check", "a", "a:80", "-f", "-", "-n", "shop")
	if want := `<stdin>:1: CiliumNetworkPolicy shop/x: unknown field "ingres"`; code != ExitUsage || !strings.Contains(stderr, want) {
		t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr, ExitUsage, want)
	}
}
