// Package world models a cluster for tests: services across namespaces, the edges between them,
// the ServiceGraphs that declare them (one per namespace, both sides of every cross-namespace
// edge), the connections they must allow, and the pods that run them. The compiler's analyzer
// tests and the real-packet suite judge the same worlds.
package world

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
)

// NamedPorts are the container ports every service's pod declares, so named-port edges resolve.
var NamedPorts = map[string]int32{"http": 8080, "grpc": 9090, "metrics": 9102}

// The cluster's own pods that graphs reach: kube-dns (DNS) and istiod (the sidecars' control plane).
const (
	DNSPod    = "kube-system/kube-dns"
	IstiodPod = "istio-system/istiod"
)

// World is a cluster: services across namespaces and the edges between them. Every namespace
// with an edge gets its own graph, so both sides of a cross-namespace edge are compiled.
type World struct {
	Namespaces []string
	Services   []Service
	Edges      []Edge
	// AllowDNS is each graph namespace's spec.allowDNS.
	AllowDNS map[string]bool
	// Istio tells whether the graphs are compiled with Istio on (egress to istiod allowed).
	Istio bool
}

// Service is a workload of the world: one pod runs it.
type Service struct {
	Name, Namespace string
	// Selector is nil for the default {app: name}.
	Selector       map[string]string
	ServiceAccount string
}

// Labels are the labels of the service's pods.
func (s Service) Labels() map[string]string {
	if s.Selector == nil {
		return map[string]string{"app": s.Name}
	}
	return s.Selector
}

// Key is "namespace/name", the service's pod's key.
func (s Service) Key() string { return s.Namespace + "/" + s.Name }

// Edge is an allowed connection between two services.
type Edge struct {
	From, To int // indexes into Services
	Ports    []v1alpha1.ConnectionPort
	Path     string
}

// Connections is a set of "src -> dst PROTO/PORT" strings.
type Connections map[string]bool

// Add puts one connection in the set.
func (c Connections) Add(src, dst string, proto corev1.Protocol, port int32) {
	c[Connection(src, dst, proto, port)] = true
}

// Connection is the set's key for one connection.
func Connection(src, dst string, proto corev1.Protocol, port int32) string {
	return fmt.Sprintf("%s -> %s %s/%d", src, dst, proto, port)
}

// Sorted lists the set.
func (c Connections) Sorted() []string { return slices.Sorted(maps.Keys(c)) }

// Expected is what the graphs say: every edge on its ports (named ports resolved as the
// destination pod declares them) and, from every pod of a graph's namespace, DNS and istiod.
func (w *World) Expected() Connections {
	want := Connections{}
	for _, e := range w.Edges {
		src, dst := w.Services[e.From], w.Services[e.To]
		for _, p := range e.Ports {
			want.Add(src.Key(), dst.Key(), L4(p.Protocol), PortNumber(p.Port))
		}
	}
	for _, s := range w.Services {
		if w.AllowDNS[s.Namespace] {
			want.Add(s.Key(), DNSPod, corev1.ProtocolUDP, 53)
			want.Add(s.Key(), DNSPod, corev1.ProtocolTCP, 53)
		}
		if w.Istio {
			want.Add(s.Key(), IstiodPod, corev1.ProtocolTCP, 15012)
			want.Add(s.Key(), IstiodPod, corev1.ProtocolTCP, 15017)
		}
	}
	return want
}

// PortNumber resolves a port as the destination pod declares it.
func PortNumber(p intstr.IntOrString) int32 {
	if p.Type == intstr.String {
		return NamedPorts[p.StrVal]
	}
	return p.IntVal
}

// L4 is the layer-4 protocol of an edge's port.
func L4(p v1alpha1.Protocol) corev1.Protocol {
	switch p {
	case v1alpha1.ProtocolUDP, v1alpha1.ProtocolSCTP:
		return corev1.Protocol(p)
	}
	return corev1.ProtocolTCP
}

// Graphs returns one ServiceGraph per namespace with edges: its own services, the peers its edges
// reach in other namespaces, and every edge with an end in it, written in compact form where it
// can be (with a random arrow and NAMESPACE/ prefix) and as a connection otherwise.
func (w *World) Graphs(rng *rand.Rand) []*v1alpha1.ServiceGraph {
	var out []*v1alpha1.ServiceGraph
	for _, ns := range w.Namespaces {
		sg := &v1alpha1.ServiceGraph{TypeMeta: metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "ServiceGraph"}}
		sg.Name, sg.Namespace = "g-"+ns, ns
		if !w.AllowDNS[ns] {
			sg.Spec.AllowDNS = new(bool)
		}
		declared := map[int]bool{}
		declare := func(i int) {
			if declared[i] {
				return
			}
			declared[i] = true
			s := w.Services[i]
			svc := v1alpha1.Service{Name: s.Name, ServiceAccount: s.ServiceAccount}
			if s.Namespace != ns {
				svc.Namespace = s.Namespace
			}
			if s.Selector != nil {
				svc.Selector = &metav1.LabelSelector{MatchLabels: s.Selector}
			}
			sg.Spec.Services = append(sg.Spec.Services, svc)
		}
		for i, s := range w.Services {
			if s.Namespace == ns {
				declare(i)
			}
		}
		for _, e := range w.Edges {
			from, to := w.Services[e.From], w.Services[e.To]
			if from.Namespace != ns && to.Namespace != ns {
				continue
			}
			declare(e.From)
			declare(e.To)
			w.write(sg, e, rng)
		}
		if len(sg.Spec.Edges)+len(sg.Spec.Connections) > 0 {
			out = append(out, sg)
		}
	}
	return out
}

