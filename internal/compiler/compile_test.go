package compiler

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	securityv1beta1 "istio.io/api/security/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/graph"
	"github.com/servicegraph/servicegraph-operator/internal/render"
)

// kindNames lists a phase as "Kind/name".
func kindNames(objs []Object) []string {
	out := make([]string, len(objs))
	for i, o := range objs {
		out[i] = o.GetObjectKind().GroupVersionKind().Kind + "/" + o.GetName()
	}
	return out
}

func find[T Object](t *testing.T, objs []Object, name string) T {
	t.Helper()
	for _, o := range objs {
		if typed, ok := o.(T); ok && o.GetName() == name {
			return typed
		}
	}
	var zero T
	t.Fatalf("no %T named %s in %v", zero, name, kindNames(objs))
	return zero
}

func TestCompileSeedPhases(t *testing.T) {
	res := mustCompile(t, readGraph(t, "testdata/input/seed.yaml"), DefaultOptions())
	want := [][]string{
		{
			"AuthorizationPolicy/shop-svc-api", "AuthorizationPolicy/shop-svc-database",
			"NetworkPolicy/shop-allow-dns", "NetworkPolicy/shop-allow-istiod",
			"NetworkPolicy/shop-svc-api", "NetworkPolicy/shop-svc-database", "NetworkPolicy/shop-svc-web",
		},
		{"PeerAuthentication/shop"},
		{"AuthorizationPolicy/shop-deny-all", "NetworkPolicy/shop-default-deny"},
	}
	var got [][]string
	for _, p := range res.Phases() {
		got = append(got, kindNames(p))
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("phases (-want +got):\n%s", diff)
	}
	if res.Services != 3 || res.Edges != 2 || res.MTLSMode != v1alpha1.MTLSStrict {
		t.Errorf("Services %d Edges %d MTLSMode %q, want 3 2 STRICT", res.Services, res.Edges, res.MTLSMode)
	}
}

func TestCompileObjectKinds(t *testing.T) {
	res := mustCompile(t, readGraph(t, "testdata/input/seed.yaml"), DefaultOptions())
	all := res.Objects()
	tcp, udp := corev1.ProtocolTCP, corev1.ProtocolUDP
	p := func(n int32) *intstr.IntOrString { v := intstr.FromInt32(n); return &v }

	t.Run("default-deny", func(t *testing.T) {
		np := find[*networkingv1.NetworkPolicy](t, all, "shop-default-deny")
		want := networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{"Ingress", "Egress"}}
		if diff := cmp.Diff(want, np.Spec); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
	t.Run("allow-dns", func(t *testing.T) {
		np := find[*networkingv1.NetworkPolicy](t, all, "shop-allow-dns")
		want := networkingv1.NetworkPolicySpec{
			PolicyTypes: []networkingv1.PolicyType{"Egress"},
			Egress: []networkingv1.NetworkPolicyEgressRule{{
				To: []networkingv1.NetworkPolicyPeer{{
					NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "kube-system"}},
					PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"k8s-app": "kube-dns"}},
				}},
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: &udp, Port: p(53)}, {Protocol: &tcp, Port: p(53)}},
			}},
		}
		if diff := cmp.Diff(want, np.Spec); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
	t.Run("allow-istiod", func(t *testing.T) {
		np := find[*networkingv1.NetworkPolicy](t, all, "shop-allow-istiod")
		want := networkingv1.NetworkPolicySpec{
			PolicyTypes: []networkingv1.PolicyType{"Egress"},
			Egress: []networkingv1.NetworkPolicyEgressRule{{
				To: []networkingv1.NetworkPolicyPeer{{
					NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "istio-system"}},
					PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"app": "istiod"}},
				}},
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: p(15012)}, {Protocol: &tcp, Port: p(15017)}},
			}},
		}
		if diff := cmp.Diff(want, np.Spec); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
	t.Run("per-service NetworkPolicy", func(t *testing.T) {
		np := find[*networkingv1.NetworkPolicy](t, all, "shop-svc-api")
		want := networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "api"}},
			PolicyTypes: []networkingv1.PolicyType{"Ingress", "Egress"},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From:  []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}}},
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: p(8080)}},
			}},
			Egress: []networkingv1.NetworkPolicyEgressRule{{
				To:    []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "database"}}}},
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: p(5432)}},
			}},
		}
		if diff := cmp.Diff(want, np.Spec); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
		if got := find[*networkingv1.NetworkPolicy](t, all, "shop-svc-web").Spec.PolicyTypes; !slices.Equal(got, []networkingv1.PolicyType{"Egress"}) {
			t.Errorf("web (a caller only) policyTypes %v, want [Egress]", got)
		}
		if got := find[*networkingv1.NetworkPolicy](t, all, "shop-svc-database").Spec.PolicyTypes; !slices.Equal(got, []networkingv1.PolicyType{"Ingress"}) {
			t.Errorf("database (called only) policyTypes %v, want [Ingress]", got)
		}
	})
	t.Run("PeerAuthentication", func(t *testing.T) {
		pa := find[*securityv1.PeerAuthentication](t, all, "shop")
		if pa.Spec.Selector != nil || pa.Spec.Mtls.GetMode() != securityv1beta1.PeerAuthentication_MutualTLS_STRICT {
			t.Errorf("spec %v, want no selector and mode STRICT", &pa.Spec)
		}
	})
	t.Run("deny-all", func(t *testing.T) {
		ap := find[*securityv1.AuthorizationPolicy](t, all, "shop-deny-all")
		if got := yamlOf(t, ap); !strings.Contains(got, "\nspec: {}\n") {
			t.Errorf("deny-all must have an empty spec:\n%s", got)
		}
	})
	t.Run("ALLOW AuthorizationPolicy", func(t *testing.T) {
		ap := find[*securityv1.AuthorizationPolicy](t, all, "shop-svc-database")
		want := `spec:
  rules:
  - from:
    - source:
        principals:
        - cluster.local/ns/shop/sa/api
    to:
    - operation:
        paths:
        - /data
        ports:
        - "5432"
  selector:
    matchLabels:
      app: database
`
		if got := yamlOf(t, ap); !strings.HasSuffix(got, want) {
			t.Errorf("got:\n%s\nwant a spec of:\n%s", got, want)
		}
		if ap.Spec.Action != securityv1beta1.AuthorizationPolicy_ALLOW {
			t.Errorf("action %v, want ALLOW", ap.Spec.Action)
		}
	})
}

