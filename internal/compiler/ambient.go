package compiler

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"

	securityv1beta1 "istio.io/api/security/v1beta1"
	typev1beta1 "istio.io/api/type/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/graph"
	"github.com/servicegraph/servicegraph-operator/internal/semantics"
)

// Ambient mode. A service whose pods run in ambient mode is enforced by the node's ztunnel, which
// reads only the layer-4 fields of selector AuthorizationPolicies (an ALLOW rule with paths or
// methods is dropped whole), and tunnels traffic as HBONE on port 15008. Its edges with paths or
// methods go through a waypoint: an AuthorizationPolicy attached to the waypoint (targetRefs to the
// service's Kubernetes Services) carries every edge into the service, and the service's ztunnel
// policy admits the waypoint's identity on the edges' ports, never the layer-7 callers directly
// (they could dial the pod's address and skip the path check).

// WaypointFacts is what the cluster says of a waypoint (a Gateway of class istio-waypoint).
type WaypointFacts struct {
	// Ready is true once the Gateway has an address: Istio sends traffic through it only then.
	Ready bool
	// ServiceAccount is its pods' identity: the Gateway's name unless it says otherwise.
	ServiceAccount string
}

// WaypointProblem is a service in ambient mode whose layer-7 edges stay closed, and why.
type WaypointProblem struct {
	Service, Waypoint string
	Why               string
}

func (p WaypointProblem) String() string { return p.Service + ": " + p.Why }

// ambientService is what a local service in ambient mode needs of a waypoint.
type ambientService struct {
	// services are the Kubernetes Services that select its pods: the waypoint serves their
	// addresses, and its policy attaches to them.
	services []KubeService
	// waypoint is the waypoint its Services use, "" when none.
	waypoint string
	// l7 is set when an edge into it has paths or methods.
	l7 bool
	// through is set when Istio sends its Services' traffic through an existing waypoint: ztunnel
	// then sees the waypoint's identity, which its policy must admit.
	through bool
	// open is set when its layer-7 edges can be enforced: through a ready waypoint.
	open bool
	// problem says why its layer-7 edges stay closed.
	problem string
}

// DefaultWaypointName names the waypoint the operator creates when the graph names none.
const DefaultWaypointName = "waypoint"

// dataplane is what carries a service's traffic: the observed data plane of a local service's
// pods, else the namespace's for new pods, a sidecar when it says none (the mesh's default
// assumption); a sidecar for peers of other namespaces, none for external peers.
func (c *Compilation) dataplane(name string) semantics.Dataplane {
	svc := c.service(name)
	switch {
	case svc.External != nil:
		return semantics.DataplaneNone
	case !c.g.Local(svc):
		return semantics.DataplaneSidecar
	}
	if d, ok := c.facts.Dataplanes[name]; ok {
		return d
	}
	if semantics.NamespaceDataplane(c.facts.NamespaceLabels) == semantics.DataplaneAmbient {
		return semantics.DataplaneAmbient
	}
	return semantics.DataplaneSidecar
}

// ambient says what a local service in ambient mode needs of a waypoint; nil for other services or
// without Istio.
func (c *Compilation) ambient(name string) *ambientService {
	if !c.LayerOn(LayerIstio) || c.dataplane(name) != semantics.DataplaneAmbient {
		return nil
	}
	if a, ok := c.ambients[name]; ok {
		return a
	}
	svc := c.service(name)
	a := &ambientService{}
	for _, e := range c.services[name].ingress {
		a.l7 = a.l7 || httpOnly(e.Edge)
	}
	for _, ks := range c.facts.Services {
		if ks.Namespace == c.g.Namespace && Selects(ks.Selector, svc.Labels) {
			a.services = append(a.services, ks)
		}
	}
	a.waypoint, a.problem = c.waypointOf(a)
	wp, exists := c.facts.Waypoints[a.waypoint]
	a.through = a.problem == "" && a.waypoint != "" && exists
	a.open = a.through && wp.Ready
	switch {
	case !a.l7 || a.problem != "":
	case a.waypoint == "":
		a.problem = "no waypoint: name one in spec.waypoint (create: true makes the operator create it) or label the namespace istio.io/use-waypoint"
	case !exists:
		a.problem = fmt.Sprintf("waypoint %s does not exist: create a Gateway %s of class %s with the listener mesh, port %d, protocol HBONE (or set spec.waypoint.create)",
			a.waypoint, a.waypoint, semantics.WaypointClass, semantics.HBONEPort)
	case !wp.Ready:
		a.problem = fmt.Sprintf("waypoint %s is not ready (its Gateway has no address yet)", a.waypoint)
	}
	c.ambients[name] = a
	return a
}

