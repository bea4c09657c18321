package istio

import (
	"fmt"
	"slices"
	"testing"

	rbacpb "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"istio.io/istio/pilot/pkg/config/kube/crd"
	"istio.io/istio/pilot/pkg/model"
	"istio.io/istio/pilot/pkg/security/authz/builder"
	"istio.io/istio/pilot/pkg/security/trustdomain"
	"istio.io/istio/pkg/config"
	"istio.io/istio/pkg/config/kube"
	"istio.io/istio/pkg/config/protocol"
	"istio.io/istio/pkg/config/schema/collections"

	"github.com/servicegraph/servicegraph-operator/internal/compiler"
	"github.com/servicegraph/servicegraph-operator/internal/lint"
	"github.com/servicegraph/servicegraph-operator/internal/object"
)

// TestProtocolAsIstioReadsIt holds compiler.IstioProtocol, which the operator and the linter use to
// tell a Service port's protocol, to Istio's own reading of it (kube.ConvertProtocol).
func TestProtocolAsIstioReadsIt(t *testing.T) {
	names := []string{"", "http", "http-web", "HTTP2-api", "http2", "grpc", "grpc-web", "grpc-webui", "GRPC-Web-x", "tcp",
		"tcp-postgres", "tls", "https-x", "mongo", "redis-cache", "mysql", "udp", "web", "metrics", "http_proxy", "x-http"}
	appProtocols := []string{"", "http", "HTTP", "tcp", "grpc", "kubernetes.io/h2c", "kubernetes.io/ws", "kubernetes.io/wss", "postgresql", "mysql-x"}
	ports := []int32{80, 25, 53, 3306, 5432, 27017}
	checked := 0
	for _, name := range names {
		for _, app := range appProtocols {
			for _, port := range ports {
				for _, proto := range []corev1.Protocol{corev1.ProtocolTCP, corev1.ProtocolUDP} {
					sp := compiler.KubeServicePort{Name: name, Port: port, Protocol: proto, AppProtocol: app}
					var appProto *string
					if app != "" {
						appProto = &app
					}
					istio := kube.ConvertProtocol(port, name, proto, appProto)
					ours, _ := compiler.IstioProtocol(sp)
					want := string(istio)
					if istio == protocol.Unsupported {
						want = "" // Istio sniffs
					}
					if ours != want {
						t.Errorf("port %d %s name %q appProtocol %q: ours %q, Istio's %q", port, proto, name, app, ours, istio)
					}
					checked++
				}
			}
		}
	}
	t.Logf("%d Service ports read the same way as Istio reads them", checked)
}

// TestNeverMatchingFormsAsIstioBuildsThem builds hand-written AuthorizationPolicies that Istio's
// validation accepts through Istio's authorization builder, and checks that what the builder makes
// of each never matches (or, for an empty rule, matches everything), and that the linter reports
// each one.
func TestNeverMatchingFormsAsIstioBuildsThem(t *testing.T) {
	cases := []struct {
		name, rule, spec string
		// never is the matcher value the builder must produce, which no request has.
		never string
	}{
		{"spiffe:// in a principal", "AP006", "rules: [{from: [{source: {principals: ['spiffe://cluster.local/ns/shop/sa/web']}}]}]",
			"exact:spiffe://spiffe://cluster.local/ns/shop/sa/web"},
		{"a wildcard inside a principal", "AP006", "rules: [{from: [{source: {principals: ['cluster.local/ns/*/sa/web']}}]}]",
			"exact:spiffe://cluster.local/ns/*/sa/web"},
		{"a path without /", "AP006", "rules: [{from: [{source: {principals: [cluster.local/ns/shop/sa/web]}}], to: [{operation: {paths: [healthz]}}]}]",
			"path:healthz"},
		{"port 0", "AP006", "rules: [{from: [{source: {principals: [cluster.local/ns/shop/sa/web]}}], to: [{operation: {ports: ['0']}}]}]",
			"port:0"},
		{"a lower-case method", "AP006", "rules: [{from: [{source: {principals: [cluster.local/ns/shop/sa/web]}}], to: [{operation: {methods: [get]}}]}]",
			"method:get"},
		{"an empty rule", "AP005", "rules: [{}]", "any"},
		// ** is no recursive glob: a trailing * makes a prefix match of the rest, * included (pathOf
		// prints prefix P as P*), and a ** inside stays literal in an exact match.
		{"a trailing ** in a path", "AP012", "rules: [{from: [{source: {principals: [cluster.local/ns/shop/sa/web]}}], to: [{operation: {paths: ['/api/**']}}]}]",
			"path:/api/**"},
		{"a ** inside a path", "AP012", "rules: [{from: [{source: {principals: [cluster.local/ns/shop/sa/web]}}], to: [{operation: {paths: ['/api/**/items']}}]}]",
			"path:/api/**/items"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			doc := "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: p, namespace: shop}\nspec:\n  selector: {matchLabels: {app: api}}\n  " + tc.spec + "\n"
			configs, _, err := crd.ParseInputs(doc)
			if err != nil {
				t.Fatal(err)
			}
			s, _ := collections.Pilot.FindByGroupVersionAliasesKind(configs[0].GroupVersionKind)
			if _, err := s.ValidateConfig(configs[0]); err != nil {
				t.Fatalf("Istio's validation refuses it, so this is not the case under test: %v", err)
			}
			got := matchers(t, configs)
			if !slices.Contains(got, tc.never) {
				t.Errorf("Istio built %v, want %q in it", got, tc.never)
			}
			ap := &securityv1.AuthorizationPolicy{}
			if err := yaml.UnmarshalStrict([]byte(doc), ap); err != nil {
				t.Fatal(err)
			}
			findings := lint.Lint([]lint.Object{{File: "p.yaml", Line: 1, Object: object.Object(ap)}}, lint.DefaultOptions())
			if !slices.ContainsFunc(findings, func(f lint.Finding) bool { return f.Rule == tc.rule }) {
				t.Errorf("the linter does not report %s: %v", tc.rule, findings)
			}
		})
	}
}

