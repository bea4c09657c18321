package istio

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	rbacpb "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"

	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"istio.io/istio/pilot/pkg/config/kube/crd"
	"istio.io/istio/pilot/pkg/config/memory"
	"istio.io/istio/pilot/pkg/model"
	"istio.io/istio/pilot/pkg/security/authz/builder"
	"istio.io/istio/pilot/pkg/security/trustdomain"
	istiomesh "istio.io/istio/pkg/config/mesh"
	"istio.io/istio/pkg/config/mesh/meshwatcher"
	"istio.io/istio/pkg/config/schema/collections"

	"github.com/servicegraph/servicegraph-operator/internal/eval"
)

// TestEvalAgreesWithIstiosBuilder is the differential test of the project's evaluator against
// Istio: for every AuthorizationPolicy of the public corpus that istiod accepts, and for random
// policy sets over every source and operation field, condition keys, actions, dry-run spellings
// and selectors, Istio's authorization builder turns the policies into Envoy RBAC filters for the
// destination workload (the HTTP chain for an HTTP request, the TCP chain for a connection), the
// Envoy RBAC evaluator of rbacmatch_test.go runs them, and eval.Check must say the same for every
// request of a generated set (callers with and without mutual TLS, in and out of the policy's
// namespace and trust domain, addresses, ports, paths, methods, hosts, headers, a JWT or none).
// Any disagreement fails with the policies and the request. CUSTOM policies are left out: their
// verdict is an external provider's (eval's table test covers what Istio does around them).
func TestEvalAgreesWithIstiosBuilder(t *testing.T) {
	var sets []policySet
	for _, doc := range corpusAuthorizationPolicies(t) {
		sets = append(sets, policySet{name: doc.name, docs: []string{doc.yaml}})
	}
	corpus := len(sets)
	rng := rand.New(rand.NewPCG(29, 2026))
	for i := range 800 {
		sets = append(sets, randomPolicySet(rng, i))
	}
	judged, refused, requests, disagreements, unknowable := 0, 0, 0, 0, 0
	for _, set := range sets {
		dest, ok := set.destination(t)
		if !ok {
			refused++
			continue
		}
		judged++
		cluster, istio, ok := set.build(t, dest)
		if !ok {
			refused++
			judged--
			continue
		}
		for _, r := range requestsFor(rng, set, dest) {
			requests++
			want, why, err := istio.verdict(r)
			v := cluster.Check(r.eval(dest))
			step := v.Steps[3]
			// What neither side can know of a request (its SNI, another Envoy filter's metadata):
			// eval says it did not evaluate it, the RBAC evaluator refuses to guess.
			if set.unknowable() && (err != nil || strings.Contains(step.Detail, "not evaluated")) {
				unknowable++
				continue
			}
			if err != nil {
				t.Fatalf("%s: the RBAC evaluator: %v\n%s", set.name, err, set.yaml())
			}
			if step.Allowed != want || strings.Contains(step.Detail, "not evaluated") {
				disagreements++
				if disagreements <= 15 {
					t.Errorf("%s: %s\n  Istio: %v (%s)\n  eval:  %v (%s; %s)\npolicies:\n%s", set.name, r, want, why, step.Allowed, step.By, step.Detail, set.yaml())
				}
			}
		}
	}
	t.Logf("%d policy sets (%d from the corpus, the rest random), %d refused by istiod's validation or CUSTOM, %d requests judged by Istio's builder and eval, %d on attributes neither knows (SNI, Envoy metadata), %d disagreements",
		len(sets), corpus, refused, requests, unknowable, disagreements)
	if judged < 300 || requests < 10000 {
		t.Errorf("only %d sets and %d requests judged", judged, requests)
	}
}

// policySet is AuthorizationPolicies judged together.
type policySet struct {
	name string
	docs []string
}

func (s policySet) yaml() string { return strings.Join(s.docs, "---\n") }

