package traffic

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/compiler"
	"github.com/servicegraph/servicegraph-operator/internal/eval"
	"github.com/servicegraph/servicegraph-operator/internal/graph"
)

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

// shop is the seed's namespace: web, api, database, a legacy pod without sidecar, and Services.
func shop() *Inventory {
	wl := func(name, sa string, port int32, meshed bool) Workload {
		return Workload{Namespace: "shop", Name: name, Labels: map[string]string{"app": name}, ServiceAccount: sa,
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: port}}, Meshed: meshed}
	}
	svc := func(name string, ports ...int32) corev1.Service {
		s := corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop"}, Spec: corev1.ServiceSpec{Selector: map[string]string{"app": name}}}
		for _, p := range ports {
			s.Spec.Ports = append(s.Spec.Ports, corev1.ServicePort{Name: "p" + strconv.Itoa(int(p)), Port: p, TargetPort: intstr.FromInt32(p)})
		}
		return s
	}
	return &Inventory{
		Workloads: []Workload{wl("web", "web", 8080, true), wl("api", "api", 8080, true), wl("database", "database", 5432, true),
			wl("legacy", "legacy", 9000, false), wl("admin", "admin", 7000, true)},
		Services: []corev1.Service{svc("api", 8080), svc("database", 5432), svc("admin", 7000, 7001)},
	}
}

func istioFlow(from, to string, count float64, sec Security) Flow {
	f := Flow{From: Party{Namespace: "shop", Workload: from}, To: Party{Namespace: "shop", Workload: to}, Protocol: corev1.ProtocolTCP,
		Service: to, Count: count, Security: sec, Source: "prometheus", First: t0, Last: t0.Add(time.Hour)}
	if sec == MutualTLS {
		f.From.Principal = "cluster.local/ns/shop/sa/" + from
	}
	return f
}

func TestDiscover(t *testing.T) {
	flows := []Flow{
		istioFlow("web", "api", 1200, MutualTLS),
		func() Flow {
			f := istioFlow("api", "database", 30, MutualTLS)
			f.HTTP, f.Paths, f.Methods = true, []string{"/data"}, []string{"GET"}
			return f
		}(),
		istioFlow("legacy", "api", 4, Plaintext),
		istioFlow("web", "admin", 2, MutualTLS), // two Service ports: ambiguous
		{From: Party{}, To: Party{Namespace: "shop", Workload: "api"}, Service: "api", Count: 9, Security: Plaintext, Source: "prometheus"},
		{From: Party{Principal: "cluster.local/ns/istio-ingress/sa/gateway"}, To: Party{Namespace: "shop", Workload: "web"}, Port: 8080, Count: 50, Security: MutualTLS, Source: "prometheus"},
		istioFlow("web", "ghost", 7, MutualTLS), // a workload gone since, or not given with -f
		{From: Party{Namespace: "istio-system", Workload: "istio-ingressgateway", Principal: "cluster.local/ns/istio-system/sa/ingress",
			Labels: map[string]string{"app": "istio-ingressgateway"}}, To: Party{Namespace: "shop", Workload: "api"}, Service: "api", Count: 5, Security: MutualTLS, Source: "prometheus"},
		{From: Party{Namespace: "monitoring", Workload: "prometheus", Labels: map[string]string{"app": "prometheus"}}, To: Party{Namespace: "shop", Workload: "api"}, Port: 8080, Count: 3, Source: "hubble"},
	}
	p := Discover(flows, shop(), []string{"shop"}, t0)[0]
	out := string(p.Write())
	for _, want := range []string{
		"- web->api:8080", "1200 connections; first 2026-12-01T10:00:00Z", "mutual TLS", "port from Service api",
		"- from: api\n    to: database\n    ports:\n    - port: 5432\n    paths: [/data]\n    methods: [GET]",
		"- legacy->api:8080", "PLAIN TEXT: STRICT mutual TLS refuses this caller",
		`- "web->admin:7000,7001"`, "AMBIGUOUS: Service admin has several ports",
		"TODO: unknown -> shop/api TCP/?: an unknown caller",
		"name: ns-istio-ingress", "names: [istio-ingress]", "- ns-istio-ingress->web:8080",
		"TODO: shop/web -> shop/ghost TCP/?: the destination is outside the inventory",
		"name: ns-monitoring", "names: [monitoring]", "- ns-monitoring->api:8080",
		"- name: istio-ingressgateway\n    namespace: istio-system\n    serviceAccount: ingress\n", "- istio-ingressgateway->api:8080",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in\n%s", want, out)
		}
	}
	// The proposal is a valid graph the compiler takes.
	sg := &v1alpha1.ServiceGraph{}
	if err := yaml.UnmarshalStrict([]byte(out), sg); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if _, err := compiler.Compile(sg, compiler.DefaultOptions(), compiler.Facts{}); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
}