// waypointOf is the waypoint a service's Services use: what their istio.io/use-waypoint label (or
// the namespace's) names, or, when the graph creates its waypoint, the one the operator labels
// them with. A problem when they disagree, use one of another namespace, or no Service selects the
// pods (a waypoint serves a Service's addresses).
func (c *Compilation) waypointOf(a *ambientService) (string, string) {
	if len(a.services) == 0 {
		if a.l7 {
			return "", "no Kubernetes Service selects its pods: a waypoint serves a Service's addresses, so paths and methods cannot be enforced"
		}
		return "", ""
	}
	names := map[string]bool{}
	for _, ks := range a.services {
		name, ns := semantics.Waypoint(ks.Namespace, ks.Labels, c.facts.NamespaceLabels)
		if name == "" && c.createsWaypoint() && a.l7 {
			name, ns = c.waypointName(), c.g.Namespace
		}
		if name != "" && ns != c.g.Namespace {
			return "", fmt.Sprintf("Service %s uses waypoint %s/%s of another namespace: the graph's policies attach to waypoints of its own", ks.Name, ns, name)
		}
		names[name] = true
	}
	if len(names) > 1 {
		return "", "its Services use different waypoints (istio.io/use-waypoint): give them one"
	}
	for name := range names {
		if name == "" && a.l7 && c.g.Waypoint != "" {
			return "", fmt.Sprintf("its Services do not use waypoint %s: label them istio.io/use-waypoint=%s (or set spec.waypoint.create)", c.g.Waypoint, c.g.Waypoint)
		}
		return name, ""
	}
	return "", ""
}

// createsWaypoint tells whether the graph asks the operator to create its waypoint.
func (c *Compilation) createsWaypoint() bool { return c.g.CreateWaypoint }

// waypointName is the waypoint the graph names: spec.waypoint.name, the namespace's
// istio.io/use-waypoint, or DefaultWaypointName when the operator creates it.
func (c *Compilation) waypointName() string {
	if c.g.Waypoint != "" {
		return c.g.Waypoint
	}
	if name, ns := semantics.Waypoint(c.g.Namespace, nil, c.facts.NamespaceLabels); name != "" && ns == c.g.Namespace {
		return name
	}
	return DefaultWaypointName
}

// waypointPrincipal is the identity of a waypoint's pods.
func (c *Compilation) waypointPrincipal(waypoint string) string {
	sa := c.facts.Waypoints[waypoint].ServiceAccount
	if sa == "" {
		sa = waypoint
	}
	return semantics.Principal(c.opts.TrustDomain, c.g.Namespace, sa)
}

// WaypointProblems lists the services in ambient mode whose layer-7 edges stay closed.
func (c *Compilation) waypointProblems() []WaypointProblem {
	var out []WaypointProblem
	for _, sp := range c.sortedPolicies() {
		if a := c.ambient(sp.svc.Name); a != nil && a.problem != "" {
			out = append(out, WaypointProblem{Service: sp.svc.Name, Waypoint: a.waypoint, Why: a.problem})
		}
	}
	return out
}

// waypoints lists the waypoints the graph's services go through, sorted.
func (c *Compilation) waypoints() []string {
	var out []string
	for _, sp := range c.sortedPolicies() {
		if a := c.ambient(sp.svc.Name); a != nil && a.through && !slices.Contains(out, a.waypoint) {
			out = append(out, a.waypoint)
		}
	}
	slices.Sort(out)
	return out
}

