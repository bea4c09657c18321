// Package traffic dresses test/world's worlds as clusters that run Istio: Deployments and Services
// for their workloads, and the series Istio's proxies report for their allowed connections,
// labelled as Istio's own metric goldens are (testdata/SOURCES.md says which), for a real
// Prometheus to serve to `servicegraph discover` and `audit`.
package traffic

import (
	"cmp"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/test/world"
)

// Workload is a Deployment of the scenario: a world's service, or a caller the scenario adds.
type Workload struct {
	Name, Namespace string
	Labels          map[string]string
	ServiceAccount  string
	// Ports are the pod ports it listens on besides world.NamedPorts.
	Ports []int32
	// MultiPort puts every port the traffic reaches it on behind one Service (so Istio's metrics,
	// which name the Service but not the port, cannot say which port was used); otherwise each
	// port gets a Service of its own.
	MultiPort bool
}

// Key is "namespace/name".
func (w *Workload) Key() string { return w.Namespace + "/" + w.Name }

// Caller is how the destination's proxy knows who called.
type Caller int

const (
	// Meshed: a sidecar caller in mutual TLS, its workload and principal known.
	Meshed Caller = iota
	// PlainText: a sidecar caller whose traffic is plain text (its DestinationRule disables TLS):
	// its workload is known through the metadata exchange headers, its principal is not.
	PlainText
	// PrincipalOnly: a caller in mutual TLS without metadata exchange: its principal only
	// (istio/proxy tcp_server_connection_open_without_mx).
	PrincipalOnly
	// Unknown: a caller outside the mesh, in plain text: nothing but the destination is known.
	Unknown
)

// Flow is one connection the scenario's series report: a caller to a destination pod port.
type Flow struct {
	From, To *Workload
	Caller   Caller
	// Principal is the caller's identity for PrincipalOnly (TRUST_DOMAIN/ns/NS/sa/SA).
	Principal string
	Port      int32
	// Protocol is Istio's request_protocol: tcp, http or grpc.
	Protocol string
	// Paths and Method are the HTTP requests' (paths as sent, query strings included).
	Paths  []string
	Method string
	// PerMinute is how many connections or requests a minute.
	PerMinute float64
}

// HTTP tells whether the flow is requests (istio_requests_total) rather than connections.
func (f Flow) HTTP() bool { return f.Protocol != "tcp" }

func (f Flow) String() string {
	from := "unknown"
	switch {
	case f.From != nil:
		from = f.From.Key()
	case f.Principal != "":
		from = f.Principal
	}
	return fmt.Sprintf("%s -> %s %s/%d", from, f.To.Key(), f.Protocol, f.Port)
}

// Scenario is a world's workloads, the flows between them, and how Istio is configured.
type Scenario struct {
	World     *world.World
	Workloads []*Workload
	Flows     []Flow
	// Telemetry are the namespaces whose proxies add the Telemetry API's opt-in tags
	// destination_port, request_path and request_method to what they report as destination.
	Telemetry map[string]bool
	// Waypoints are the namespaces whose workloads sit behind an ambient waypoint, and its
	// workload (see BehindWaypoint).
	Waypoints map[string]*Workload
}

// NewScenario dresses a world: a Deployment per service (its labels, its graph's ServiceAccount),
// and a flow per edge port Istio sees (TCP, HTTP and gRPC ones: it does not intercept UDP or
// SCTP), at a random rate; a port the world leaves to protocol detection carries HTTP a third of
// the time. A third of the destinations put all their ports behind one Service, and a third of the
// namespaces turn on the Telemetry API's port and request tags.
func NewScenario(w *world.World, rng *rand.Rand) *Scenario {
	s := &Scenario{World: w, Telemetry: map[string]bool{}, Waypoints: map[string]*Workload{}}
	for _, ns := range w.Namespaces {
		s.Telemetry[ns] = rng.IntN(3) == 0
	}
	for _, svc := range w.Services {
		s.Workloads = append(s.Workloads, &Workload{Name: svc.Name, Namespace: svc.Namespace, Labels: svc.Labels(),
			ServiceAccount: cmp.Or(svc.ServiceAccount, svc.Name), MultiPort: rng.IntN(3) == 0})
	}
	seen := map[string]bool{}
	for _, e := range w.Edges {
		for _, p := range e.Ports {
			if world.L4(p.Protocol) != corev1.ProtocolTCP {
				continue
			}
			f := Flow{From: s.Workloads[e.From], To: s.Workloads[e.To], Port: world.PortNumber(p.Port),
				PerMinute: []float64{1, 10, 100}[rng.IntN(3)]}
			key := f.From.Key() + ">" + f.To.Key() + fmt.Sprint(f.Port)
			if seen[key] { // "http" and 8080 on one edge: one port
				continue
			}
			seen[key] = true
			switch {
			case p.Protocol == v1alpha1.ProtocolGRPC:
				f.Protocol, f.Method = "grpc", "POST"
				f.Paths = []string{"/shop.v1.Cart/" + []string{"Get", "Add"}[rng.IntN(2)]}
			case p.Protocol == v1alpha1.ProtocolHTTP || e.Path != "" || rng.IntN(3) == 0:
				f.Protocol, f.Method = "http", []string{"GET", "POST"}[rng.IntN(2)]
				f.Paths = requestPaths(e.Path, rng)
			default:
				f.Protocol = "tcp"
			}
			s.add(f)
		}
	}
	return s
}

