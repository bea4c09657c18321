package istio

// A model of ztunnel's authorization, to judge what istiod converts for it: which converted
// policies attach to a workload (istiod's pilot/pkg/serviceregistry/ambient buildWorkloadPolicies
// and convertedSelectorPeerAuthentications, and ztunnel's namespace and global scopes), and how
// ztunnel decides a connection (ztunnel src/state.rs assert_rbac, src/rbac.rs
// Authorization::matches). The policies themselves are Istio's: PolicyCollections converts the
// AuthorizationPolicies and PeerAuthentications (ambientPolicyCollections). Written from those
// sources; it shares nothing with the operator's code.

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	securityv1beta1 "istio.io/api/security/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	"sigs.k8s.io/yaml"

	"istio.io/istio/pilot/pkg/model"
	"istio.io/istio/pilot/pkg/serviceregistry/ambient"
	istiomesh "istio.io/istio/pkg/config/mesh"
	"istio.io/istio/pkg/config/schema/kind"
	"istio.io/istio/pkg/kube/krt"
	"istio.io/istio/pkg/kube/krt/krttest"
	"istio.io/istio/pkg/test"
	"istio.io/istio/pkg/workloadapi/security"
)

// ztunnelRootNamespace is the mesh's root namespace (mesh.DefaultMeshConfig).
const ztunnelRootNamespace = "istio-system"

// ztunnelStaticStrict is the DENY istiod attaches to every workload whose effective mutual-TLS
// mode is STRICT (pilot/pkg/serviceregistry/ambient staticStrictPolicyName).
const ztunnelStaticStrict = ztunnelRootNamespace + "/istio_converted_static_strict"

// ztunnelConverted is what istiod's PolicyCollections made of a set of policies.
type ztunnelConverted struct {
	// authz are the AuthorizationPolicies' conversions (the first collection): a nil Authorization
	// only carries a status (a policy ztunnel does not get).
	authz []model.WorkloadAuthorization
	// all is every policy istiod sends ztunnel: authz's, the converted PeerAuthentications, the
	// static STRICT policy.
	all []model.WorkloadAuthorization
	// peerAuths are the PeerAuthentications, for the STRICT attachment.
	peerAuths []*securityv1.PeerAuthentication
}

// ambientPolicyCollections runs istiod's conversion for ztunnel over the policies: Istio's
// PolicyCollections on static collections, with the mesh's default configuration, no waypoint and
// the default feature flags (PILOT_AUTO_ALLOW_WAYPOINT_POLICY off).
func ambientPolicyCollections(t *testing.T, aps []*securityv1.AuthorizationPolicy, pas []*securityv1.PeerAuthentication) *ztunnelConverted {
	t.Helper()
	opts := krttest.Options(t)
	authzIn := krt.NewStaticCollection[*securityv1.AuthorizationPolicy](nil, aps, opts.WithName("AuthorizationPolicies")...)
	paIn := krt.NewStaticCollection[*securityv1.PeerAuthentication](nil, pas, opts.WithName("PeerAuthentications")...)
	waypoints := krt.NewStaticCollection[ambient.Waypoint](nil, nil, opts.WithName("Waypoints")...)
	meshConfig := krt.NewStatic(&ambient.MeshConfig{MeshConfig: istiomesh.DefaultMeshConfig()}, true)
	authz, all := ambient.PolicyCollections(authzIn, paIn, meshConfig, waypoints, opts, ambient.FeatureFlags{})
	stop := test.NewStop(t)
	if !authz.WaitUntilSynced(stop) || !all.WaitUntilSynced(stop) {
		t.Fatal("Istio's policy collections never synced")
	}
	return &ztunnelConverted{authz: authz.List(), all: all.List(), peerAuths: pas}
}