// unknowable tells whether a policy names what no request here carries: the connection's SNI or
// another Envoy filter's metadata.
func (s policySet) unknowable() bool {
	return strings.Contains(s.yaml(), "connection.sni") || strings.Contains(s.yaml(), "experimental.envoy.filters")
}

// destination is the workload the policies are judged on: in the namespace of the first policy
// (the shop namespace for the root namespace's), with the labels its selector names and app: api.
func (s policySet) destination(t *testing.T) (*eval.Workload, bool) {
	first := decodeAP(t, s.docs[0])
	if first == nil {
		return nil, false
	}
	labels := map[string]string{"app": "api"}
	for k, v := range first.Spec.GetSelector().GetMatchLabels() {
		if k != "app" || !strings.HasPrefix(s.name, "random") {
			labels[k] = v
		}
	}
	ns := first.Namespace
	if ns == "" || ns == "istio-system" {
		ns = "shop"
	}
	return &eval.Workload{Namespace: ns, Name: "dest", Labels: labels, IP: "10.0.0.2", ServiceAccount: "api", Meshed: true}, true
}

// build validates the policies with istiod's validation (false when it refuses one, or when one is
// CUSTOM), builds Istio's filters for the destination and eval's cluster.
func (s policySet) build(t *testing.T, dest *eval.Workload) (*eval.Cluster, *istioVerdicts, bool) {
	t.Helper()
	store := memory.Make(collections.Pilot)
	cluster := &eval.Cluster{}
	for i, doc := range s.docs {
		configs, _, err := crd.ParseInputs(doc)
		if err != nil || len(configs) != 1 {
			return nil, nil, false
		}
		c := configs[0]
		if c.Namespace == "" {
			c.Namespace = dest.Namespace
		}
		c.CreationTimestamp = time.Date(2026, 1, 1, 0, 0, i, 0, time.UTC)
		sch, ok := collections.Pilot.FindByGroupVersionAliasesKind(c.GroupVersionKind)
		if !ok {
			return nil, nil, false
		}
		if _, err := sch.ValidateConfig(c); err != nil {
			return nil, nil, false
		}
		ap := decodeAP(t, doc)
		if ap == nil || ap.Spec.GetAction().String() == "CUSTOM" {
			return nil, nil, false
		}
		ap.Namespace = c.Namespace
		ap.CreationTimestamp.Time = c.CreationTimestamp
		cluster.Add(ap)
		if _, err := store.Create(c); err != nil {
			t.Fatal(err)
		}
	}
	// The mesh's default configuration: its root namespace, istio-system, is where mesh-wide
	// policies live.
	env := &model.Environment{ConfigStore: store, Watcher: meshwatcher.NewTestWatcher(istiomesh.DefaultMeshConfig())}
	push := &model.PushContext{AuthzPolicies: model.GetAuthorizationPolicies(env)}
	proxy := &model.Proxy{ConfigNamespace: dest.Namespace, Labels: dest.Labels, Metadata: &model.NodeMetadata{Labels: dest.Labels, Namespace: dest.Namespace}}
	policies := push.AuthzPolicies.ListAuthorizationPolicies(model.PolicyMatcherForProxy(proxy))
	b := builder.New(trustdomain.NewBundle("cluster.local", nil), push, policies, builder.Option{})
	v := &istioVerdicts{}
	if b != nil {
		var err error
		if v.http, err = httpFilters(b); err != nil {
			t.Fatal(err)
		}
		if v.tcp, err = tcpFilters(b); err != nil {
			t.Fatal(err)
		}
	}
	return cluster, v, true
}

// istioVerdicts are the filters Istio's builder made, per chain.
type istioVerdicts struct{ http, tcp []*rbacpb.RBAC }

func (v *istioVerdicts) verdict(r probeRequest) (bool, string, error) {
	filters := v.tcp
	if r.http {
		filters = v.http
	}
	return rbacVerdict(filters, r.envoy())
}