func yamlOf(t *testing.T, obj Object) string {
	t.Helper()
	return mustYAML(t, []Object{obj})
}

// Every object is complete for server-side apply, labelled, and carries nothing of the graph's own
// metadata and no owner (the reconciler adds it).
func TestCompileObjectMetadata(t *testing.T) {
	sg := readGraph(t, "testdata/input/cross-namespace.yaml")
	res := mustCompile(t, sg, DefaultOptions())
	for _, obj := range res.Objects() {
		u, err := render.ToUnstructured(obj)
		if err != nil {
			t.Fatal(err)
		}
		id := fmt.Sprintf("%s/%s", u.GetKind(), u.GetName())
		if u.GetAPIVersion() == "" || u.GetKind() == "" || u.GetName() == "" || u.GetNamespace() != "shop" {
			t.Errorf("%s: apiVersion %q kind %q name %q namespace %q", id, u.GetAPIVersion(), u.GetKind(), u.GetName(), u.GetNamespace())
		}
		labels := u.GetLabels()
		if labels[LabelManagedBy] != ManagedByValue || labels[LabelGraph] != "shop" {
			t.Errorf("%s: labels %v", id, labels)
		}
		service, perService := labels[LabelService]
		if perService != strings.Contains(u.GetName(), "-svc-") || (perService && u.GetName() != "shop-svc-"+service) {
			t.Errorf("%s: service label %q", id, service)
		}
		wantLabels := 2
		if perService {
			wantLabels = 3
		}
		if len(labels) != wantLabels || len(u.GetAnnotations()) > 0 || len(u.GetOwnerReferences()) > 0 {
			t.Errorf("%s: labels %v annotations %v owners %v: the graph's metadata must not be copied", id, labels, u.GetAnnotations(), u.GetOwnerReferences())
		}
		if _, ok := u.Object["status"]; ok {
			t.Errorf("%s has a status", id)
		}
	}
}

