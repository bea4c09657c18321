package compiler

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/np-guard/netpol-analyzer/pkg/netpol/connlist"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/cli-runtime/pkg/resource"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/render"
)

// These tests check the compiled NetworkPolicies with an analyzer this project did not write
// (np-guard/netpol-analyzer): over pods for every service, kube-dns and istiod, the connections it
// finds allowed must be exactly the graph's edges plus DNS (and istiod when Istio is on).

// namedPorts are the container ports every test pod declares, so named-port edges resolve.
var namedPorts = map[string]int32{"http": 8080, "grpc": 9090, "metrics": 9102}

const (
	dnsPod    = "kube-system/kube-dns"
	istiodPod = "istio-system/istiod"
)

// world is a cluster: services across namespaces and the edges between them. Every namespace
// with an edge gets its own graph, so both sides of a cross-namespace edge are compiled.
type world struct {
	namespaces []string
	services   []worldService
	edges      []worldEdge
	allowDNS   map[string]bool // per graph namespace
	istio      bool
}

type worldService struct {
	name, namespace string
	selector        map[string]string // nil: the default {app: name}
	serviceAccount  string
}

func (s worldService) labels() map[string]string {
	if s.selector == nil {
		return map[string]string{"app": s.name}
	}
	return s.selector
}

func (s worldService) key() string { return s.namespace + "/" + s.name }

type worldEdge struct {
	from, to int // indexes into services
	ports    []v1alpha1.ConnectionPort
	path     string
}

// connections is a set of "src -> dst PROTO/PORT" strings.
type connections map[string]bool

func (c connections) add(src, dst string, proto corev1.Protocol, port int32) {
	c[fmt.Sprintf("%s -> %s %s/%d", src, dst, proto, port)] = true
}

func (c connections) sorted() []string { return slices.Sorted(maps.Keys(c)) }

// expected is what the graphs say: every edge on its ports (named ports resolved as the
// destination pod declares them) and, from every pod of a graph's namespace, DNS and istiod.
func (w *world) expected() connections {
	want := connections{}
	for _, e := range w.edges {
		src, dst := w.services[e.from], w.services[e.to]
		for _, p := range e.ports {
			n := p.Port.IntVal
			if p.Port.Type == intstr.String {
				n = namedPorts[p.Port.StrVal]
			}
			want.add(src.key(), dst.key(), l4(p.Protocol), n)
		}
	}
	for _, s := range w.services {
		if w.allowDNS[s.namespace] {
			want.add(s.key(), dnsPod, corev1.ProtocolUDP, 53)
			want.add(s.key(), dnsPod, corev1.ProtocolTCP, 53)
		}
		if w.istio {
			want.add(s.key(), istiodPod, corev1.ProtocolTCP, 15012)
			want.add(s.key(), istiodPod, corev1.ProtocolTCP, 15017)
		}
	}
	return want
}

func l4(p v1alpha1.Protocol) corev1.Protocol {
	switch p {
	case v1alpha1.ProtocolUDP, v1alpha1.ProtocolSCTP:
		return corev1.Protocol(p)
	}
	return corev1.ProtocolTCP
}

// graphs returns one ServiceGraph per namespace with edges: its own services, the peers its edges
// reach in other namespaces, and every edge with an end in it, written in compact form where it
// can be (with a random arrow and NAMESPACE/ prefix) and as a connection otherwise.
func (w *world) graphs(rng *rand.Rand) []*v1alpha1.ServiceGraph {
	var out []*v1alpha1.ServiceGraph
	for _, ns := range w.namespaces {
		sg := &v1alpha1.ServiceGraph{}
		sg.Name, sg.Namespace = "g-"+ns, ns
		if !w.allowDNS[ns] {
			sg.Spec.AllowDNS = new(bool)
		}
		declared := map[int]bool{}
		declare := func(i int) {
			if declared[i] {
				return
			}
			declared[i] = true
			s := w.services[i]
			svc := v1alpha1.Service{Name: s.name, ServiceAccount: s.serviceAccount}
			if s.namespace != ns {
				svc.Namespace = s.namespace
			}
			if s.selector != nil {
				svc.Selector = &metav1.LabelSelector{MatchLabels: s.selector}
			}
			sg.Spec.Services = append(sg.Spec.Services, svc)
		}
		for i, s := range w.services {
			if s.namespace == ns {
				declare(i)
			}
		}
		for _, e := range w.edges {
			from, to := w.services[e.from], w.services[e.to]
			if from.namespace != ns && to.namespace != ns {
				continue
			}
			declare(e.from)
			declare(e.to)
			w.write(sg, e, rng)
		}
		if len(sg.Spec.Edges)+len(sg.Spec.Connections) > 0 {
			out = append(out, sg)
		}
	}
	return out
}