// enrolled lists the Services the operator labels with its waypoint: those of the ambient services
// with layer-7 edges, when the graph creates its waypoint and the Service names none itself.
func (c *Compilation) enrolled() []string {
	if !c.createsWaypoint() {
		return nil
	}
	var out []string
	for _, sp := range c.sortedPolicies() {
		a := c.ambient(sp.svc.Name)
		if a == nil || !a.l7 || a.waypoint != c.waypointName() {
			continue
		}
		for _, ks := range a.services {
			if name, _ := semantics.Waypoint(ks.Namespace, ks.Labels, c.facts.NamespaceLabels); name == "" || ks.Labels[semantics.LabelUseWaypoint] == c.waypointName() {
				out = append(out, ks.Name)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// hbone tells whether an edge's packets may travel as HBONE, to port 15008 of the destination pod:
// when either end runs in ambient mode (a ztunnel tunnels what it sends, and a sidecar may speak
// HBONE to an ambient pod). The edge's own ports stay open too: plain text and a sidecar's mutual
// TLS use them.
func (c *Compilation) hbone(e *graph.Edge) bool {
	from, to := c.service(e.From), c.service(e.To)
	if !c.LayerOn(LayerIstio) || from.External != nil || to.External != nil || from.Remote != nil || to.Remote != nil {
		return false // the API server, hosts, addresses and other networks speak no HBONE here
	}
	return c.dataplane(e.From) == semantics.DataplaneAmbient || c.dataplane(e.To) == semantics.DataplaneAmbient
}

// dataplanes are the local services' data planes, by name.
func (c *Compilation) dataplanes() map[string]semantics.Dataplane {
	if !c.LayerOn(LayerIstio) {
		return nil
	}
	out := map[string]semantics.Dataplane{}
	for i := range c.g.Services {
		if s := &c.g.Services[i]; c.g.Local(s) {
			out[s.Name] = c.dataplane(s.Name)
		}
	}
	return out
}

// servicePorts maps an edge's destination ports to the ports of the Kubernetes Services that send
// to them: a waypoint sees the Service's port. A port name, on either side, stands for the
// destination pods' container port of that name.
func (c *Compilation) servicePorts(services []KubeService, e *graph.Edge) []string {
	number := func(p intstr.IntOrString) intstr.IntOrString {
		if n, ok := c.facts.NamedPorts[e.To][p.StrVal]; p.Type == intstr.String && ok {
			return intstr.FromInt32(n)
		}
		return p
	}
	var out []string
	for _, p := range e.Ports {
		for _, ks := range services {
			for _, sp := range ks.Ports {
				if p.Meshed() && number(TargetPort(sp)) == number(p.Port) {
					out = append(out, strconv.Itoa(int(sp.Port)))
				}
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// probeRulePorts are the ports the kubelet probes a service's ambient pods on.
func (c *Compilation) probeRulePorts(name string) []intstr.IntOrString {
	ports := slices.Clone(c.facts.ProbePorts[name])
	slices.SortFunc(ports, func(a, b intstr.IntOrString) int { return strings.Compare(a.String(), b.String()) })
	return slices.CompactFunc(ports, func(a, b intstr.IntOrString) bool { return a == b })
}

// Ambient tells whether a result has a service in ambient mode, or a waypoint in its spec: only
// such graphs report WaypointReady.
func (r *Result) Ambient() bool {
	return r.Graph.Waypoint != "" || r.Graph.CreateWaypoint || slices.Contains(slices.Collect(maps.Values(r.Dataplanes)), semantics.DataplaneAmbient)
}

// WaypointCondition is WaypointReady's status, reason and message for a result.
func WaypointCondition(r *Result) (bool, string, string) {
	if len(r.WaypointProblems) > 0 {
		parts := make([]string, len(r.WaypointProblems))
		for i, p := range r.WaypointProblems {
			parts[i] = p.String()
		}
		return false, v1alpha1.ReasonWaypointMissing, "layer-7 edges (paths, methods) into services in ambient mode stay closed: " + strings.Join(parts, "; ")
	}
	if len(r.Waypoints) == 0 {
		return true, v1alpha1.ReasonNoWaypointNeeded, "no service in ambient mode has an edge with paths or methods"
	}
	return true, v1alpha1.ReasonWaypointReady, "layer-7 edges into services in ambient mode go through waypoint " + strings.Join(r.Waypoints, ", ")
}

// waypointRule admits, on ztunnel, the waypoint a service's Services go through, on the ports of
// every edge into it that ztunnel sees (Istio's waypoint speaks for each caller it let through);
// nil when there are none.
func (c *Compilation) waypointRule(sp *servicePolicy, a *ambientService) *securityv1beta1.Rule {
	var ports []string
	for _, e := range sp.ingress {
		if r := c.authorizationRule(e.Edge); r != nil && len(r.GetTo()) > 0 {
			ports = append(ports, r.GetTo()[0].GetOperation().GetPorts()...)
		}
	}
	if len(ports) == 0 {
		return nil
	}
	slices.Sort(ports)
	return &securityv1beta1.Rule{
		From: []*securityv1beta1.Rule_From{{Source: &securityv1beta1.Source{Principals: []string{c.waypointPrincipal(a.waypoint)}}}},
		To:   []*securityv1beta1.Rule_To{{Operation: &securityv1beta1.Operation{Ports: slices.Compact(ports)}}},
	}
}

// waypointAuthorizationPolicy is the policy a service's waypoint enforces for it: attached to its
// Kubernetes Services (targetRefs), one ALLOW rule per edge into it with the caller's identity,
// the Services' ports that send to the edge's ports, paths and methods. Nil when its Services go
// through no waypoint.
func (c *Compilation) waypointAuthorizationPolicy(sp *servicePolicy) *securityv1.AuthorizationPolicy {
	a := c.ambient(sp.svc.Name)
	if a == nil || !a.through {
		return nil
	}
	ap := &securityv1.AuthorizationPolicy{
		TypeMeta:   istioType("AuthorizationPolicy"),
		ObjectMeta: c.Meta(waypointObjectName(c.g.Name, sp.svc.Name), sp.svc.Name),
	}
	for _, ks := range a.services {
		ap.Spec.TargetRefs = append(ap.Spec.TargetRefs, &typev1beta1.PolicyTargetReference{Kind: "Service", Name: ks.Name})
	}
	var dedup run[*securityv1beta1.Rule]
	for _, e := range sp.ingress {
		r := c.authorizationRule(e.Edge)
		if r == nil {
			continue
		}
		ports := c.servicePorts(a.services, e.Edge)
		if len(ports) == 0 {
			// Its callers reach the pods through no Service, so never through the waypoint.
			c.unresolved = append(c.unresolved, fmt.Sprintf("edge %s: no port of the Services of %s targets its port, and the waypoint sees the Service's port", e, e.To))
			continue
		}
		op := &securityv1beta1.Operation{Ports: ports, Paths: e.Paths, Methods: e.Methods}
		rule := &securityv1beta1.Rule{From: r.From, To: []*securityv1beta1.Rule_To{{Operation: op}}}
		if dedup.first(e.From, rule, sameOperation) {
			ap.Spec.Rules = append(ap.Spec.Rules, rule)
		}
	}
	return ap
}

// waypointDenyAll is the waypoints' allow-nothing: a waypoint ignores selector and namespace-wide
// policies, so the namespace's allow-nothing does not cover it. Attached to every waypoint the
// graph's services go through; nil when none.
func (c *Compilation) waypointDenyAll() *securityv1.AuthorizationPolicy {
	waypoints := c.waypoints()
	if len(waypoints) == 0 {
		return nil
	}
	ap := &securityv1.AuthorizationPolicy{
		TypeMeta:   istioType("AuthorizationPolicy"),
		ObjectMeta: c.Meta(graphObjectName(c.g.Name, suffixWaypointDenyAll), ""),
	}
	for _, w := range waypoints {
		ap.Spec.TargetRefs = append(ap.Spec.TargetRefs, &typev1beta1.PolicyTargetReference{Group: gatewayGroup, Kind: "Gateway", Name: w})
	}
	return ap
}

// gatewayGroup is the Gateway API's group.
const gatewayGroup = "gateway.networking.k8s.io"

// hbonePorts are an edge's NetworkPolicy ports, with 15008 when its packets may travel as HBONE.
func (c *Compilation) hbonePorts(e *edge) []networkingv1.NetworkPolicyPort {
	if !c.hbone(e.Edge) || len(e.ports) == 0 {
		return e.ports
	}
	return append(slices.Clone(e.ports), c.hboneOnly()...)
}

// hboneOnly is port 15008 over TCP.
func (c *Compilation) hboneOnly() []networkingv1.NetworkPolicyPort {
	return []networkingv1.NetworkPolicyPort{{Protocol: intern(c.protocols, corev1.ProtocolTCP), Port: intern(c.portValues, intstr.FromInt32(semantics.HBONEPort))}}
}

// waypointPeer selects a waypoint's pods: Istio labels them with their Gateway's name.
func (c *Compilation) waypointPeer(waypoint string) []networkingv1.NetworkPolicyPeer {
	return []networkingv1.NetworkPolicyPeer{{PodSelector: selector(map[string]string{semantics.LabelGatewayName: waypoint})}}
}

// probeRule admits the kubelet's probes of ambient pods, which istio-cni sends from its link-local
// addresses (IPv4 and IPv6), on the probed ports.
func (c *Compilation) probeRule(ports []intstr.IntOrString) networkingv1.NetworkPolicyIngressRule {
	r := networkingv1.NetworkPolicyIngressRule{From: []networkingv1.NetworkPolicyPeer{
		{IPBlock: &networkingv1.IPBlock{CIDR: semantics.ProbeSNATIPv4CIDR}},
		{IPBlock: &networkingv1.IPBlock{CIDR: semantics.ProbeSNATIPv6CIDR}},
	}}
	for _, p := range ports {
		r.Ports = append(r.Ports, networkingv1.NetworkPolicyPort{Protocol: intern(c.protocols, corev1.ProtocolTCP), Port: intern(c.portValues, p)})
	}
	return r
}

// waypointNetworkPolicy lets a waypoint's pods take HBONE from the callers of the services that go
// through it and carry it on to those services. Istio's own needs (istiod, DNS) are the
// namespace-wide policies'.
func (c *Compilation) waypointNetworkPolicy(waypoint string) *networkingv1.NetworkPolicy {
	np := c.networkPolicy(graphObjectName(c.g.Name, prefixWaypointPods+waypoint), "")
	np.Spec.PodSelector = *selector(map[string]string{semantics.LabelGatewayName: waypoint})
	np.Spec.PolicyTypes = policyTypes(true, true)
	var callers []string
	for _, sp := range c.sortedPolicies() {
		a := c.ambient(sp.svc.Name)
		if a == nil || !a.through || a.waypoint != waypoint {
			continue
		}
		np.Spec.Egress = append(np.Spec.Egress, networkingv1.NetworkPolicyEgressRule{To: c.peer(sp.svc.Name), Ports: c.hboneOnly()})
		for _, e := range sp.ingress {
			if !slices.Contains(callers, e.From) {
				callers = append(callers, e.From)
			}
		}
	}
	slices.Sort(callers)
	for _, from := range callers {
		if peers := c.callerPeer(from); len(peers) > 0 {
			np.Spec.Ingress = append(np.Spec.Ingress, networkingv1.NetworkPolicyIngressRule{From: peers, Ports: c.hboneOnly()})
		}
	}
	return np
}