// byName is the conversion of the AuthorizationPolicy namespace/name, false when there is none.
func (z *ztunnelConverted) byName(namespace, name string) (model.WorkloadAuthorization, bool) {
	for _, wa := range z.authz {
		if wa.Source.Namespace == namespace && wa.Source.Name == name {
			return wa, true
		}
	}
	return model.WorkloadAuthorization{}, false
}

// sent is the policy istiod sends ztunnel under the key namespace/name.
func (z *ztunnelConverted) sent(key string) *security.Authorization {
	for _, wa := range z.all {
		if a := wa.Authorization; a != nil && a.Namespace+"/"+a.Name == key {
			return a
		}
	}
	return nil
}

// attached are the policies ztunnel applies to a workload (its namespace and labels), as keys:
// the workload-selector policies of its namespace or the root namespace whose selector its labels
// include (buildWorkloadPolicies), the PeerAuthentication keys (the static STRICT policy, a
// converted port-level policy), and the policies scoped to its namespace or to the mesh (ztunnel
// indexes NAMESPACE policies by namespace and GLOBAL ones under "").
func (z *ztunnelConverted) attached(t *testing.T, namespace string, labels map[string]string) []*security.Authorization {
	t.Helper()
	var out []*security.Authorization
	for _, wa := range z.all {
		a := wa.Authorization
		switch {
		case a == nil:
		case a.Scope == security.Scope_NAMESPACE && a.Namespace == namespace, a.Scope == security.Scope_GLOBAL:
			out = append(out, a)
		}
	}
	for _, wa := range z.authz {
		a := wa.Authorization
		if a == nil || a.Scope != security.Scope_WORKLOAD_SELECTOR || wa.GetLabelSelector() == nil {
			continue
		}
		if (a.Namespace == namespace || a.Namespace == ztunnelRootNamespace) && ztunnelSubset(wa.GetLabelSelector(), labels) {
			out = append(out, a)
		}
	}
	for _, key := range ztunnelPeerAuthenticationKeys(t, z.peerAuths, namespace, labels) {
		a := z.sent(key)
		if a == nil {
			// ztunnel skips a key it was not sent ("skipping unknown policy").
			continue
		}
		out = append(out, a)
	}
	return out
}