// The two-sided model: an edge to a peer elsewhere yields only the caller's egress here; an edge
// from a peer elsewhere yields the ingress rule and the AuthorizationPolicy rule here, and never an
// object for the peer itself.
func TestCompileCrossNamespace(t *testing.T) {
	res := mustCompile(t, readGraph(t, "testdata/input/cross-namespace.yaml"), DefaultOptions())
	all := res.Objects()
	for _, o := range all {
		if strings.HasSuffix(o.GetName(), "-gateway") || strings.HasSuffix(o.GetName(), "-frontend") {
			t.Errorf("%s: no object may select a peer in another namespace", o.GetName())
		}
	}
	api := find[*networkingv1.NetworkPolicy](t, all, "shop-svc-api")
	if !slices.ContainsFunc(api.Spec.Egress, func(r networkingv1.NetworkPolicyEgressRule) bool {
		to := r.To[0]
		return to.NamespaceSelector != nil && to.NamespaceSelector.MatchLabels[namespaceLabel] == "payments" &&
			to.PodSelector.MatchLabels["app"] == "gateway" && r.Ports[0].Port.IntVal == 443
	}) {
		t.Errorf("api has no egress rule to payments/gateway:443: %+v", api.Spec.Egress)
	}
	web := find[*networkingv1.NetworkPolicy](t, all, "shop-svc-web")
	from := web.Spec.Ingress[0].From[0]
	if from.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != "storefront" || from.PodSelector.MatchLabels["app"] != "frontend" {
		t.Errorf("web ingress from the frontend: %+v", from)
	}
	ap := find[*securityv1.AuthorizationPolicy](t, all, "shop-svc-web")
	if got := ap.Spec.Rules[0].From[0].Source.Principals; !slices.Equal(got, []string{"cluster.local/ns/storefront/sa/frontend-sa"}) {
		t.Errorf("web's callers: %v", got)
	}
}

func TestCompileNamedPortsAndUDP(t *testing.T) {
	sg := newGraph("shop", []string{"web", "api", "dns", "db"}, "web->api:http,8080", "web->dns:5353")
	sg.Spec.Connections = []v1alpha1.Connection{
		{From: "api", To: "dns", Ports: []v1alpha1.ConnectionPort{{Port: intstr.FromInt32(53), Protocol: v1alpha1.ProtocolUDP}}},
		{From: "api", To: "db", Ports: []v1alpha1.ConnectionPort{
			{Port: intstr.FromInt32(5432)}, {Port: intstr.FromInt32(5433), Protocol: v1alpha1.ProtocolSCTP},
		}},
		{From: "web", To: "db", Ports: []v1alpha1.ConnectionPort{{Port: intstr.FromInt32(5433), Protocol: v1alpha1.ProtocolSCTP}}},
	}
	all := mustCompile(t, sg, DefaultOptions()).Objects()

	np := find[*networkingv1.NetworkPolicy](t, all, "shop-svc-api")
	if got := np.Spec.Ingress[0].Ports; len(got) != 2 || got[0].Port.IntVal != 8080 || got[1].Port.StrVal != "http" {
		t.Errorf("api ingress ports %v: want 8080 and the name http", got)
	}
	rule := find[*securityv1.AuthorizationPolicy](t, all, "shop-svc-api").Spec.Rules[0]
	if rule.To != nil {
		t.Errorf("a rule for an edge with a named port must not restrict ports (Istio takes numbers only): %v", rule.To)
	}
	egress := find[*networkingv1.NetworkPolicy](t, all, "shop-svc-api").Spec.Egress // to db, then to dns
	if got := egress[1]; got.To[0].PodSelector.MatchLabels["app"] != "dns" || *got.Ports[0].Protocol != corev1.ProtocolUDP {
		t.Errorf("api egress to dns: %+v, want UDP 53", got)
	}
	// dns is called on TCP 5353 by web: one Istio rule, for web only; api's UDP edge has none.
	dnsRules := find[*securityv1.AuthorizationPolicy](t, all, "shop-svc-dns").Spec.Rules
	if len(dnsRules) != 1 || dnsRules[0].From[0].Source.Principals[0] != "cluster.local/ns/shop/sa/web" {
		t.Errorf("dns rules %v: want web's only", dnsRules)
	}
	// db: api's edge keeps its TCP port in Istio and drops SCTP; web's SCTP-only edge has no rule.
	dbRules := find[*securityv1.AuthorizationPolicy](t, all, "shop-svc-db").Spec.Rules
	if len(dbRules) != 1 || !slices.Equal(dbRules[0].To[0].Operation.Ports, []string{"5432"}) {
		t.Errorf("db rules %v: want api's on 5432 only", dbRules)
	}
}

