package istio

import (
	"fmt"
	"maps"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	rbacpb "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	rbachttp "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	rbactcp "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"istio.io/istio/pilot/pkg/config/memory"
	"istio.io/istio/pilot/pkg/model"
	"istio.io/istio/pilot/pkg/security/authz/builder"
	"istio.io/istio/pilot/pkg/security/trustdomain"
	"istio.io/istio/pkg/config"
	"istio.io/istio/pkg/config/schema/collections"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/compiler"
	"github.com/servicegraph/servicegraph-operator/internal/graph"
)

// TestIstioTranslatesEveryPolicy builds, for every local service of every graph, the Envoy RBAC
// filters Istio's authorization builder makes of the generated policies (the HTTP and the TCP
// filter chain), and checks them against the graph's edges into the service:
//   - every edge is allowed by exactly its caller, on its numbered ports, paths and methods, and no
//     other caller is allowed: a service by its principal, spiffe://TRUST-DOMAIN/ns/NS/sa/SA (its
//     own cluster's trust domain for a remote service); an
//     external peer in the mesh by its namespaces; an unmeshed one by its address ranges, or, with
//     none, not at all (any source: its NetworkPolicy alone restricts who connects);
//   - a rule is on the chain its port's protocol selects: an edge without paths or methods on both
//     chains (Istio treats a port as TCP or HTTP by its Service and by sniffing), one with paths or
//     methods on the HTTP chain (on the TCP chain Istio skips it, which is why a path declares the
//     port HTTP: see ProtocolMismatch);
//   - every service, called or not, has the allow-nothing policy in its ALLOW filter (Istio renders
//     a policy without rules as one that matches nothing): what no rule allows is denied.
func TestIstioTranslatesEveryPolicy(t *testing.T) {
	workloads, rules := 0, 0
	for _, c := range corpus(t) {
		if c.sg.Spec.Enforcement == v1alpha1.EnforcementAudit {
			continue // dry-run policies go to shadow rules; validation covers them
		}
		if c.sg.Spec.Mesh == v1alpha1.MeshNone {
			continue // no Istio objects to translate
		}
		res, configs := compiled(t, c)
		g := graphOf(t, c.sg)
		push := pushContext(t, configs)
		for _, svc := range g.Services {
			if !g.Local(&svc) {
				continue
			}
			workloads++
			proxy := &model.Proxy{ConfigNamespace: g.Namespace, Labels: svc.Labels,
				Metadata: &model.NodeMetadata{Labels: svc.Labels, Namespace: g.Namespace}}
			policies := push.AuthzPolicies.ListAuthorizationPolicies(model.PolicyMatcherForProxy(proxy))
			b := builder.New(trustdomain.NewBundle(compiler.DefaultTrustDomain, nil), push, policies, builder.Option{})
			if b == nil {
				t.Errorf("%s: %s: no authorization policy selects it: the allow-nothing policy is missing", c.name, svc.Name)
				continue
			}
			want := expectedRules(g, svc.Name)
			rules += len(want.http)
			checkChain(t, fmt.Sprintf("%s: %s, HTTP chain", c.name, svc.Name), httpRBAC(t, b), want.http)
			checkChain(t, fmt.Sprintf("%s: %s, TCP chain", c.name, svc.Name), tcpRBAC(t, b), want.tcp)
		}
		_ = res
	}
	t.Logf("%d workloads translated by Istio's authorization builder, %d allowed (principal, operation) pairs checked", workloads, rules)
}

func pushContext(t *testing.T, configs []config.Config) *model.PushContext {
	t.Helper()
	store := memory.Make(collections.Pilot)
	for _, c := range configs {
		if _, err := store.Create(c); err != nil {
			t.Fatal(err)
		}
	}
	return &model.PushContext{AuthzPolicies: model.GetAuthorizationPolicies(&model.Environment{ConfigStore: store})}
}

// allowed is one (principal, operation) the graph allows into a service, as a canonical string.
type allowed = string