// caller is who makes a request: a principal ("" in plain text) and an address.
type caller struct {
	trustDomain, namespace, serviceAccount string
	meshed                                 bool
	ip                                     string
}

// probeRequest is one request of the generated set.
type probeRequest struct {
	from               caller
	port               int32
	http               bool
	path, method, host string
	headers            map[string]string
	jwt                *eval.JWT
}

func (r probeRequest) String() string {
	who := "plain text from " + r.from.ip
	if r.from.meshed {
		who = fmt.Sprintf("%s/ns/%s/sa/%s at %s", r.from.trustDomain, r.from.namespace, r.from.serviceAccount, r.from.ip)
	}
	s := fmt.Sprintf("%s -> port %d", who, r.port)
	if r.http {
		s += fmt.Sprintf(" HTTP %s %s host %s headers %v", r.method, r.path, r.host, r.headers)
		if r.jwt != nil {
			s += fmt.Sprintf(" JWT %s/%s %v", r.jwt.Issuer, r.jwt.Subject, r.jwt.Claims)
		} else {
			s += " no JWT"
		}
	} else {
		s += " TCP"
	}
	return s
}

func (r probeRequest) eval(dest *eval.Workload) eval.Request {
	from := &eval.Workload{Namespace: r.from.namespace, Name: "caller", ServiceAccount: r.from.serviceAccount, Meshed: r.from.meshed, IP: r.from.ip}
	if r.from.trustDomain != "cluster.local" {
		from.TrustDomain = r.from.trustDomain
	}
	req := eval.Request{From: eval.Endpoint{Workload: from, IP: r.from.ip}, To: dest, Port: r.port, Protocol: corev1.ProtocolTCP}
	if r.http {
		req.HTTP = &eval.HTTP{Path: r.path, Method: r.method, Host: r.host, Headers: r.headers, JWT: r.jwt}
	}
	return req
}

func (r probeRequest) envoy() envoyRequest {
	ip := netip.MustParseAddr(r.from.ip)
	e := envoyRequest{SourceIP: ip, RemoteIP: ip, DestIP: netip.MustParseAddr("10.0.0.2"), DestPort: uint32(r.port), HTTP: r.http}
	if r.from.meshed {
		e.Principal = fmt.Sprintf("spiffe://%s/ns/%s/sa/%s", r.from.trustDomain, r.from.namespace, r.from.serviceAccount)
	}
	if r.http {
		e.Headers = map[string]string{":method": r.method, ":path": r.path, ":authority": r.host}
		for k, v := range r.headers {
			e.Headers[strings.ToLower(k)] = v
		}
		if r.jwt != nil {
			e.JWT = jwtPayload(r.jwt)
		}
	}
	return e
}

// jwtPayload is a token's claims as Envoy's jwt_authn filter stores them: iss, sub, lists, and a
// nested claim "a.b" as {"a": {"b": ...}}.
func jwtPayload(j *eval.JWT) map[string]any {
	out := map[string]any{"iss": j.Issuer, "sub": j.Subject}
	for k, vs := range j.Claims {
		list := make([]any, len(vs))
		for i, v := range vs {
			list[i] = v
		}
		if outer, inner, nested := strings.Cut(k, "."); nested {
			out[outer] = map[string]any{inner: list}
			continue
		}
		out[k] = list
	}
	return out
}