// A destination reached only over UDP or SCTP gets no AuthorizationPolicy: Istio does not see it.
func TestCompileUDPOnlyDestination(t *testing.T) {
	sg := newGraph("shop", []string{"app", "statsd"})
	sg.Spec.Connections = []v1alpha1.Connection{{From: "app", To: "statsd", Ports: []v1alpha1.ConnectionPort{{Port: intstr.FromInt32(8125), Protocol: v1alpha1.ProtocolUDP}}}}
	for _, name := range kindNames(mustCompile(t, sg, DefaultOptions()).Allow) {
		if name == "AuthorizationPolicy/shop-svc-statsd" {
			t.Errorf("statsd has only UDP callers but got %s", name)
		}
	}
}

func TestCompileOptions(t *testing.T) {
	sg := readGraph(t, "testdata/input/seed.yaml")
	res := mustCompile(t, sg, DefaultOptions(), istioOff())
	for _, o := range res.Objects() {
		if _, ok := o.(*networkingv1.NetworkPolicy); !ok || o.GetName() == "shop-allow-istiod" {
			t.Errorf("Istio off: unexpected %T %s", o, o.GetName())
		}
	}
	if len(res.MTLS) != 0 {
		t.Errorf("Istio off: MTLS phase %v", kindNames(res.MTLS))
	}

	opts := DefaultOptions()
	opts.TrustDomain = "mesh.example"
	opts.DNS = PeerSelector{Namespace: "dns", Labels: map[string]string{"app": "coredns"}}
	opts.Istiod = PeerSelector{Namespace: "mesh", Labels: map[string]string{"istio": "pilot"}}
	all := mustCompile(t, sg, opts).Objects()
	if got := find[*securityv1.AuthorizationPolicy](t, all, "shop-svc-api").Spec.Rules[0].From[0].Source.Principals[0]; got != "mesh.example/ns/shop/sa/web" {
		t.Errorf("principal %q", got)
	}
	if got := find[*networkingv1.NetworkPolicy](t, all, "shop-allow-dns").Spec.Egress[0].To[0]; got.NamespaceSelector.MatchLabels[namespaceLabel] != "dns" || got.PodSelector.MatchLabels["app"] != "coredns" {
		t.Errorf("dns peer %+v", got)
	}
	if got := find[*networkingv1.NetworkPolicy](t, all, "shop-allow-istiod").Spec.Egress[0].To[0]; got.NamespaceSelector.MatchLabels[namespaceLabel] != "mesh" || got.PodSelector.MatchLabels["istio"] != "pilot" {
		t.Errorf("istiod peer %+v", got)
	}

	sg.Spec.AllowDNS = new(bool)
	for _, name := range kindNames(mustCompile(t, sg, DefaultOptions()).Allow) {
		if name == "NetworkPolicy/shop-allow-dns" {
			t.Error("allowDNS false still allows DNS")
		}
	}

	if _, err := Compile(sg, Options{}, Facts{}); err == nil || err.Error() !=
		"compiler options: DNS.Namespace must be set; TrustDomain must be set when Istio is on; Istiod.Namespace must be set when Istio is on" {
		t.Errorf("empty options: %v", err)
	}
}

func TestCompileReportsGraphErrors(t *testing.T) {
	sg := newGraph("shop", []string{"web", "api"}, "web->api:8080", "web->db:5432", "web->api:0", "api->api:1")
	_, err := Compile(sg, DefaultOptions(), Facts{})
	var list graph.ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("Compile error %v is a %T, want a graph.ErrorList", err, err)
	}
	want := `edge "web->db:5432": service "db" is not declared in spec.services; ` +
		`edge "web->api:0": column 10: port must be 1-65535; ` +
		`edge "api->api:1": an edge cannot go from a service to itself`
	if err.Error() != want {
		t.Errorf("error:\n got: %s\nwant: %s", err, want)
	}
	var edges []string
	for _, e := range list {
		edges = append(edges, e.Edge)
	}
	if !slices.Equal(edges, []string{"web->db:5432", "web->api:0", "api->api:1"}) {
		t.Errorf("offending edges %v", edges)
	}
}