// chains are the allowed pairs expected on each filter chain.
type chains struct{ http, tcp []allowed }

// expectedRules reads, from the graph alone, what Istio must allow into a service: per edge into
// it with a port Istio intercepts, the caller's principal with the edge's numbered ports (none when
// a port is named: the rule then restricts by identity), paths and methods.
func expectedRules(g *graph.Graph, to string) chains {
	var want chains
	for _, e := range g.Edges {
		if e.To != to {
			continue
		}
		from, _ := g.Service(e.From)
		caller := callerOf(from)
		var ports []string
		named, meshed := false, false
		for _, p := range e.Ports {
			switch {
			case !p.Meshed():
			case p.Named():
				meshed, named = true, true
			default:
				meshed = true
				ports = append(ports, strconv.Itoa(int(p.Port.IntVal)))
			}
		}
		if !meshed {
			continue
		}
		if named {
			ports = nil
		}
		pair := describe(caller, ports, e.Paths, e.Methods)
		want.http = append(want.http, pair)
		if len(e.Paths) == 0 && len(e.Methods) == 0 {
			want.tcp = append(want.tcp, pair)
		}
	}
	slices.Sort(want.http)
	slices.Sort(want.tcp)
	return chains{http: slices.Compact(want.http), tcp: slices.Compact(want.tcp)}
}

// callerOf is how a rule's source reads once Istio has translated it: a service's principal; an
// identified external peer's namespaces (Istio matches the principal's /ns/ part); an unmeshed
// peer's address ranges; or, for an unmeshed peer without addresses, any source (only its
// NetworkPolicy restricts who connects).
func callerOf(s *graph.Service) string {
	x := s.External
	switch {
	case x == nil && s.Remote != nil:
		return "spiffe://" + s.Remote.TrustDomain + "/ns/" + s.Namespace + "/sa/" + s.ServiceAccount
	case x == nil:
		return "spiffe://" + compiler.DefaultTrustDomain + "/ns/" + s.Namespace + "/sa/" + s.ServiceAccount
	case x.Identified():
		return atoms("namespace=", x.Namespaces)
	case len(x.CIDRs) > 0:
		return strings.TrimSpace(atoms("ip=", x.CIDRs) + " " + atoms("notip=", x.Except))
	}
	return "any"
}