var (
	callers = []caller{
		{"cluster.local", "shop", "web", true, "10.0.0.1"},
		{"cluster.local", "shop", "api", true, "10.0.0.77"},
		{"cluster.local", "other", "web", true, "10.0.1.5"},
		{"cluster.local", "team-a-prod", "default", true, "10.0.2.9"},
		{"east.example.com", "shop", "web", true, "10.1.0.1"},
		{"", "", "", false, "192.0.2.9"},
		{"", "", "", false, "2001:db8::5"},
		{"", "", "", false, "10.0.0.1"},
	}
	requestPorts   = []int32{8080, 9090, 5432}
	requestPaths   = []string{"/api/v1/items*", "/", "/api/v1/items", "/api/v1/items/7", "/admin", "/data", "/x/items", "/api/v1/items?q=1"}
	requestMethods = []string{"GET", "POST", "DELETE"}
	requestHosts   = []string{"shop.example.com", "api.shop.svc", "API.SHOP.SVC"}
	tokens         = []*eval.JWT{nil,
		{Issuer: "https://idp.example.com", Subject: "alice", Claims: map[string][]string{"aud": {"shop"}, "azp": {"web"}, "groups": {"dev", "ops"}, "a.b": {"deep"}}},
		{Issuer: "https://other.example.com", Subject: "bob", Claims: map[string][]string{"groups": {"guest"}}}}
)

// requestsFor makes the requests a set is judged on: every caller on TCP and on HTTP, then random
// mixes of the pools.
func requestsFor(rng *rand.Rand, _ policySet, _ *eval.Workload) []probeRequest {
	var out []probeRequest
	pick := func(s []string) string { return s[rng.IntN(len(s))] }
	for _, c := range callers {
		out = append(out, probeRequest{from: c, port: 8080})
		out = append(out, probeRequest{from: c, port: 8080, http: true, path: "/api/v1/items", method: "GET", host: "shop.example.com"})
	}
	for range 30 {
		r := probeRequest{from: callers[rng.IntN(len(callers))], port: requestPorts[rng.IntN(len(requestPorts))], http: rng.IntN(4) > 0}
		if r.http {
			r.path, r.method, r.host = pick(requestPaths), pick(requestMethods), pick(requestHosts)
			if rng.IntN(2) == 0 {
				r.headers = map[string]string{"X-Team": pick([]string{"blue", "red"})}
			}
			r.jwt = tokens[rng.IntN(len(tokens))]
		}
		out = append(out, r)
	}
	return out
}

// corpusDoc is one AuthorizationPolicy of the public corpus.
type corpusDoc struct{ name, yaml string }

func corpusAuthorizationPolicies(t *testing.T) []corpusDoc {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(root, "test", "testdata", "corpus", "*", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("corpus: %v", err)
	}
	kind := regexp.MustCompile(`(?m)^kind:\s*AuthorizationPolicy\s*$`)
	var out []corpusDoc
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range strings.Split("\n"+string(data), "\n---") {
			if kind.MatchString(doc) && !strings.Contains(doc, "{{") {
				out = append(out, corpusDoc{name: fmt.Sprintf("%s#%d", filepath.Base(f), i), yaml: doc})
			}
		}
	}
	if len(out) < 80 {
		t.Fatalf("only %d corpus AuthorizationPolicies", len(out))
	}
	return out
}

func decodeAP(t *testing.T, doc string) *securityv1.AuthorizationPolicy {
	t.Helper()
	ap := &securityv1.AuthorizationPolicy{}
	if err := yaml.Unmarshal([]byte(doc), ap); err != nil {
		return nil
	}
	return ap
}

