package dataplane

import (
	"cmp"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/test/world"
)

// UnusedPort is a port every pod of a world listens on and no edge allows: a probe to it must be
// refused wherever a graph applies.
const UnusedPort = 7777

// SystemPods are the cluster's own pods the graphs reach: kube-dns (UDP and TCP 53) and istiod
// (15012, 15017).
func SystemPods() []*Pod {
	return []*Pod{
		{Namespace: "kube-system", Name: "kube-dns", Labels: map[string]string{"k8s-app": "kube-dns"},
			Ports: []Port{{Number: 53, Protocol: corev1.ProtocolUDP, Name: "dns"}, {Number: 53, Protocol: corev1.ProtocolTCP, Name: "dns-tcp"}}},
		{Namespace: "istio-system", Name: "istiod", Labels: map[string]string{"app": "istiod"},
			Ports: []Port{{Number: 15012, Protocol: corev1.ProtocolTCP}, {Number: 15017, Protocol: corev1.ProtocolTCP}}},
	}
}

// WorldPods are one pod per service of the world, listening on the named ports every pod
// declares, on every port an edge reaches it on, and on UnusedPort (TCP and UDP).
func WorldPods(w *world.World) []*Pod {
	listen := make([]map[Port]bool, len(w.Services))
	for i := range w.Services {
		listen[i] = map[Port]bool{{Number: UnusedPort, Protocol: corev1.ProtocolTCP}: true, {Number: UnusedPort, Protocol: corev1.ProtocolUDP}: true}
	}
	for _, e := range w.Edges {
		for _, p := range e.Ports {
			if p.Port.Type == intstr.Int {
				listen[e.To][Port{Number: p.Port.IntVal, Protocol: world.L4(p.Protocol)}] = true
			}
		}
	}
	var pods []*Pod
	for i, s := range w.Services {
		pod := &Pod{Namespace: s.Namespace, Name: s.Name, Labels: s.Labels(), ServiceAccount: s.ServiceAccount}
		for _, name := range slices.Sorted(maps.Keys(world.NamedPorts)) {
			port := Port{Number: world.NamedPorts[name], Protocol: corev1.ProtocolTCP}
			delete(listen[i], port)
			port.Name = name
			pod.Ports = append(pod.Ports, port)
		}
		pod.Ports = append(pod.Ports, slices.SortedFunc(maps.Keys(listen[i]), func(a, b Port) int {
			return cmp.Or(cmp.Compare(a.Number, b.Number), cmp.Compare(a.Protocol, b.Protocol))
		})...)
		pods = append(pods, pod)
	}
	return pods
}

// Oracle says what a world's graphs allow: the connections the world expects, and anything
// between pods of namespaces no graph governs.
type Oracle struct {
	allowed  world.Connections
	governed map[string]bool
}

// NewOracle is the oracle of a world.
func NewOracle(w *world.World) Oracle {
	governed := map[string]bool{}
	for _, ns := range w.Namespaces {
		governed[ns] = true
	}
	return Oracle{allowed: w.Expected(), governed: governed}
}

// Allows tells whether the graphs allow a new connection from one pod to a port of another.
func (o Oracle) Allows(from, to *Pod, port Port) bool {
	if !o.governed[from.Namespace] && !o.governed[to.Namespace] {
		return true
	}
	return o.allowed[world.Connection(from.Key(), to.Key(), port.Protocol, port.Number)]
}

// MatrixProbes is a probe from every pod to every port of every other pod, wanting what allows says.
func MatrixProbes(pods []*Pod, allows func(from, to *Pod, port Port) bool) []Probe {
	var probes []Probe
	for _, from := range pods {
		for _, to := range pods {
			if from == to {
				continue
			}
			for _, port := range to.Ports {
				probes = append(probes, Probe{From: from, To: to, Port: port, Want: allows(from, to, port)})
			}
		}
	}
	return probes
}

// Sample keeps every probe that wants a connection and, of the others, enough picked at random to
// make at least total probes (all of them when there are fewer).
func Sample(probes []Probe, total int, rng *rand.Rand) []Probe {
	var allowed, refused []Probe
	for _, p := range probes {
		if p.Want {
			allowed = append(allowed, p)
		} else {
			refused = append(refused, p)
		}
	}
	rng.Shuffle(len(refused), func(i, j int) { refused[i], refused[j] = refused[j], refused[i] })
	return append(allowed, refused[:min(len(refused), max(total-len(allowed), 0))]...)
}

// Seed is the seed scenario: web, api and database in one namespace, web→api:8080 and
// api→database:5432/data, and an intruder in another namespace. Every pod listens on 8080, 5432
// and a port no edge names, so wrong ports are refused by policy, not for want of a listener.
type Seed struct {
	Namespace                    string
	Web, API, Database, Intruder *Pod
}

// NewSeed places the seed scenario in a namespace (the intruder in NAMESPACE-elsewhere).
func NewSeed(namespace string) *Seed {
	ports := []Port{{Number: 8080, Protocol: corev1.ProtocolTCP}, {Number: 5432, Protocol: corev1.ProtocolTCP}, {Number: UnusedPort, Protocol: corev1.ProtocolTCP}}
	pod := func(name string) *Pod {
		return &Pod{Namespace: namespace, Name: name, Labels: map[string]string{"app": name}, ServiceAccount: name, Ports: ports}
	}
	return &Seed{Namespace: namespace, Web: pod("web"), API: pod("api"), Database: pod("database"),
		Intruder: &Pod{Namespace: namespace + "-elsewhere", Name: "intruder", Ports: ports[:1]}}
}

// Pods are the scenario's pods.
func (s *Seed) Pods() []*Pod { return []*Pod{s.Web, s.API, s.Database, s.Intruder} }

// Graph is the seed ServiceGraph, as a user writes it.
func (s *Seed) Graph() string {
	return fmt.Sprintf(`apiVersion: policy.servicegraph.io/v1alpha1
kind: ServiceGraph
metadata:
  name: shop
  namespace: %s
spec:
  services:
  - name: web
  - name: api
  - name: database
  edges:
  - web→api:8080
  - api→database:5432/data
`, s.Namespace)
}

// World is the seed as a world, for its oracle: with or without the edge api→database.
func (s *Seed) World(withDatabaseEdge bool) *world.World {
	w := &world.World{
		Namespaces: []string{s.Namespace},
		Services:   []world.Service{{Name: "web", Namespace: s.Namespace}, {Name: "api", Namespace: s.Namespace}, {Name: "database", Namespace: s.Namespace}},
		Edges:      []world.Edge{{From: 0, To: 1, Ports: []v1alpha1.ConnectionPort{{Port: intstr.FromInt32(8080)}}}},
		AllowDNS:   map[string]bool{s.Namespace: true},
		Istio:      true,
	}
	if withDatabaseEdge {
		w.Edges = append(w.Edges, world.Edge{From: 1, To: 2, Ports: []v1alpha1.ConnectionPort{{Port: intstr.FromInt32(5432)}}, Path: "/data"})
	}
	return w
}