// write adds an edge to a graph in one of the two forms.
func (w *World) write(sg *v1alpha1.ServiceGraph, e Edge, rng *rand.Rand) {
	from, to := w.Services[e.From], w.Services[e.To]
	target := to.Name
	if to.Namespace != sg.Namespace || rng.IntN(4) == 0 {
		target = to.Namespace + "/" + to.Name
	}
	compact := rng.IntN(3) > 0
	var ports []string
	for _, p := range e.Ports {
		compact = compact && (p.Protocol == "" || p.Protocol == v1alpha1.ProtocolHTTP && e.Path != "")
		ports = append(ports, p.Port.String())
	}
	if compact {
		arrow := []string{"->", "→", " -> ", " → "}[rng.IntN(4)]
		sg.Spec.Edges = append(sg.Spec.Edges, from.Name+arrow+target+":"+strings.Join(ports, ",")+e.Path)
		return
	}
	c := v1alpha1.Connection{From: from.Name, To: target, Ports: e.Ports}
	if e.Path != "" {
		c.Paths = []string{e.Path}
	}
	sg.Spec.Connections = append(sg.Spec.Connections, c)
}

// Options shape a random world.
type Options struct {
	// MaxServices bounds the services (at least 2).
	MaxServices int
	// MinServices is the fewest services; 0 means 2.
	MinServices int
	// Namespaces is the most namespaces the services spread over.
	Namespaces int
	// NoSCTP leaves SCTP ports out (for probes that cannot speak it).
	NoSCTP bool
	// EdgesPerService bounds the edges: up to twice the services when 0.
	EdgesPerService int
}

// Random builds a world from the generator: services with various selectors and
// ServiceAccounts, edges with one to three ports (numbers or names, TCP, UDP, SCTP, HTTP, GRPC)
// and sometimes a path. Namespaces without an edge are left out (they would have no graph).
func Random(rng *rand.Rand, o Options) *World {
	w := &World{AllowDNS: map[string]bool{}}
	nsCount := 1 + rng.IntN(o.Namespaces)
	for i := range max(o.MinServices, 2) + rng.IntN(o.MaxServices-max(o.MinServices, 2)+1) {
		s := Service{Name: fmt.Sprintf("svc-%02d", i), Namespace: fmt.Sprintf("ns-%d", rng.IntN(nsCount))}
		switch rng.IntN(3) {
		case 1:
			s.Selector = map[string]string{"app.kubernetes.io/name": s.Name}
		case 2:
			s.Selector = map[string]string{"tier": s.Name, "team": "t" + s.Namespace}
		}
		if rng.IntN(2) == 0 {
			s.ServiceAccount = s.Name + "-sa"
		}
		w.Services = append(w.Services, s)
	}
	pairs := map[[2]int]bool{}
	n := len(w.Services)
	perService := o.EdgesPerService
	if perService == 0 {
		perService = 2
	}
	for target := min(1+rng.IntN(perService*n), n*(n-1)); len(w.Edges) < target; {
		from, to := rng.IntN(n), rng.IntN(n)
		if from == to || pairs[[2]int{from, to}] {
			continue
		}
		pairs[[2]int{from, to}] = true
		w.Edges = append(w.Edges, randomEdge(rng, from, to, o.NoSCTP))
	}
	w.dropUntouched()
	for _, ns := range w.Namespaces {
		w.AllowDNS[ns] = rng.IntN(5) > 0
	}
	return w
}

// dropUntouched leaves out the namespaces (and their services) that no edge touches.
func (w *World) dropUntouched() {
	touched := map[string]bool{}
	for _, e := range w.Edges {
		touched[w.Services[e.From].Namespace] = true
		touched[w.Services[e.To].Namespace] = true
	}
	kept, newIndex := []Service{}, map[int]int{}
	for i, s := range w.Services {
		if touched[s.Namespace] {
			newIndex[i] = len(kept)
			kept = append(kept, s)
		}
	}
	for i := range w.Edges {
		w.Edges[i].From, w.Edges[i].To = newIndex[w.Edges[i].From], newIndex[w.Edges[i].To]
	}
	w.Services = kept
	w.Namespaces = slices.Sorted(maps.Keys(touched))
}

func randomEdge(rng *rand.Rand, from, to int, noSCTP bool) Edge {
	e := Edge{From: from, To: to}
	if rng.IntN(5) == 0 {
		e.Path = []string{"/", "/api/*", "/v1/orders", "/healthz"}[rng.IntN(4)]
	}
	numbers := []int32{80, 443, 5432, 6379, 8080, 9000, 1 + rng.Int32N(65535)}
	names := slices.Sorted(maps.Keys(NamedPorts))
	seen := map[string]bool{}
	for range 1 + rng.IntN(3) {
		p := v1alpha1.ConnectionPort{Port: intstr.FromInt32(numbers[rng.IntN(len(numbers))])}
		if rng.IntN(4) == 0 {
			p.Port = intstr.FromString(names[rng.IntN(len(names))])
		}
		switch r := rng.IntN(20); {
		case e.Path != "":
			if r < 5 {
				p.Protocol = v1alpha1.ProtocolHTTP
			}
		case r < 3 && p.Port.Type == intstr.Int:
			p.Protocol = v1alpha1.ProtocolUDP
		case r < 4 && p.Port.Type == intstr.Int && !noSCTP:
			p.Protocol = v1alpha1.ProtocolSCTP
		case r < 6:
			p.Protocol = v1alpha1.ProtocolGRPC
		}
		key := p.Port.String() + "/" + string(L4(p.Protocol))
		if seen[key] {
			continue
		}
		seen[key] = true
		e.Ports = append(e.Ports, p)
	}
	return e
}