// write adds an edge to a graph in one of the two forms.
func (w *world) write(sg *v1alpha1.ServiceGraph, e worldEdge, rng *rand.Rand) {
	from, to := w.services[e.from], w.services[e.to]
	target := to.name
	if to.namespace != sg.Namespace || rng.IntN(4) == 0 {
		target = to.namespace + "/" + to.name
	}
	compact := rng.IntN(3) > 0
	var ports []string
	for _, p := range e.ports {
		compact = compact && (p.Protocol == "" || p.Protocol == v1alpha1.ProtocolHTTP && e.path != "")
		ports = append(ports, p.Port.String())
	}
	if compact {
		arrow := []string{"->", "→", " -> ", " → "}[rng.IntN(4)]
		sg.Spec.Edges = append(sg.Spec.Edges, from.name+arrow+target+":"+strings.Join(ports, ",")+e.path)
		return
	}
	c := v1alpha1.Connection{From: from.name, To: target, Ports: e.ports}
	if e.path != "" {
		c.Paths = []string{e.path}
	}
	sg.Spec.Connections = append(sg.Spec.Connections, c)
}

// objects are the pods and namespaces of the world, with kube-dns and istiod.
func (w *world) objects() []Object {
	objs := []Object{
		namespace("kube-system"), namespace("istio-system"),
		pod("kube-system", "kube-dns", map[string]string{"k8s-app": "kube-dns"}, 0),
		pod("istio-system", "istiod", map[string]string{"app": "istiod"}, 1),
	}
	for _, ns := range w.namespaces {
		objs = append(objs, namespace(ns))
	}
	for i, s := range w.services {
		objs = append(objs, pod(s.namespace, s.name, s.labels(), i+2))
	}
	return objs
}

func namespace(name string) *corev1.Namespace {
	return &corev1.Namespace{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{namespaceLabel: name}},
	}
}

func pod(ns, name string, labels map[string]string, i int) *corev1.Pod {
	var ports []corev1.ContainerPort
	for _, n := range slices.Sorted(maps.Keys(namedPorts)) {
		ports = append(ports, corev1.ContainerPort{Name: n, ContainerPort: namedPorts[n], Protocol: corev1.ProtocolTCP})
	}
	ip := fmt.Sprintf("10.0.%d.%d", i/250, i%250+1)
	return &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app", Ports: ports}}},
		Status:     corev1.PodStatus{HostIP: "192.168.0.1", PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}},
	}
}

// analyze compiles the graphs and returns the connections the analyzer allows that involve a
// graph's namespace (kube-system and istio-system have no policy, so they reach everything).
func (w *world) analyze(t *testing.T, graphs []*v1alpha1.ServiceGraph) connections {
	t.Helper()
	facts := istioOff()
	if w.istio {
		facts = Facts{}
	}
	objs := w.objects()
	for _, sg := range graphs {
		for _, o := range mustCompile(t, sg, DefaultOptions(), facts).Objects() {
			if _, ok := o.(*networkingv1.NetworkPolicy); ok {
				objs = append(objs, o)
			}
		}
	}
	var infos []*resource.Info
	for _, o := range objs {
		u, err := render.ToUnstructured(o) // the form the reconciler applies
		if err != nil {
			t.Fatal(err)
		}
		infos = append(infos, &resource.Info{Object: u, Source: "compiled"})
	}
	analyzer := connlist.NewConnlistAnalyzer(connlist.WithMuteErrsAndWarns())
	conns, _, err := analyzer.ConnlistFromResourceInfos(infos)
	if err != nil {
		t.Fatalf("analyzer: %v", err)
	}
	for _, e := range analyzer.Errors() {
		t.Errorf("analyzer: %v", e.Error())
	}
	managed := map[string]bool{}
	for _, ns := range w.namespaces {
		managed[ns] = true
	}
	got := connections{}
	for _, c := range conns {
		src, dst := c.Src(), c.Dst()
		if !managed[src.Namespace()] && !managed[dst.Namespace()] {
			continue
		}
		srcKey, dstKey := peerKey(src), peerKey(dst)
		if c.AllProtocolsAndPorts() {
			got[srcKey+" -> "+dstKey+" ALL"] = true
			continue
		}
		for proto, ranges := range c.ProtocolsAndPorts() {
			for _, r := range ranges {
				if r.Start() != r.End() {
					got[fmt.Sprintf("%s -> %s %s/%d-%d", srcKey, dstKey, proto, r.Start(), r.End())] = true
					continue
				}
				got.add(srcKey, dstKey, proto, int32(r.Start()))
			}
		}
	}
	return got
}

func peerKey(p connlist.Peer) string {
	if p.IsPeerIPType() {
		return "ip:" + p.String()
	}
	return p.Namespace() + "/" + p.Name()
}

func checkWorld(t *testing.T, w *world, graphs []*v1alpha1.ServiceGraph) {
	t.Helper()
	want, got := w.expected().sorted(), w.analyze(t, graphs).sorted()
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("analyzer's allowed connections differ from the graph (-graph +analyzer):\n%s", diff)
	}
}