// world is the seed graph compiled, and its workloads as check sees them.
type world struct{ c *eval.Cluster }

func (w world) Check(r eval.Request) eval.Verdict { return w.c.Check(r) }

func seed(t *testing.T, edges ...string) (world, *graph.Graph) {
	t.Helper()
	sg := &v1alpha1.ServiceGraph{ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: "shop"},
		Spec: v1alpha1.ServiceGraphSpec{Services: []v1alpha1.Service{{Name: "web"}, {Name: "api"}, {Name: "database"}, {Name: "legacy"}}, Edges: edges}}
	res, err := compiler.Compile(sg, compiler.DefaultOptions(), compiler.Facts{})
	if err != nil {
		t.Fatal(err)
	}
	c := &eval.Cluster{}
	for _, o := range res.Objects() {
		c.Add(o)
	}
	return world{c}, res.Graph
}

func TestAudit(t *testing.T) {
	judge, g := seed(t, "web->api:8080", "api->database:5432/data", "legacy->api:8080", "web->database:5432")
	data := func() Flow {
		f := istioFlow("api", "database", 30, MutualTLS)
		f.HTTP, f.Paths, f.Methods = true, []string{"/data"}, []string{"GET"}
		return f
	}()
	other := func() Flow { f := data; f.Paths = []string{"/admin"}; return f }()
	noPath := func() Flow { f := data; f.Paths = nil; f.Methods = nil; return f }()
	flows := []Flow{istioFlow("web", "api", 1200, MutualTLS), data, istioFlow("legacy", "api", 4, Plaintext), istioFlow("database", "api", 3, MutualTLS)}
	r := Audit(flows, shop(), judge, []*graph.Graph{g})
	if r.Flows != 4 || r.Allowed != 2 {
		t.Errorf("flows %d allowed %d\n%s", r.Flows, r.Allowed, r.Text())
	}
	if len(r.Refused) != 1 || !strings.HasPrefix(r.Refused[0].String(), "shop/database -> shop/api TCP/8080") || r.Refused[0].Layer != "L4" {
		t.Errorf("refused %v", r.Refused)
	}
	if len(r.Plaintext) != 1 || r.Plaintext[0].Flow.From.Workload != "legacy" {
		t.Errorf("plaintext %v", r.Plaintext)
	}
	// legacy->api is used: STRICT refuses its plain text, but the edge is the one it needs.
	if want := []string{"shop: web->database:5432"}; strings.Join(r.Unused, ";") != strings.Join(want, ";") {
		t.Errorf("unused %v, want %v", r.Unused, want)
	}
	if r.Covered() || !strings.Contains(r.Summary(10), "2 of 4 observed connections would be refused") {
		t.Errorf("summary %q", r.Summary(10))
	}
	// A path the edge does not allow is refused at authorization; a request the source saw without
	// its path cannot be judged against a rule on paths.
	r = Audit([]Flow{other}, shop(), judge, []*graph.Graph{g})
	if len(r.Refused) != 1 || r.Refused[0].Layer != "authorization" {
		t.Errorf("refused %v", r.Refused)
	}
	// The edge api->database is in use even though this request's path is not its.
	if slices.Contains(r.Unused, "shop: api->database:5432/data") {
		t.Errorf("unused %v", r.Unused)
	}
	if u := Audit([]Flow{noPath}, shop(), judge, []*graph.Graph{g}); len(u.Undecided) != 1 || len(u.Refused) != 0 || u.Allowed != 0 {
		t.Errorf("refused %v undecided %v", u.Refused, u.Undecided)
	}
	for _, out := range [][]byte{r.Text(), r.Markdown(), r.JSON()} {
		if !strings.Contains(string(out), "/admin") {
			t.Errorf("no /admin in %s", out)
		}
	}
}