// Pools of values the random policies draw from: every form Istio's validation accepts for each
// field, and some it builds into matchers that never match.
var (
	principalValues      = []string{"cluster.local/ns/shop/sa/web", "cluster.local/ns/other/*", "*/sa/web", "*", "*shop*", "*web*", "spiffe://cluster.local/ns/shop/sa/web", "east.example.com/ns/shop/sa/web", "cluster.local/ns/shop/sa/*"}
	namespaceValues      = []string{"shop", "other", "s*p", "*", "team-*-prod", "*-prod", "sh*"}
	serviceAccountValues = []string{"a/b/c", "sa*", "web", "shop/web", "other/web", "api", "default"}
	trustDomainValues    = []string{"cluster/local", "*a*", "cluster.local", "*.example.com", "*", "east.example.com", "cluster.*"}
	ipValues             = []string{"10.0.0.0/24", "10.0.0.1", "192.0.2.0/24", "2001:db8::/32", "10.0.0.9/16", "0.0.0.0/0"}
	requestPrincValues   = []string{"*", "https://idp.example.com/alice", "*/alice", "https://idp.example.com/*", "https://idp.example.com/al*", "*alice", "https://idp.example.com*"}
	portValues           = []string{"8080", "9090", "5432"}
	pathValues           = []string{"/api/{*}x/{**}/y", "*items*", "/api/*", "/admin", "*", "*/items", "/api/{*}/items", "/api/{**}", "/data", "/api/v1/items"}
	methodValues         = []string{"GET", "POST", "*", "G*", "*T"}
	hostValues           = []string{"shop.example.com", "*.example.com", "API.shop.svc", "api.*", "*"}
	conditionValues      = map[string][]string{
		"source.ip": {"10.0.0.0/24", "192.0.2.9"}, "remote.ip": {"10.0.0.0/8", "2001:db8::/32"},
		"source.namespace": {"shop", "o*"}, "source.principal": {"cluster.local/ns/shop/sa/web", "*/sa/api"},
		"source.serviceAccount": {"web", "other/web"}, "source.trustDomain": {"cluster.local", "*.example.com"},
		"request.auth.principal": {"https://idp.example.com/alice", "*"}, "request.auth.audiences": {"shop", "s*"},
		"request.auth.presenter": {"web"}, "request.auth.claims[groups]": {"ops", "guest", "*"}, "request.auth.claims[a][b]": {"deep"},
		"request.headers[x-team]": {"blue", "*", "b*"}, "destination.ip": {"10.0.0.2", "10.1.0.0/16"}, "destination.port": {"8080", "5432"},
	}
)

// randomPolicySet makes one to three policies over the pools.
func randomPolicySet(rng *rand.Rand, n int) policySet {
	set := policySet{name: fmt.Sprintf("random-%03d", n)}
	for i := range 1 + rng.IntN(3) {
		set.docs = append(set.docs, randomPolicy(rng, fmt.Sprintf("p%d", i), i == 0))
	}
	return set
}

func randomPolicy(rng *rand.Rand, name string, first bool) string {
	pick := func(s []string) string { return s[rng.IntN(len(s))] }
	some := func(s []string) string {
		var out []string
		for range 1 + rng.IntN(2) {
			out = append(out, fmt.Sprintf("%q", pick(s)))
		}
		return "[" + strings.Join(slices.Compact(out), ", ") + "]"
	}
	var b strings.Builder
	ns := "shop"
	if !first && rng.IntN(8) == 0 {
		ns = "istio-system"
	}
	fmt.Fprintf(&b, "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: %s\n  namespace: %s\n", name, ns)
	if d := rng.IntN(10); d < 3 {
		fmt.Fprintf(&b, "  annotations:\n    istio.io/dry-run: %q\n", []string{"true", "True", "1", "false", "yes"}[rng.IntN(5)])
	}
	b.WriteString("spec:\n")
	switch rng.IntN(4) {
	case 0:
	case 1:
		b.WriteString("  selector: {matchLabels: {app: web}}\n")
	default:
		b.WriteString("  selector: {matchLabels: {app: api}}\n")
	}
	action := []string{"ALLOW", "ALLOW", "DENY", "DENY", "AUDIT"}[rng.IntN(5)]
	fmt.Fprintf(&b, "  action: %s\n", action)
	if action == "ALLOW" && rng.IntN(8) == 0 {
		return b.String() // allow-nothing
	}
	b.WriteString("  rules:\n")
	for range 1 + rng.IntN(2) {
		b.WriteString("  - " + randomRule(rng, pick, some) + "\n")
	}
	return b.String()
}