func ztunnelSubset(selector, labels map[string]string) bool {
	for k, v := range selector {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// ztunnelPeerAuthenticationKeys is istiod's convertedSelectorPeerAuthentications over the
// PeerAuthentications that apply to a workload (fetchPeerAuthentications): the static STRICT
// policy when its effective mode is STRICT, the converted workload policy when a port-level mode
// makes an exception.
func ztunnelPeerAuthenticationKeys(t *testing.T, pas []*securityv1.PeerAuthentication, namespace string, labels map[string]string) []string {
	t.Helper()
	var meshPA, nsPA, workloadPA *securityv1.PeerAuthentication
	older := func(a, b *securityv1.PeerAuthentication) bool {
		return b == nil || a.CreationTimestamp.Before(&b.CreationTimestamp)
	}
	for _, pa := range pas {
		sel := pa.Spec.GetSelector()
		switch {
		case pa.Namespace == ztunnelRootNamespace && sel == nil:
			if older(pa, meshPA) {
				meshPA = pa
			}
		case pa.Namespace != namespace:
		case sel == nil || len(sel.GetMatchLabels()) == 0:
			if older(pa, nsPA) {
				nsPA = pa
			}
		case ztunnelSubset(sel.GetMatchLabels(), labels):
			if older(pa, workloadPA) {
				workloadPA = pa
			}
		}
	}
	mode := func(pa *securityv1.PeerAuthentication) securityv1beta1.PeerAuthentication_MutualTLS_Mode {
		return pa.Spec.GetMtls().GetMode()
	}
	strict := meshPA != nil && mode(meshPA) == securityv1beta1.PeerAuthentication_MutualTLS_STRICT
	if nsPA != nil && mode(nsPA) != securityv1beta1.PeerAuthentication_MutualTLS_UNSET {
		strict = mode(nsPA) == securityv1beta1.PeerAuthentication_MutualTLS_STRICT
	}
	var keys []string
	if workloadPA != nil {
		converted := workloadPA.Namespace + "/" + model.GetAmbientPolicyConfigName(model.ConfigKey{Name: workloadPA.Name, Kind: kind.PeerAuthentication, Namespace: workloadPA.Namespace})
		anyPort := func(modes ...securityv1beta1.PeerAuthentication_MutualTLS_Mode) bool {
			for _, m := range workloadPA.Spec.GetPortLevelMtls() {
				if slices.Contains(modes, m.GetMode()) {
					return true
				}
			}
			return false
		}
		switch mode(workloadPA) {
		case securityv1beta1.PeerAuthentication_MutualTLS_STRICT:
			strict = true
			if anyPort(securityv1beta1.PeerAuthentication_MutualTLS_PERMISSIVE, securityv1beta1.PeerAuthentication_MutualTLS_DISABLE) {
				keys, strict = append(keys, converted), false
			}
		case securityv1beta1.PeerAuthentication_MutualTLS_PERMISSIVE, securityv1beta1.PeerAuthentication_MutualTLS_DISABLE:
			strict = false
			if anyPort(securityv1beta1.PeerAuthentication_MutualTLS_STRICT) {
				keys = append(keys, converted)
			}
		default:
			switch {
			case strict && anyPort(securityv1beta1.PeerAuthentication_MutualTLS_PERMISSIVE):
				keys, strict = append(keys, converted), false
			case !strict && anyPort(securityv1beta1.PeerAuthentication_MutualTLS_STRICT):
				keys = append(keys, converted)
			}
		}
	}
	if strict {
		keys = append(keys, ztunnelStaticStrict)
	}
	return keys
}

// ztunnelConn is a connection as ztunnel's inbound sees it once the HBONE tunnel is opened.
type ztunnelConn struct {
	// Principal is the peer's SPIFFE identity, "spiffe://TD/ns/NS/sa/SA"; "" without one.
	Principal string
	// SourceIP and DestIP are the pods' addresses (HBONE keeps them).
	SourceIP, DestIP netip.Addr
	// Port is the destination pod's port: ztunnel swaps the tunnel's 15008 for the inner target.
	Port uint32
}

func (c ztunnelConn) String() string {
	who := c.Principal
	if who == "" {
		who = "no identity"
	}
	return fmt.Sprintf("%s from %s -> %s:%d", who, c.SourceIP, c.DestIP, c.Port)
}

// ztunnelNamespace is the namespace of a SPIFFE identity ("" without one).
func ztunnelNamespace(principal string) string {
	_, rest, ok := strings.Cut(strings.TrimPrefix(principal, "spiffe://"), "/ns/")
	if !ok {
		return ""
	}
	ns, _, _ := strings.Cut(rest, "/")
	return ns
}

// ztunnelServiceAccount is the service account of a SPIFFE identity ("" without one).
func ztunnelServiceAccount(principal string) string {
	_, sa, ok := strings.Cut(principal, "/sa/")
	if !ok {
		return ""
	}
	return sa
}

// ztunnelVerdict is assert_rbac: any DENY policy that matches denies; with no ALLOW policy the
// connection is allowed; any ALLOW policy that matches allows; otherwise denied.
func ztunnelVerdict(policies []*security.Authorization, c ztunnelConn) (bool, string) {
	var allow []*security.Authorization
	for _, p := range policies {
		if p.Action == security.Action_DENY {
			if ztunnelMatches(p, c) {
				return false, "DENY " + p.Namespace + "/" + p.Name + " matches"
			}
			continue
		}
		allow = append(allow, p)
	}
	if len(allow) == 0 {
		return true, "no ALLOW policy"
	}
	var names []string
	for _, p := range allow {
		if ztunnelMatches(p, c) {
			return true, "ALLOW " + p.Namespace + "/" + p.Name + " matches"
		}
		names = append(names, p.Namespace+"/"+p.Name)
	}
	return false, "no ALLOW policy matches (" + strings.Join(names, ", ") + ")"
}

// ztunnelMatches is Authorization::matches: a policy without groups matches nothing; a group
// matches when every one of its rules does (a group without rules always does); a rule when one of
// its matches does (a rule without matches always does; an empty match is skipped); a match when
// each of its fields does.
func ztunnelMatches(p *security.Authorization, c ztunnelConn) bool {
	if len(p.Groups) == 0 {
		return false
	}
	for _, g := range p.Groups {
		groupMatch := true
		for _, rule := range g.Rules {
			ruleMatch := len(rule.Matches) == 0
			for _, m := range rule.Matches {
				if ztunnelEmptyMatch(m) {
					continue
				}
				if ztunnelMatch(m, c) {
					ruleMatch = true
					break
				}
			}
			if !ruleMatch {
				groupMatch = false
				break
			}
		}
		if groupMatch {
			return true
		}
	}
	return false
}

func ztunnelEmptyMatch(m *security.Match) bool {
	return len(m.Namespaces) == 0 && len(m.NotNamespaces) == 0 && len(m.ServiceAccounts) == 0 && len(m.NotServiceAccounts) == 0 &&
		len(m.Principals) == 0 && len(m.NotPrincipals) == 0 && len(m.SourceIps) == 0 && len(m.NotSourceIps) == 0 &&
		len(m.DestinationIps) == 0 && len(m.NotDestinationIps) == 0 && len(m.DestinationPorts) == 0 && len(m.NotDestinationPorts) == 0
}

// ztunnelMatch: every field matches; a field matches when some positive value matches (or it has
// none) and no negative value does. Principals are compared without "spiffe://" (a connection
// without identity matches no principal, not even presence); namespaces against the identity's
// namespace ("" without one); service accounts against the identity's namespace and account,
// whatever its trust domain.
func ztunnelMatch(m *security.Match, c ztunnelConn) bool {
	principal, hasID := strings.CutPrefix(c.Principal, "spiffe://")
	hasID = hasID && c.Principal != ""
	ns, sa := ztunnelNamespace(c.Principal), ztunnelServiceAccount(c.Principal)
	return ztunnelField(m.DestinationIps, m.NotDestinationIps, func(a *security.Address) bool { return ztunnelContains(a, c.DestIP) }) &&
		ztunnelField(m.SourceIps, m.NotSourceIps, func(a *security.Address) bool { return ztunnelContains(a, c.SourceIP) }) &&
		ztunnelField(m.DestinationPorts, m.NotDestinationPorts, func(p uint32) bool { return uint16(p) == uint16(c.Port) }) &&
		ztunnelField(m.ServiceAccounts, m.NotServiceAccounts, func(s *security.ServiceAccountMatch) bool {
			return hasID && s.Namespace == ns && s.ServiceAccount == sa
		}) &&
		ztunnelField(ztunnelStrings(m.Principals), ztunnelStrings(m.NotPrincipals), func(s *security.StringMatch) bool {
			return hasID && ztunnelString(s, principal)
		}) &&
		ztunnelField(ztunnelStrings(m.Namespaces), ztunnelStrings(m.NotNamespaces), func(s *security.StringMatch) bool { return ztunnelString(s, ns) })
}

func ztunnelField[T any](positive, negative []T, match func(T) bool) bool {
	return (len(positive) == 0 || slices.ContainsFunc(positive, match)) && (len(negative) == 0 || !slices.ContainsFunc(negative, match))
}

// ztunnelStrings drops the string matches without a type, as ztunnel does when it reads them.
func ztunnelStrings(in []*security.StringMatch) []*security.StringMatch {
	return slices.DeleteFunc(slices.Clone(in), func(s *security.StringMatch) bool { return s.GetMatchType() == nil })
}

func ztunnelString(s *security.StringMatch, v string) bool {
	switch m := s.GetMatchType().(type) {
	case *security.StringMatch_Exact:
		return v == m.Exact
	case *security.StringMatch_Prefix:
		return strings.HasPrefix(v, m.Prefix)
	case *security.StringMatch_Suffix:
		return strings.HasSuffix(v, m.Suffix)
	case *security.StringMatch_Presence:
		return v != ""
	}
	return false
}

func ztunnelContains(a *security.Address, ip netip.Addr) bool {
	addr, ok := netip.AddrFromSlice(a.GetAddress())
	if !ok {
		return false // ztunnel drops an address it cannot read: here it never matches
	}
	prefix, err := addr.Prefix(int(a.GetLength()))
	return err == nil && prefix.Contains(ip)
}

// ztunnelDecode reads AuthorizationPolicies and PeerAuthentications from YAML, as the API server
// stores them.
func ztunnelDecode(t *testing.T, docs string) ([]*securityv1.AuthorizationPolicy, []*securityv1.PeerAuthentication) {
	t.Helper()
	var aps []*securityv1.AuthorizationPolicy
	var pas []*securityv1.PeerAuthentication
	for _, doc := range strings.Split(docs, "\n---\n") {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		var meta struct{ Kind string }
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
			t.Fatalf("%v\n%s", err, doc)
		}
		switch meta.Kind {
		case "AuthorizationPolicy":
			ap := &securityv1.AuthorizationPolicy{}
			if err := yaml.UnmarshalStrict([]byte(doc), ap); err != nil {
				t.Fatalf("%v\n%s", err, doc)
			}
			aps = append(aps, ap)
		case "PeerAuthentication":
			pa := &securityv1.PeerAuthentication{}
			if err := yaml.UnmarshalStrict([]byte(doc), pa); err != nil {
				t.Fatalf("%v\n%s", err, doc)
			}
			pas = append(pas, pa)
		default:
			t.Fatalf("not a security.istio.io policy: %q\n%s", meta.Kind, doc)
		}
	}
	return aps, pas
}

// TestZtunnelModel checks the model on policies Istio converts, with verdicts read by hand from
// ztunnel's rbac.rs and state.rs and from istiod's attachment code.
func TestZtunnelModel(t *testing.T) {
	const (
		web      = "spiffe://cluster.local/ns/shop/sa/web"
		api      = "spiffe://cluster.local/ns/shop/sa/api"
		otherWeb = "spiffe://cluster.local/ns/other/sa/web"
		foreign  = "spiffe://east.example.com/ns/shop/sa/web"
	)
	ap := func(ns, name, spec string) string {
		var b strings.Builder
		fmt.Fprintf(&b, "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: %s\n  namespace: %s\nspec:\n", name, ns)
		for _, line := range strings.Split(strings.TrimSpace(spec), "\n") {
			if strings.TrimSpace(line) != "" {
				b.WriteString("  " + line + "\n")
			}
		}
		if strings.TrimSpace(spec) == "{}" {
			return strings.Replace(b.String(), "spec:\n  {}\n", "spec: {}\n", 1)
		}
		return b.String()
	}
	pa := func(ns, name, spec string) string {
		return strings.Replace(ap(ns, name, spec), "kind: AuthorizationPolicy", "kind: PeerAuthentication", 1)
	}
	const apiSelector = "selector:\n  matchLabels:\n    app: api\n"
	type probe struct {
		principal string
		port      uint32
		src       string
		want      bool
	}
	apiPod := map[string]string{"app": "api", "version": "v1"}
	cases := []struct {
		name     string
		docs     []string
		ns       string // the destination's namespace, shop when empty
		labels   map[string]string
		attached []string // the keys the workload gets, sorted, when checked
		probes   []probe
	}{
		{name: "no policy: allowed", probes: []probe{{web, 8080, "", true}, {"", 8080, "", true}}},
		{
			name:     "allow-nothing: a policy without groups matches nothing",
			docs:     []string{ap("shop", "deny-all", "{}")},
			attached: []string{"shop/deny-all"},
			probes:   []probe{{web, 8080, "", false}, {"", 8080, "", false}},
		},
		{
			name: "ALLOW by principal and target port; spiffe:// stripped; another trust domain differs",
			docs: []string{ap("shop", "allow", apiSelector+`
rules:
- from:
  - source:
      principals: [cluster.local/ns/shop/sa/web]
  to:
  - operation:
      ports: ["8080"]`)},
			attached: []string{"shop/allow"},
			probes:   []probe{{web, 8080, "", true}, {web, 9090, "", false}, {api, 8080, "", false}, {"", 8080, "", false}, {foreign, 8080, "", false}},
		},
		{
			name: "a principal written with spiffe:// never matches (ztunnel compares without it)",
			docs: []string{ap("shop", "allow", apiSelector+`
rules:
- from:
  - source:
      principals: [spiffe://cluster.local/ns/shop/sa/web]`)},
			probes: []probe{{web, 8080, "", false}},
		},
		{
			name: "an ALLOW rule with paths is dropped whole; the policy still applies, so all is denied",
			docs: []string{ap("shop", "allow", apiSelector+`
rules:
- from:
  - source:
      principals: [cluster.local/ns/shop/sa/web]
  to:
  - operation:
      paths: [/data]`)},
			attached: []string{"shop/allow"},
			probes:   []probe{{web, 8080, "", false}},
		},
		{
			name:   "a rule with neither from nor to matches everything (a group without rules)",
			docs:   []string{ap("shop", "allow", apiSelector+"rules:\n- {}")},
			probes: []probe{{web, 1, "", true}, {"", 8080, "", true}},
		},
		{
			name: "a named port is dropped: the to clause is left empty and matches nothing",
			docs: []string{ap("shop", "allow", apiSelector+`
rules:
- to:
  - operation:
      ports: [http]`)},
			probes: []probe{{web, 8080, "", false}},
		},
		{
			name: "DENY wins over ALLOW; notPrincipals presence denies what has no identity",
			docs: []string{
				ap("shop", "allow", apiSelector+"rules:\n- {}"),
				ap("shop", "deny", apiSelector+`
action: DENY
rules:
- from:
  - source:
      notPrincipals: ["*"]
- from:
  - source:
      principals: [cluster.local/ns/shop/sa/api]
  to:
  - operation:
      notPorts: ["9090"]`),
			},
			probes: []probe{{web, 8080, "", true}, {"", 8080, "", false}, {api, 8080, "", false}, {api, 9090, "", true}},
		},
		{
			name: "prefix, suffix and presence principals; namespaces; service accounts ignore the trust domain",
			docs: []string{ap("shop", "allow", apiSelector+`
rules:
- from:
  - source:
      principals: ["cluster.local/ns/other/*"]
- from:
  - source:
      principals: ["*/sa/api"]
- from:
  - source:
      namespaces: [edge]
- from:
  - source:
      serviceAccounts: [web]
  to:
  - operation:
      ports: ["9090"]`)},
			probes: []probe{
				{otherWeb, 1, "", true}, {api, 1, "", true}, {"spiffe://cluster.local/ns/edge/sa/x", 1, "", true},
				{web, 9090, "", true}, {foreign, 9090, "", true}, {web, 8080, "", false}, {"", 1, "", false},
			},
		},
		{
			name: "source addresses and notIpBlocks",
			docs: []string{ap("shop", "allow", apiSelector+`
rules:
- from:
  - source:
      ipBlocks: [10.1.0.0/16]
      notIpBlocks: [10.1.2.0/24]`)},
			probes: []probe{{"", 80, "10.1.1.1", true}, {"", 80, "10.1.2.3", false}, {"", 80, "10.2.0.1", false}},
		},
		{
			name: "attachment: selector of its namespace or the root namespace, not another namespace's; root namespace-wide is GLOBAL",
			docs: []string{
				ap("shop", "mine", apiSelector+"rules:\n- from:\n  - source:\n      principals: [cluster.local/ns/shop/sa/web]"),
				ap("shop", "not-mine", "selector:\n  matchLabels:\n    app: web\nrules:\n- {}"),
				ap("shop", "more-labels", "selector:\n  matchLabels:\n    app: api\n    version: v2\nrules:\n- {}"),
				ap("other", "elsewhere", apiSelector+"rules:\n- {}"),
				ap("other", "elsewhere-ns", "{}"),
				ap("istio-system", "root-selector", apiSelector+"action: DENY\nrules:\n- from:\n  - source:\n      principals: [cluster.local/ns/shop/sa/api]"),
				ap("istio-system", "root-wide", "action: DENY\nrules:\n- to:\n  - operation:\n      ports: [\"6666\"]"),
			},
			labels:   apiPod,
			attached: []string{"istio-system/root-selector", "istio-system/root-wide", "shop/mine"},
			probes:   []probe{{web, 8080, "", true}, {api, 8080, "", false}, {otherWeb, 8080, "", false}, {web, 6666, "", false}},
		},
		{
			name:     "STRICT namespace PeerAuthentication: the static STRICT policy denies what has no identity",
			docs:     []string{pa("shop", "shop", "mtls:\n  mode: STRICT")},
			attached: []string{ztunnelStaticStrict},
			probes:   []probe{{web, 8080, "", true}, {"", 8080, "", false}},
		},
		{
			name:     "PERMISSIVE namespace PeerAuthentication: no static policy",
			docs:     []string{pa("shop", "shop", "mtls:\n  mode: PERMISSIVE")},
			attached: []string{},
			probes:   []probe{{"", 8080, "", true}},
		},
		{
			name: "STRICT namespace, the workload's port 8080 PERMISSIVE: the converted policy replaces the static one",
			docs: []string{
				pa("shop", "shop", "mtls:\n  mode: STRICT"),
				pa("shop", "api", apiSelector+"mtls:\n  mode: STRICT\nportLevelMtls:\n  8080:\n    mode: PERMISSIVE"),
			},
			labels:   apiPod,
			attached: []string{"shop/converted_peer_authentication_api"},
			probes:   []probe{{"", 8080, "", true}, {"", 9090, "", false}, {web, 9090, "", true}},
		},
		{
			name:     "STRICT in the root namespace is the mesh's mode",
			docs:     []string{pa("istio-system", "mesh", "mtls:\n  mode: STRICT")},
			attached: []string{ztunnelStaticStrict},
			probes:   []probe{{"", 8080, "", false}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			aps, pas := ztunnelDecode(t, strings.Join(tc.docs, "\n---\n"))
			z := ambientPolicyCollections(t, aps, pas)
			ns, labels := tc.ns, tc.labels
			if ns == "" {
				ns = "shop"
			}
			if labels == nil {
				labels = map[string]string{"app": "api"}
			}
			policies := z.attached(t, ns, labels)
			if tc.attached != nil {
				var keys []string
				for _, p := range policies {
					keys = append(keys, p.Namespace+"/"+p.Name)
				}
				slices.Sort(keys)
				if !slices.Equal(keys, tc.attached) && !(len(keys) == 0 && len(tc.attached) == 0) {
					t.Errorf("attached %v, want %v", keys, tc.attached)
				}
			}
			for _, p := range tc.probes {
				src := p.src
				if src == "" {
					src = "10.0.0.5"
				}
				c := ztunnelConn{Principal: p.principal, SourceIP: netip.MustParseAddr(src), DestIP: netip.MustParseAddr("10.0.1.10"), Port: p.port}
				if got, why := ztunnelVerdict(policies, c); got != p.want {
					t.Errorf("%s: allowed %v (%s), want %v", c, got, why, p.want)
				}
			}
		})
	}
}