// A flow whose port Istio did not say is asked on every port of its Service: one refused decides,
// even after another whose path rule the request (seen without its path) cannot be judged by.
func TestAuditAmbiguousRefusedBeatsUndecided(t *testing.T) {
	judge, g := compiled(t, &v1alpha1.ServiceGraph{ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: "shop"},
		Spec: v1alpha1.ServiceGraphSpec{Services: []v1alpha1.Service{{Name: "web"}, {Name: "admin"}}, Edges: []string{"web->admin:7000/data"}}})
	f := istioFlow("web", "admin", 2, MutualTLS) // Service admin: 7000 and 7001
	f.HTTP = true
	r := Audit([]Flow{f}, shop(), judge, []*graph.Graph{g})
	if len(r.Refused) != 1 || r.Refused[0].Port != 7001 || len(r.Undecided) != 0 {
		t.Errorf("refused %v, undecided %v", r.Refused, r.Undecided)
	}
	// Allowed on one port and refused on the other: refused, saying where it would pass.
	judge, g = compiled(t, &v1alpha1.ServiceGraph{ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: "shop"},
		Spec: v1alpha1.ServiceGraphSpec{Services: []v1alpha1.Service{{Name: "web"}, {Name: "admin"}}, Edges: []string{"web->admin:7000"}}})
	r = Audit([]Flow{istioFlow("web", "admin", 2, MutualTLS)}, shop(), judge, []*graph.Graph{g})
	if len(r.Refused) != 1 || r.Refused[0].Port != 7001 || !strings.Contains(r.Refused[0].Detail, "allowed on 7000: the source does not say") {
		t.Errorf("refused %+v", r.Refused)
	}
}

// In ambient mode a request through a waypoint is reported by the waypoint with its caller, and by
// the destination's ztunnel as a connection from the waypoint (istio/istio#50225): the queries
// read both reporters, and the waypoint's own hop is neither an edge nor a flow to judge.
func TestWaypoint(t *testing.T) {
	if q := CountQuery([]string{"shop"}, time.Hour); !strings.Contains(q, `reporter=~"destination|waypoint"`) {
		t.Errorf("the query leaves waypoints out: %s", q)
	}
	inv := shop()
	inv.Workloads = append(inv.Workloads, Workload{Namespace: "shop", Name: "waypoint", ServiceAccount: "waypoint",
		Labels: map[string]string{"gateway.istio.io/managed": "istio.io-mesh-controller", "gateway.networking.k8s.io/gateway-name": "waypoint"}})
	request := istioFlow("web", "api", 40, MutualTLS) // reporter="waypoint"
	request.HTTP = true
	hop := istioFlow("waypoint", "api", 40, MutualTLS) // reporter="destination", from ztunnel
	out := string(Discover([]Flow{request, hop}, inv, []string{"shop"}, t0)[0].Write())
	if !strings.Contains(out, "- web->api:8080") || strings.Contains(out, "waypoint") {
		t.Errorf("proposal:\n%s", out)
	}
	judge, g := seed(t, "web->api:8080")
	if r := Audit([]Flow{request, hop}, inv, judge, []*graph.Graph{g}); r.Flows != 1 || r.Allowed != 1 {
		t.Errorf("judged %d flows, allowed %d: %s", r.Flows, r.Allowed, r.Text())
	}
}

// A caller Istio knows by its principal only (no metadata exchange: istio/proxy's
// tcp_server_connection_open_without_mx golden) is judged as a pod of its principal's namespace:
// the external peer discover proposes for it lets it through, and its edge is used.
func TestAuditPrincipalOnly(t *testing.T) {
	judge, g := compiled(t, &v1alpha1.ServiceGraph{ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: "shop"},
		Spec: v1alpha1.ServiceGraphSpec{Services: []v1alpha1.Service{{Name: "web"}},
			External: []v1alpha1.External{{Name: "ns-istio-ingress", Namespaces: &v1alpha1.ExternalNamespaces{Names: []string{"istio-ingress"}}}},
			Edges:    []string{"ns-istio-ingress->web:8080"}}})
	gateway := Flow{From: Party{Principal: "cluster.local/ns/istio-ingress/sa/gateway"}, To: Party{Namespace: "shop", Workload: "web"},
		Protocol: corev1.ProtocolTCP, Port: 8080, Count: 50, Security: MutualTLS, Source: "prometheus"}
	r := Audit([]Flow{gateway}, shop(), judge, []*graph.Graph{g})
	if r.Flows != 1 || r.Allowed != 1 || len(r.Refused) != 0 || len(r.Unused) != 0 {
		t.Errorf("allowed %d of %d, refused %v, unused %v", r.Allowed, r.Flows, r.Refused, r.Unused)
	}
	// From another namespace, the same caller is refused.
	gateway.From.Principal = "cluster.local/ns/elsewhere/sa/gateway"
	if r := Audit([]Flow{gateway}, shop(), judge, []*graph.Graph{g}); len(r.Refused) != 1 || len(r.Unused) != 1 {
		t.Errorf("refused %v, unused %v", r.Refused, r.Unused)
	}
}

