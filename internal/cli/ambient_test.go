package cli

import (
	"strings"
	"testing"
)

// check in an ambient namespace evaluates as ztunnel and the waypoint do: the path edge through
// the waypoint with the caller's identity and the Service's port, ztunnel admitting the waypoint;
// without a waypoint the path edge is refused and the step says ztunnel decided.
func TestCheckAmbient(t *testing.T) {
	const namespace = `apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio.io/dataplane-mode: ambient}}
---
apiVersion: policy.servicegraph.io/v1alpha1
kind: ServiceGraph
metadata: {name: shop, namespace: shop}
spec:
  services: [{name: web}, {name: api}, {name: database}]
  edges: ["web->api:8080", "api->database:5432/data"]
---
apiVersion: v1
kind: Service
metadata: {name: database, namespace: shop, labels: {istio.io/use-waypoint: waypoint}}
spec: {selector: {app: database}, ports: [{name: http, port: 80, targetPort: 5432}]}
`
	const gateway = `---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: waypoint, namespace: shop}
spec: {gatewayClassName: istio-waypoint, listeners: [{name: mesh, port: 15008, protocol: HBONE}]}
`
	for _, tc := range []struct {
		name, objects, from, to string
		code                    int
		want                    []string
	}{
		{"the path edge through the waypoint", namespace + gateway, "api", "database:5432/data", ExitAllowed,
			[]string{"to waypoint waypoint: AuthorizationPolicy shop/shop-wp-database spec.rules[0]", "ztunnel: AuthorizationPolicy shop/shop-svc-database"}},
		{"another path", namespace + gateway, "api", "database:5432/admin", ExitDenied, []string{"to waypoint waypoint: no ALLOW rule matches"}},
		{"another caller", namespace + gateway, "web", "database:5432/data", ExitDenied, []string{"to waypoint waypoint: no ALLOW rule matches"}},
		{"an L4 edge: HBONE on 15008", namespace + gateway, "web", "api:8080", ExitAllowed,
			[]string{"HBONE: the NetworkPolicy sees port 15008", "ztunnel: AuthorizationPolicy shop/shop-svc-api spec.rules[0]"}},
		{"no waypoint: the path edge stays closed", namespace, "api", "database:5432/data", ExitDenied, []string{"ztunnel: allow-nothing"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := run(t, tc.objects, "check", tc.from, tc.to, "-f", "-", "-n", "shop")
			if code != tc.code {
				t.Errorf("exit %d, want %d\n%s%s", code, tc.code, stdout, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stdout, w) {
					t.Errorf("no %q in\n%s", w, stdout)
				}
			}
		})
	}
}