func atoms(prefix string, values []string) string {
	var out []string
	for _, v := range values {
		out = append(out, prefix+v)
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}

func describe(principal string, ports, paths, methods []string) allowed {
	sorted := func(s []string) string { s = slices.Clone(s); slices.Sort(s); return strings.Join(s, ",") }
	return fmt.Sprintf("principal=%s ports=[%s] paths=[%s] methods=[%s]", principal, sorted(ports), sorted(paths), sorted(methods))
}

func httpRBAC(t *testing.T, b *builder.Builder) []*rbacpb.RBAC {
	t.Helper()
	var out []*rbacpb.RBAC
	for _, f := range b.BuildHTTP() {
		var r rbachttp.RBAC
		if err := f.GetTypedConfig().UnmarshalTo(&r); err != nil {
			t.Fatal(err)
		}
		out = append(out, r.GetRules())
	}
	return out
}

func tcpRBAC(t *testing.T, b *builder.Builder) []*rbacpb.RBAC {
	t.Helper()
	var out []*rbacpb.RBAC
	for _, f := range b.BuildTCP() {
		var r rbactcp.RBAC
		if err := f.GetTypedConfig().UnmarshalTo(&r); err != nil {
			t.Fatal(err)
		}
		out = append(out, r.GetRules())
	}
	return out
}

// checkChain checks that a chain has one ALLOW filter and no other, and that its policies allow
// exactly the expected pairs.
func checkChain(t *testing.T, where string, filters []*rbacpb.RBAC, want []allowed) {
	t.Helper()
	if len(filters) != 1 || filters[0].GetAction() != rbacpb.RBAC_ALLOW {
		t.Errorf("%s: want one ALLOW filter, got %d %v", where, len(filters), filters)
		return
	}
	var got []allowed
	allowNothing := false
	for _, name := range slices.Sorted(maps.Keys(filters[0].GetPolicies())) {
		p := filters[0].GetPolicies()[name]
		if matchesNothing(p) {
			allowNothing = true // Istio's rendering of an ALLOW policy without rules
			continue
		}
		got = append(got, policyPairs(where+" "+name, t, p)...)
	}
	if !allowNothing {
		t.Errorf("%s: no allow-nothing policy: a request no rule allows would not be denied by it", where)
	}
	slices.Sort(got)
	got = slices.Compact(got)
	if !slices.Equal(got, want) {
		t.Errorf("%s: Istio allows\n\t%s\nthe graph says\n\t%s", where, strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
}

// matchesNothing tells whether a policy is Istio's match-never policy: no principal and no
// permission can satisfy "not any".
func matchesNothing(p *rbacpb.Policy) bool {
	never := func(id *rbacpb.Principal) bool { return id.GetNotId().GetAny() }
	return len(p.GetPrincipals()) == 1 && never(p.GetPrincipals()[0]) &&
		len(p.GetPermissions()) == 1 && p.GetPermissions()[0].GetNotRule().GetAny()
}

// policyPairs reads the (caller, operation) pair one RBAC policy allows. A generated rule has one
// source, its caller, and one operation, which Istio turns into an AND of (OR of ports, OR of
// paths, OR of methods).
func policyPairs(where string, t *testing.T, p *rbacpb.Policy) []allowed {
	var caller []string
	for _, id := range p.GetPrincipals() {
		caller = append(caller, principalAtoms(where, t, id, false)...)
	}
	slices.Sort(caller)
	var ports, paths, methods []string
	for _, perm := range p.GetPermissions() {
		collectPermission(where, t, perm, &ports, &paths, &methods)
	}
	return []allowed{describe(strings.Join(slices.Compact(caller), " "), ports, paths, methods)}
}

// namespaceRegex is how Istio matches a source namespace: by the principal's /ns/ part.
var namespaceRegex = regexp.MustCompile(`^\.\*/ns/([^/]+)/\.\*$`)

// principalAtoms flattens a principal into what callerOf writes: exact principals, namespace=,
// ip= and, under a negation, notip=. Anything else fails the test: the generated policies use
// nothing else.
func principalAtoms(where string, t *testing.T, id *rbacpb.Principal, negated bool) []string {
	var children []*rbacpb.Principal
	switch x := id.GetIdentifier().(type) {
	case *rbacpb.Principal_AndIds:
		children = x.AndIds.GetIds()
	case *rbacpb.Principal_OrIds:
		children = x.OrIds.GetIds()
	case *rbacpb.Principal_NotId:
		if !negated {
			return principalAtoms(where, t, x.NotId, true)
		}
	case *rbacpb.Principal_Any:
		if !negated {
			return []string{"any"}
		}
	case *rbacpb.Principal_DirectRemoteIp:
		prefix := netip.PrefixFrom(netip.MustParseAddr(x.DirectRemoteIp.GetAddressPrefix()), int(x.DirectRemoteIp.GetPrefixLen().GetValue()))
		if negated {
			return []string{"notip=" + prefix.String()}
		}
		return []string{"ip=" + prefix.String()}
	case *rbacpb.Principal_Authenticated_:
		name := x.Authenticated.GetPrincipalName()
		if m := namespaceRegex.FindStringSubmatch(name.GetSafeRegex().GetRegex()); m != nil && !negated {
			return []string{"namespace=" + m[1]}
		}
		if exact := name.GetExact(); exact != "" && !negated {
			return []string{exact}
		}
	}
	if children != nil {
		var out []string
		for _, c := range children {
			out = append(out, principalAtoms(where, t, c, negated)...)
		}
		return out
	}
	t.Errorf("%s: a principal the generated policies do not make: %v", where, id)
	return nil
}

func collectPermission(where string, t *testing.T, perm *rbacpb.Permission, ports, paths, methods *[]string) {
	switch x := perm.GetRule().(type) {
	case *rbacpb.Permission_AndRules:
		for _, r := range x.AndRules.GetRules() {
			collectPermission(where, t, r, ports, paths, methods)
		}
	case *rbacpb.Permission_OrRules:
		for _, r := range x.OrRules.GetRules() {
			collectPermission(where, t, r, ports, paths, methods)
		}
	case *rbacpb.Permission_Any:
	case *rbacpb.Permission_DestinationPort:
		*ports = append(*ports, strconv.Itoa(int(x.DestinationPort)))
	case *rbacpb.Permission_UrlPath:
		*paths = append(*paths, pathOf(x.UrlPath.GetPath()))
	case *rbacpb.Permission_Header:
		if x.Header.GetName() != ":method" {
			t.Errorf("%s: a header other than :method: %v", where, x.Header)
		}
		method := x.Header.GetStringMatch().GetExact()
		if method == "" {
			method = x.Header.GetExactMatch() //nolint:staticcheck // older Istio
		}
		*methods = append(*methods, method)
	default:
		t.Errorf("%s: an unexpected permission: %v", where, perm)
	}
}

// pathOf writes a path matcher back in AuthorizationPolicy syntax: "/a", "/a/*", "*.css".
func pathOf(m *matcher.StringMatcher) string {
	switch {
	case m.GetExact() != "":
		return m.GetExact()
	case m.GetPrefix() != "":
		return m.GetPrefix() + "*"
	case m.GetSuffix() != "":
		return "*" + m.GetSuffix()
	}
	return fmt.Sprintf("%v", m)
}

// TestTrustDomainAliases shows what Istio does with a remote service's principal when this mesh
// lists the other cluster's trust domain among its trustDomainAliases: it accepts the principal in
// every trust domain of the bundle (the local one and each alias), as the README says. Without the
// alias, the remote trust domain's principal alone.
func TestTrustDomainAliases(t *testing.T) {
	var remote graphCase
	for _, c := range corpus(t) {
		if c.name == "remote.yaml" {
			remote = c
		}
	}
	if remote.sg == nil {
		t.Fatal("testdata/input/remote.yaml is not in the corpus")
	}
	_, configs := compiled(t, remote)
	push := pushContext(t, configs)
	proxy := &model.Proxy{ConfigNamespace: "shop", Labels: map[string]string{"app": "api"},
		Metadata: &model.NodeMetadata{Labels: map[string]string{"app": "api"}, Namespace: "shop"}}
	policies := push.AuthzPolicies.ListAuthorizationPolicies(model.PolicyMatcherForProxy(proxy))
	for _, tc := range []struct {
		aliases []string
		want    []string
	}{
		{nil, []string{"spiffe://east.example.com/ns/payments/sa/checkout"}},
		{[]string{"east.example.com"}, []string{"spiffe://cluster.local/ns/payments/sa/checkout", "spiffe://east.example.com/ns/payments/sa/checkout"}},
	} {
		b := builder.New(trustdomain.NewBundle(compiler.DefaultTrustDomain, tc.aliases), push, policies, builder.Option{})
		var got []string
		for _, r := range tcpRBAC(t, b) {
			for _, p := range r.GetPolicies() {
				if matchesNothing(p) {
					continue
				}
				for _, id := range p.GetPrincipals() {
					for _, a := range principalAtoms("aliases", t, id, false) {
						if strings.Contains(a, "/ns/payments/") {
							got = append(got, a)
						}
					}
				}
			}
		}
		slices.Sort(got)
		if !slices.Equal(slices.Compact(got), tc.want) {
			t.Errorf("aliases %v: checkout's principals %v, want %v", tc.aliases, got, tc.want)
		}
	}
}