// requestPaths are one or two paths a caller sends that the edge's path (if any) allows.
func requestPaths(allowed string, rng *rand.Rand) []string {
	var pool []string
	switch {
	case allowed == "":
		pool = []string{"/", "/healthz", "/v1/orders", "/api/items?id=7", "/cart/checkout"}
	case strings.HasSuffix(allowed, "*"):
		prefix := strings.TrimSuffix(allowed, "*")
		pool = []string{prefix + "items", prefix + "v2/orders?page=2", prefix + "users/42"}
	default:
		return []string{allowed}
	}
	rng.Shuffle(len(pool), func(i, j int) { pool[i], pool[j] = pool[j], pool[i] })
	return pool[:1+rng.IntN(2)]
}

// add records a flow and makes its destination listen on its port.
func (s *Scenario) add(f Flow) {
	if _, named := world.NamedPorts[portName(f.Port)]; !named && !slices.Contains(f.To.Ports, f.Port) {
		f.To.Ports = append(f.To.Ports, f.Port)
		slices.Sort(f.To.Ports)
	}
	s.Flows = append(s.Flows, f)
}

// BehindWaypoint puts a namespace's workloads behind an ambient waypoint ("waypoint single"
// telemetry, istio/istio#50225): a meshed caller's requests and connections to them are reported
// by the waypoint (reporter="waypoint", the caller's principal), and the destination's ztunnel
// reports a connection from the waypoint. The waypoint is a Deployment of the manifests, marked as
// Istio marks a waypoint's pods; the Telemetry API's tags are off there (ztunnel takes none).
func (s *Scenario) BehindWaypoint(ns string) {
	w := &Workload{Name: "waypoint", Namespace: ns, ServiceAccount: "waypoint",
		Labels: map[string]string{"gateway.istio.io/managed": "istio.io-mesh-controller", "gateway.networking.k8s.io/gateway-name": "waypoint"}}
	s.Waypoints[ns], s.Telemetry[ns] = w, false
	s.Workloads = append(s.Workloads, w)
}

// AddCaller adds a caller of a kind other than Meshed in a namespace of the world, calling a
// random world service over HTTP on a port the traffic already reaches it on (8080 when none):
// PlainText is a Deployment of the manifests; PrincipalOnly runs in namespace outside, which the
// manifests leave out, as ServiceAccount gateway; Unknown is nobody.
func (s *Scenario) AddCaller(kind Caller, outside string, rng *rand.Rand) Flow {
	to := s.Workloads[rng.IntN(len(s.World.Services))]
	port := int32(8080)
	for _, f := range s.Flows {
		if f.To == to {
			port = f.Port
			break
		}
	}
	f := Flow{To: to, Caller: kind, Port: port, Protocol: "http", Method: "GET", Paths: []string{"/legacy/report"}, PerMinute: 5}
	switch kind {
	case PlainText:
		ns := s.World.Namespaces[rng.IntN(len(s.World.Namespaces))]
		name := fmt.Sprintf("legacy-%d", len(s.Workloads))
		f.From = &Workload{Name: name, Namespace: ns, Labels: map[string]string{"app": name}, ServiceAccount: name}
		s.Workloads = append(s.Workloads, f.From)
	case PrincipalOnly:
		f.Principal = "cluster.local/ns/" + outside + "/sa/gateway"
		f.Protocol, f.Paths, f.Method = "tcp", nil, ""
	}
	s.add(f)
	return f
}

// portName is the name world.NamedPorts gives a port, "" for none.
func portName(port int32) string {
	for name, n := range world.NamedPorts {
		if n == port {
			return name
		}
	}
	return ""
}

// ServicePorts are the pod ports the traffic reaches a workload on, sorted.
func (s *Scenario) ServicePorts(w *Workload) []int32 {
	set := map[int32]bool{}
	for _, f := range s.Flows {
		if f.To == w {
			set[f.Port] = true
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// ServiceName is the Service a flow was addressed to (Istio's destination_service_name).
func (s *Scenario) ServiceName(f Flow) string {
	if ports := s.ServicePorts(f.To); f.To.MultiPort || len(ports) == 1 {
		return f.To.Name
	}
	return fmt.Sprintf("%s-%d", f.To.Name, f.Port)
}

// Candidates are the destination ports discover and audit can tell a flow used: the one Istio
// reported with the Telemetry tags on, else the ports of the Service it was addressed to; ambiguous
// when those are several.
func (s *Scenario) Candidates(f Flow) (ports []int32, ambiguous bool) {
	if s.Telemetry[f.To.Namespace] || !f.To.MultiPort {
		return []int32{f.Port}, false
	}
	ports = s.ServicePorts(f.To)
	return ports, len(ports) > 1
}

// MergeKey is what tells flows apart once Istio reported them: the caller, the destination, and
// the port when the Telemetry tags say it, else the Service it was addressed to.
func (s *Scenario) MergeKey(f Flow) string {
	where := s.ServiceName(f)
	if s.Telemetry[f.To.Namespace] {
		where = fmt.Sprint(f.Port)
	}
	return fmt.Sprintf("%s|%s|%d|%s|%s", CallerName(f), f.Principal, f.Caller, f.To.Key(), where)
}

// AllowedPorts are the pod ports the world's edges from one workload to another allow over TCP.
func (s *Scenario) AllowedPorts(from, to *Workload) []int32 {
	var out []int32
	for _, e := range s.World.Edges {
		if s.Workloads[e.From] != from || s.Workloads[e.To] != to {
			continue
		}
		for _, p := range e.Ports {
			if world.L4(p.Protocol) == corev1.ProtocolTCP {
				out = append(out, world.PortNumber(p.Port))
			}
		}
	}
	return out
}