func randomRule(rng *rand.Rand, pick func([]string) string, some func([]string) string) string {
	var parts []string
	if rng.IntN(3) > 0 {
		var froms []string
		for range 1 + rng.IntN(2) {
			var fields []string
			fieldsOf := []func() string{
				func() string { return "principals: " + some(principalValues) },
				func() string { return "notPrincipals: " + some(principalValues) },
				func() string { return "namespaces: " + some(namespaceValues) },
				func() string { return "notNamespaces: " + some(namespaceValues) },
				func() string { return "trustDomains: " + some(trustDomainValues) },
				func() string { return "ipBlocks: " + some(ipValues) },
				func() string { return "notIpBlocks: " + some(ipValues) },
				func() string { return "remoteIpBlocks: " + some(ipValues) },
				func() string { return "requestPrincipals: " + some(requestPrincValues) },
				func() string { return "notRequestPrincipals: " + some(requestPrincValues) },
			}
			for range 1 + rng.IntN(2) {
				fields = append(fields, fieldsOf[rng.IntN(len(fieldsOf))]())
			}
			if rng.IntN(4) == 0 { // serviceAccounts go without principals and namespaces
				fields = []string{"serviceAccounts: " + some(serviceAccountValues)}
				if rng.IntN(2) == 0 {
					fields = append(fields, "ipBlocks: "+some(ipValues))
				}
			}
			froms = append(froms, "{source: {"+strings.Join(uniqueFields(fields), ", ")+"}}")
		}
		parts = append(parts, "from: ["+strings.Join(froms, ", ")+"]")
	}
	if rng.IntN(3) > 0 {
		var tos []string
		for range 1 + rng.IntN(2) {
			fieldsOf := []func() string{
				func() string { return "ports: " + some(portValues) },
				func() string { return "notPorts: " + some(portValues) },
				func() string { return "paths: " + some(pathValues) },
				func() string { return "notPaths: " + some(pathValues) },
				func() string { return "methods: " + some(methodValues) },
				func() string { return "notMethods: " + some(methodValues) },
				func() string { return "hosts: " + some(hostValues) },
				func() string { return "notHosts: " + some(hostValues) },
			}
			var fields []string
			for range 1 + rng.IntN(2) {
				fields = append(fields, fieldsOf[rng.IntN(len(fieldsOf))]())
			}
			tos = append(tos, "{operation: {"+strings.Join(uniqueFields(fields), ", ")+"}}")
		}
		parts = append(parts, "to: ["+strings.Join(tos, ", ")+"]")
	}
	if rng.IntN(3) == 0 {
		keys := make([]string, 0, len(conditionValues))
		for k := range conditionValues {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		var whens []string
		for range 1 + rng.IntN(2) {
			k := pick(keys)
			field := "values"
			if rng.IntN(3) == 0 {
				field = "notValues"
			}
			whens = append(whens, fmt.Sprintf("{key: %q, %s: %s}", k, field, some(conditionValues[k])))
		}
		parts = append(parts, "when: ["+strings.Join(whens, ", ")+"]")
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// uniqueFields keeps the first of each field name (YAML refuses a key twice).
func uniqueFields(fields []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, f := range fields {
		k, _, _ := strings.Cut(f, ":")
		if !seen[k] {
			seen[k] = true
			out = append(out, f)
		}
	}
	return out
}

// TestDivergencesAsIstioDecides prints, for each form on which the evaluator once read a policy
// differently from Istio, what Istio's builder decides (the referee) next to eval's verdict, and
// fails when they differ.
func TestDivergencesAsIstioDecides(t *testing.T) {
	web := caller{"cluster.local", "shop", "web", true, "10.0.0.1"}
	plain := caller{"", "", "", false, "192.0.2.9"}
	tcp := probeRequest{from: web, port: 8080}
	get := probeRequest{from: web, port: 8080, http: true, path: "/", method: "GET", host: "shop.example.com"}
	ap := func(name, annotations, spec string) string {
		return "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: " + name + "\n  namespace: shop\n" + annotations + "spec:\n  selector: {matchLabels: {app: api}}\n" + spec
	}
	for _, tc := range []struct {
		name string
		docs []string
		req  probeRequest
	}{
		{"D4 serviceAccounts: [web] (a bare name: the policy's namespace)", []string{ap("db", "", "  rules: [{from: [{source: {serviceAccounts: [web]}}]}]\n")}, tcp},
		{"D4 namespaces: ['s*p'] (a * inside)", []string{ap("db", "", "  rules: [{from: [{source: {namespaces: ['s*p']}}]}]\n")}, tcp},
		{"D3 principals: ['*/sa/web*'] (the leading * first)", []string{ap("db", "", "  rules: [{from: [{source: {principals: ['*/sa/web*']}}]}]\n")}, tcp},
		{"D8 istio.io/dry-run: \"True\" on a DENY", []string{ap("deny", "  annotations: {istio.io/dry-run: \"True\"}\n", "  action: DENY\n  rules: [{}]\n")}, tcp},
		{"D6 DENY requestPrincipals: ['*'] on TCP", []string{ap("jwt", "", "  action: DENY\n  rules: [{from: [{source: {requestPrincipals: ['*']}}]}]\n")}, tcp},
		{"D6 DENY requestPrincipals: ['*'] on HTTP without a token", []string{ap("jwt", "", "  action: DENY\n  rules: [{from: [{source: {requestPrincipals: ['*']}}]}]\n")}, get},
		{"D5 ALLOW hosts only, on TCP", []string{ap("hosts", "", "  rules: [{to: [{operation: {hosts: [shop.example.com]}}]}]\n")}, tcp},
		{"ALLOW ports or paths in two to entries, on TCP", []string{ap("two", "", "  rules: [{to: [{operation: {ports: ['8080']}}, {operation: {paths: [/x]}}]}]\n")}, tcp},
		{"D4 trustDomains: ['*.local']", []string{ap("td", "", "  rules: [{from: [{source: {trustDomains: ['*.local']}}]}]\n")}, tcp},
		{"notPrincipals: ['*'] from plain text", []string{ap("np", "", "  rules: [{from: [{source: {notPrincipals: ['*']}}]}]\n")}, probeRequest{from: plain, port: 8080}},
	} {
		set := policySet{name: tc.name, docs: tc.docs}
		dest, _ := set.destination(t)
		cluster, istio, ok := set.build(t, dest)
		if !ok {
			t.Fatalf("%s: istiod refuses it", tc.name)
		}
		want, why, err := istio.verdict(tc.req)
		if err != nil {
			t.Fatal(err)
		}
		step := cluster.Check(tc.req.eval(dest)).Steps[3]
		t.Logf("%s, %s: Istio %v (%s); eval %v (%s)", tc.name, tc.req, want, why, step.Allowed, step.By)
		if step.Allowed != want {
			t.Errorf("%s: Istio %v, eval %v", tc.name, want, step.Allowed)
		}
	}
}

// TestLintAgreesWithIstioValidationOnRandomPolicies holds lint's account of what istiod refuses
// (AP010, from semantics.Refusals) to istiod's validation on random policies: istiod refuses a
// policy exactly when lint reports an error, and never accepts one lint says it refuses.
func TestLintAgreesWithIstioValidationOnRandomPolicies(t *testing.T) {
	rng := rand.New(rand.NewPCG(10, 2026))
	refused := 0
	for i := range 400 {
		doc := randomPolicy(rng, fmt.Sprintf("p%d", i), true)
		istioErr := istioValidate(doc)
		rules := lintRules(t, doc)
		if istioErr != nil {
			refused++
			if !rules["AP010"] {
				t.Errorf("istiod refuses it (%v), lint reports no AP010:\n%s", istioErr, doc)
			}
		} else if rules["AP010"] {
			t.Errorf("lint says istiod refuses it (AP010), istiod accepts it:\n%s", doc)
		}
	}
	t.Logf("400 random policies, %d refused by istiod", refused)
}
