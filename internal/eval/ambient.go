package eval

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/servicegraph/servicegraph-operator/internal/semantics"
)

// Ambient mode. A destination in ambient mode is enforced by its node's ztunnel, which sees
// layer 4 only; traffic to its Services may go through a waypoint, which enforces the policies
// attached to them. Both speak HBONE: the NetworkPolicies see port 15008 between the pods, not the
// application's port.

// Waypoint is an Istio waypoint in front of a destination's Kubernetes Services.
type Waypoint struct {
	// Name is the waypoint's Gateway, in the namespace of Pods.
	Name string
	// Pods are the waypoint's pods: their labels, ServiceAccount and address.
	Pods *Workload
	// Services are the destination's Kubernetes Services that go through it: policies attach to
	// them by name.
	Services []string
	// ServicePorts maps a destination pod port to the Service port callers dial: the waypoint sees
	// that one. A port not listed is the same number.
	ServicePorts map[int32]int32
}

// meshed tells whether a workload is in the mesh (nil, an address, is not).
func (w *Workload) meshed() bool { return w != nil && w.Meshed }

// ambient tells whether a workload's traffic is carried by ztunnel.
func (w *Workload) ambient() bool { return w.meshed() && w.Dataplane == semantics.DataplaneAmbient }

// transport is the connection as a NetworkPolicy sees it: under HBONE (a meshed caller or
// destination in ambient mode, both meshed), TCP port 15008 of the destination pod.
func (c *Cluster) transport(r Request) Request {
	if r.Protocol != corev1.ProtocolTCP || !r.From.Workload.meshed() || !r.To.meshed() || !r.From.Workload.ambient() && !r.To.ambient() {
		return r
	}
	r.Port, r.PortName = semantics.HBONEPort, ""
	return r
}

// hboneNote says, on a NetworkPolicy step of a connection carried as HBONE, that the policy saw
// 15008 and the application's port is ztunnel's to check.
func hboneNote(s Step, l4, r Request) Step {
	if l4.Port == r.Port || !s.Applies {
		return s
	}
	note := fmt.Sprintf("HBONE: the NetworkPolicy sees port %d, not %d; ztunnel checks the port", semantics.HBONEPort, r.Port)
	s.Detail = strings.TrimPrefix(s.Detail+"; "+note, "; ")
	return s
}

// viaWaypoint evaluates a meshed caller's connection to an ambient destination whose Services go
// through a waypoint: the caller's HBONE to the waypoint's pods, the waypoint's policies (those
// attached to the destination's Services, its Gateway or the waypoints' GatewayClass) with the
// caller's identity and the Service's port, then the waypoint's HBONE to the destination, where
// ztunnel sees the waypoint's identity. Each layer holds both hops.
func (c *Cluster) viaWaypoint(r Request, w *Waypoint) Verdict {
	hop1 := Request{From: r.From, To: w.Pods, Port: semantics.HBONEPort, Protocol: corev1.ProtocolTCP}
	hop2 := Request{From: Endpoint{Workload: w.Pods, IP: w.Pods.IP}, To: r.To, Port: semantics.HBONEPort, Protocol: corev1.ProtocolTCP}
	direct := r
	direct.From = hop2.From
	mtls, identity := c.mtls(direct)
	at := r
	if p, ok := w.ServicePorts[r.Port]; ok {
		at.Port = p
	}
	steps := []Step{
		twoHops(w, c.networkPolicies(hop1, Egress), c.networkPolicies(hop2, Egress)),
		twoHops(w, c.networkPolicies(hop1, Ingress), c.networkPolicies(hop2, Ingress)),
		mtls,
		twoHops(w, c.waypointAuthorization(at, w), c.authorization(direct, identity)),
	}
	return verdict(steps)
}

// twoHops folds a layer's verdicts on the way to the waypoint and from it.
func twoHops(w *Waypoint, toWaypoint, fromWaypoint Step) Step {
	s := Step{Layer: toWaypoint.Layer, Allowed: toWaypoint.Allowed && fromWaypoint.Allowed, Applies: toWaypoint.Applies || fromWaypoint.Applies}
	s.By = fmt.Sprintf("to waypoint %s: %s; from it: %s", w.Name, toWaypoint.By, fromWaypoint.By)
	var details []string
	for _, d := range []string{toWaypoint.Detail, fromWaypoint.Detail} {
		if d != "" {
			details = append(details, d)
		}
	}
	s.Detail = strings.Join(details, "; ")
	return s
}

// waypointAuthorization evaluates the policies a waypoint enforces for a destination's Services:
// an HTTP request on the HTTP chain, a connection on the TCP chain, as a sidecar would.
func (c *Cluster) waypointAuthorization(r Request, w *Waypoint) Step {
	var ps applied
	for _, ap := range semantics.SortedByAge(c.AuthorizationPolicies) {
		if semantics.Enforced(ap) && semantics.AppliesAtWaypoint(ap, w.Name, w.Pods.Namespace, w.Services, r.To.Namespace, c.rootNamespace()) {
			ps.add(ap)
		}
	}
	return c.decide(ps, c.attributes(r, true), "no AuthorizationPolicy is attached to the waypoint: allowed")
}