func TestAnalyzerSeedScenario(t *testing.T) {
	sg := readGraph(t, "testdata/input/seed.yaml")
	for _, istio := range []bool{true, false} {
		t.Run(fmt.Sprintf("istio=%v", istio), func(t *testing.T) {
			w := &world{
				namespaces: []string{"shop"},
				services:   []worldService{{name: "web", namespace: "shop"}, {name: "api", namespace: "shop"}, {name: "database", namespace: "shop"}},
				edges: []worldEdge{
					{from: 0, to: 1, ports: []v1alpha1.ConnectionPort{{Port: intstr.FromInt32(8080)}}},
					{from: 1, to: 2, ports: []v1alpha1.ConnectionPort{{Port: intstr.FromInt32(5432)}}},
				},
				allowDNS: map[string]bool{"shop": true},
				istio:    istio,
			}
			checkWorld(t, w, []*v1alpha1.ServiceGraph{sg})
		})
	}
}

// randomWorldCount graphs sets are checked; each has up to 30 services in up to three namespaces.
const randomWorldCount = 40

func TestAnalyzerRandomGraphs(t *testing.T) {
	rng := rand.New(rand.NewPCG(2026, 3))
	for i := range randomWorldCount {
		w := randomWorld(rng)
		graphs := w.graphs(rng)
		t.Run(fmt.Sprintf("world-%02d-%dsvc-%dedges-%dns", i, len(w.services), len(w.edges), len(graphs)), func(t *testing.T) {
			checkWorld(t, w, graphs)
		})
	}
}

func randomWorld(rng *rand.Rand) *world {
	w := &world{istio: rng.IntN(2) == 0, allowDNS: map[string]bool{}}
	nsCount := 1 + rng.IntN(3)
	for i := range 2 + rng.IntN(29) {
		s := worldService{name: fmt.Sprintf("svc-%02d", i), namespace: fmt.Sprintf("ns-%d", rng.IntN(nsCount))}
		switch rng.IntN(3) {
		case 1:
			s.selector = map[string]string{"app.kubernetes.io/name": s.name}
		case 2:
			s.selector = map[string]string{"tier": s.name, "team": "t" + s.namespace}
		}
		if rng.IntN(2) == 0 {
			s.serviceAccount = s.name + "-sa"
		}
		w.services = append(w.services, s)
	}
	pairs := map[[2]int]bool{}
	n := len(w.services)
	for target := min(1+rng.IntN(2*n), n*(n-1)); len(w.edges) < target; {
		from, to := rng.IntN(len(w.services)), rng.IntN(len(w.services))
		if from == to || pairs[[2]int{from, to}] {
			continue
		}
		pairs[[2]int{from, to}] = true
		w.edges = append(w.edges, randomEdge(rng, from, to))
	}
	// A namespace without edges has no graph, so its pods would be open: leave it out.
	touched := map[string]bool{}
	for _, e := range w.edges {
		touched[w.services[e.from].namespace] = true
		touched[w.services[e.to].namespace] = true
	}
	kept, newIndex := []worldService{}, map[int]int{}
	for i, s := range w.services {
		if touched[s.namespace] {
			newIndex[i] = len(kept)
			kept = append(kept, s)
		}
	}
	for i := range w.edges {
		w.edges[i].from, w.edges[i].to = newIndex[w.edges[i].from], newIndex[w.edges[i].to]
	}
	w.services = kept
	for ns := range touched {
		w.namespaces = append(w.namespaces, ns)
		w.allowDNS[ns] = rng.IntN(5) > 0
	}
	slices.Sort(w.namespaces)
	return w
}

func randomEdge(rng *rand.Rand, from, to int) worldEdge {
	e := worldEdge{from: from, to: to}
	if rng.IntN(5) == 0 {
		e.path = []string{"/", "/api/*", "/v1/orders", "/healthz"}[rng.IntN(4)]
	}
	numbers := []int32{80, 443, 5432, 6379, 8080, 9000, 1 + rng.Int32N(65535)}
	names := slices.Sorted(maps.Keys(namedPorts))
	seen := map[string]bool{}
	for range 1 + rng.IntN(3) {
		p := v1alpha1.ConnectionPort{Port: intstr.FromInt32(numbers[rng.IntN(len(numbers))])}
		if rng.IntN(4) == 0 {
			p.Port = intstr.FromString(names[rng.IntN(len(names))])
		}
		switch r := rng.IntN(20); {
		case e.path != "":
			if r < 5 {
				p.Protocol = v1alpha1.ProtocolHTTP
			}
		case r < 3 && p.Port.Type == intstr.Int:
			p.Protocol = v1alpha1.ProtocolUDP
		case r < 4 && p.Port.Type == intstr.Int:
			p.Protocol = v1alpha1.ProtocolSCTP
		case r < 6:
			p.Protocol = v1alpha1.ProtocolGRPC
		}
		key := p.Port.String() + "/" + string(l4(p.Protocol))
		if seen[key] {
			continue
		}
		seen[key] = true
		e.ports = append(e.ports, p)
	}
	return e
}