// compiled is a graph compiled, as check sees it.
func compiled(t *testing.T, sg *v1alpha1.ServiceGraph) (world, *graph.Graph) {
	t.Helper()
	res, err := compiler.Compile(sg, compiler.DefaultOptions(), compiler.Facts{})
	if err != nil {
		t.Fatal(err)
	}
	c := &eval.Cluster{}
	for _, o := range res.Objects() {
		c.Add(o)
	}
	return world{c}, res.Graph
}

func TestMerge(t *testing.T) {
	a, b := istioFlow("web", "api", 10, MutualTLS), istioFlow("web", "api", 5, Plaintext)
	b.Source, b.First, b.Last = "hubble", t0.Add(-time.Hour), t0.Add(2*time.Hour)
	// One workload's flows merge whatever identity each presented; plain text seen once stays.
	m := Merge([]Flow{a, b})
	if len(m) != 1 || m[0].Count != 15 || m[0].Security != Plaintext || !m[0].First.Equal(t0.Add(-time.Hour)) || m[0].Source != "prometheus,hubble" {
		t.Errorf("merged %+v", m)
	}
	// Callers outside the inventory stay apart by identity, else by address.
	x, y := Flow{From: Party{Principal: "cluster.local/ns/a/sa/x"}, To: a.To}, Flow{From: Party{Principal: "cluster.local/ns/a/sa/y"}, To: a.To}
	z := Flow{From: Party{IP: "10.0.0.1"}, To: a.To}
	if m := Merge([]Flow{x, y, z, z}); len(m) != 3 {
		t.Errorf("merged %+v", m)
	}
	// Flows to two pods of one workload, known by their addresses, are one.
	inv := shop()
	inv.Workloads[1].IPs = []string{"10.1.0.1", "10.1.0.2"}
	p1, p2 := a, a
	p1.To, p2.To = Party{IP: "10.1.0.1"}, Party{IP: "10.1.0.2"}
	if _, c := inv.canonical([]Flow{p1, p2}); len(c) != 1 || c[0].To.Workload != "api" || c[0].Count != 20 {
		t.Errorf("canonical %+v", c)
	}
}

func TestWorkloadName(t *testing.T) {
	yes := true
	owned := func(kind, name string, labels map[string]string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name + "-x7k2p", GenerateName: name + "-", Labels: labels,
			OwnerReferences: []metav1.OwnerReference{{Kind: kind, Name: name, Controller: &yes}}}}
	}
	for _, tc := range []struct {
		pod  *corev1.Pod
		want string
	}{
		{owned("ReplicaSet", "api-7d9f5c6b8", map[string]string{"pod-template-hash": "7d9f5c6b8"}), "api"},
		{owned("ReplicaSet", "canary-6c9f", map[string]string{"rollouts-pod-template-hash": "6c9f"}), "canary"},
		{owned("ReplicaSet", "handmade", nil), "handmade"},
		{owned("StatefulSet", "database", nil), "database"},
		{owned("Job", "report-28991234", nil), "report"},
		{owned("Job", "migrate", nil), "migrate"},
		{owned("ReplicationController", "legacy-3", map[string]string{"deploymentconfig": "legacy"}), "legacy"},
		{owned("ReplicaSet", "api-7d9f5c6b8", map[string]string{"pod-template-hash": "7d9f5c6b8", "service.istio.io/workload-name": "named"}), "named"},
		{&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "debug"}}, "debug"},
		{&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "orphan-abcde", GenerateName: "orphan-"}}, "orphan-abcde"},
	} {
		if got := WorkloadName(tc.pod); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.pod.Name, got, tc.want)
		}
	}
}

// An edge to an address outside the cluster is neither used nor unused: no source reports those
// connections with their destination, and audit does not judge them.
func TestAuditExternalDestination(t *testing.T) {
	judge, g := compiled(t, &v1alpha1.ServiceGraph{ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: "shop"},
		Spec: v1alpha1.ServiceGraphSpec{Services: []v1alpha1.Service{{Name: "web"}, {Name: "api"}},
			External: []v1alpha1.External{{Name: "payments", CIDRs: []string{"198.51.100.0/24"}}},
			Edges:    []string{"web->api:8080", "api->payments:443"}}})
	r := Audit([]Flow{istioFlow("web", "api", 3, MutualTLS)}, shop(), judge, []*graph.Graph{g})
	if !r.Covered() || len(r.Unused) != 0 {
		t.Errorf("refused %v, unused %v", r.Refused, r.Unused)
	}
}