func TestCompileDoesNotMutateInput(t *testing.T) {
	sg := readGraph(t, "testdata/input/cross-namespace.yaml")
	before := sg.DeepCopy()
	res := mustCompile(t, sg, DefaultOptions())
	// Outputs share no memory with the input: changing one must not reach the graph.
	for _, o := range res.Objects() {
		if np, ok := o.(*networkingv1.NetworkPolicy); ok && np.Spec.PodSelector.MatchLabels != nil {
			np.Spec.PodSelector.MatchLabels["mutated"] = "yes"
		}
	}
	if diff := cmp.Diff(before, sg); diff != "" {
		t.Errorf("Compile changed its input (-before +after):\n%s", diff)
	}
}

// Same input, same bytes: compiled twice, and with services, edges and connections shuffled.
func TestCompileDeterministic(t *testing.T) {
	for _, tc := range goldenCases {
		t.Run(tc.name, func(t *testing.T) {
			sg := readGraph(t, "testdata/input/"+tc.name+".yaml")
			want := mustYAML(t, mustCompile(t, sg, DefaultOptions()).Objects())
			rng := rand.New(rand.NewPCG(5, 6))
			for range 10 {
				s := &sg.Spec
				rng.Shuffle(len(s.Services), func(i, j int) { s.Services[i], s.Services[j] = s.Services[j], s.Services[i] })
				rng.Shuffle(len(s.Edges), func(i, j int) { s.Edges[i], s.Edges[j] = s.Edges[j], s.Edges[i] })
				rng.Shuffle(len(s.Connections), func(i, j int) { s.Connections[i], s.Connections[j] = s.Connections[j], s.Connections[i] })
				for i := range s.Connections {
					c := &s.Connections[i]
					rng.Shuffle(len(c.Ports), func(i, j int) { c.Ports[i], c.Ports[j] = c.Ports[j], c.Ports[i] })
					rng.Shuffle(len(c.Paths), func(i, j int) { c.Paths[i], c.Paths[j] = c.Paths[j], c.Paths[i] })
					rng.Shuffle(len(c.Methods), func(i, j int) { c.Methods[i], c.Methods[j] = c.Methods[j], c.Methods[i] })
				}
				if got := mustYAML(t, mustCompile(t, sg, DefaultOptions()).Objects()); got != want {
					t.Fatalf("output depends on input order:\n%s", cmp.Diff(want, got))
				}
			}
		})
	}
}

// Edges that differ only above layer 4 share a NetworkPolicy rule; edges that differ only in ports
// Istio does not see share an AuthorizationPolicy rule.
func TestCompileMergesEquivalentRules(t *testing.T) {
	sg := newGraph("shop", []string{"web", "api"}, "web->api:8080/a", "web->api:8080/b", "web->api:8080", "web->api:9090")
	sg.Spec.Connections = []v1alpha1.Connection{{From: "web", To: "api", Ports: []v1alpha1.ConnectionPort{
		{Port: intstr.FromInt32(9090)}, {Port: intstr.FromInt32(53), Protocol: v1alpha1.ProtocolUDP},
	}}}
	all := mustCompile(t, sg, DefaultOptions()).Objects()
	var ingress []string
	for _, r := range find[*networkingv1.NetworkPolicy](t, all, "shop-svc-api").Spec.Ingress {
		var ports []string
		for _, p := range r.Ports {
			ports = append(ports, fmt.Sprintf("%s/%s", p.Port, *p.Protocol))
		}
		ingress = append(ingress, strings.Join(ports, ","))
	}
	// Rules follow the edges' order: by ports, numerically.
	if want := []string{"53/UDP,9090/TCP", "8080/TCP", "9090/TCP"}; !slices.Equal(ingress, want) {
		t.Errorf("NetworkPolicy ingress rules %v, want %v", ingress, want)
	}
	var rules []string
	for _, r := range find[*securityv1.AuthorizationPolicy](t, all, "shop-svc-api").Spec.Rules {
		op := r.To[0].Operation
		rules = append(rules, strings.Join(op.Ports, ",")+" "+strings.Join(op.Paths, ","))
	}
	if want := []string{"9090 ", "8080 /a", "8080 /b", "8080 "}; !slices.Equal(rules, want) {
		t.Errorf("AuthorizationPolicy rules %q, want %q", rules, want)
	}
}