// matchers lists, in short form, the principal, path, port and method matchers of the HTTP RBAC
// filter Istio builds for workload app=api in namespace shop; "any" for a policy that matches
// every request.
func matchers(t *testing.T, configs []config.Config) []string {
	push := pushContext(t, configs)
	labels := map[string]string{"app": "api"}
	proxy := &model.Proxy{ConfigNamespace: "shop", Labels: labels, Metadata: &model.NodeMetadata{Labels: labels, Namespace: "shop"}}
	b := builder.New(trustdomain.NewBundle(compiler.DefaultTrustDomain, nil), push,
		push.AuthzPolicies.ListAuthorizationPolicies(model.PolicyMatcherForProxy(proxy)), builder.Option{})
	var out []string
	for _, rbac := range httpRBAC(t, b) {
		for _, p := range rbac.GetPolicies() {
			anyPrincipal, anyPermission := false, false
			for _, id := range p.GetPrincipals() {
				walkPrincipal(id, &out, &anyPrincipal)
			}
			for _, perm := range p.GetPermissions() {
				walkPermission(perm, &out, &anyPermission)
			}
			if anyPrincipal && anyPermission {
				out = append(out, "any")
			}
		}
	}
	return out
}

func walkPrincipal(id *rbacpb.Principal, out *[]string, anyID *bool) {
	switch x := id.GetIdentifier().(type) {
	case *rbacpb.Principal_AndIds:
		for _, i := range x.AndIds.GetIds() {
			walkPrincipal(i, out, anyID)
		}
	case *rbacpb.Principal_OrIds:
		for _, i := range x.OrIds.GetIds() {
			walkPrincipal(i, out, anyID)
		}
	case *rbacpb.Principal_Any:
		*anyID = true
	case *rbacpb.Principal_Authenticated_:
		*out = append(*out, "exact:"+x.Authenticated.GetPrincipalName().GetExact())
	}
}

func walkPermission(perm *rbacpb.Permission, out *[]string, anyPerm *bool) {
	switch x := perm.GetRule().(type) {
	case *rbacpb.Permission_AndRules:
		for _, r := range x.AndRules.GetRules() {
			walkPermission(r, out, anyPerm)
		}
	case *rbacpb.Permission_OrRules:
		for _, r := range x.OrRules.GetRules() {
			walkPermission(r, out, anyPerm)
		}
	case *rbacpb.Permission_Any:
		*anyPerm = true
	case *rbacpb.Permission_DestinationPort:
		*out = append(*out, fmt.Sprintf("port:%d", x.DestinationPort))
	case *rbacpb.Permission_UrlPath:
		*out = append(*out, "path:"+pathOf(x.UrlPath.GetPath()))
	case *rbacpb.Permission_Header:
		*out = append(*out, "method:"+x.Header.GetStringMatch().GetExact())
	}
}
