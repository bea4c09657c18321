package eval

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"

	"github.com/servicegraph/servicegraph-operator/internal/semantics"
)

func (j *judge) networkPolicyPorts(ports []networkingv1.NetworkPolicyPort, to *Workload) portSet {
	if len(ports) == 0 {
		return j.allPorts(to)
	}
	var out portSet
	for _, p := range ports {
		proto := corev1.ProtocolTCP
		if p.Protocol != nil {
			proto = *p.Protocol
		}
		switch {
		case p.Port == nil:
			for _, q := range j.allPorts(to) {
				out = append(out, probePort{port: q.port, protocol: proto})
			}
		case p.Port.StrVal != "":
			out = append(out, probePort{name: p.Port.StrVal, protocol: proto})
		default:
			out = append(out, probePort{port: p.Port.IntVal, protocol: proto})
		}
	}
	return out
}

// networkPolicy asks the connections a foreign NetworkPolicy's rules name, in the directions it
// isolates.
func (j *judge) networkPolicy(np *networkingv1.NetworkPolicy) *Widening {
	var probes []probe
	subjects := j.selected(&np.Spec.PodSelector)
	if semantics.Isolates(np, semantics.Ingress) {
		for _, rule := range np.Spec.Ingress {
			sources := j.sources(rule.From)
			for _, to := range subjects {
				for _, src := range sources {
					for _, p := range j.networkPolicyPorts(rule.Ports, to) {
						probes = append(probes, probe{from: src.Endpoint, to: to, port: p.port, portName: p.name, protocol: p.protocol, namespaces: src.namespaces})
					}
				}
			}
		}
	}
	if semantics.Isolates(np, semantics.Egress) {
		for _, rule := range np.Spec.Egress {
			for _, dst := range j.destinations(rule.To) {
				for _, from := range subjects {
					for _, p := range j.networkPolicyPorts(rule.Ports, dst.Workload) {
						probes = append(probes, probe{from: Endpoint{Workload: from}, to: dst.Workload, port: p.port, portName: p.name, protocol: p.protocol, namespaces: dst.namespaces})
					}
				}
			}
		}
	}
	return j.firstOpened(fmt.Sprintf("NetworkPolicy %s/%s", np.Namespace, np.Name), L4Layers, j.withObject(np), probes)
}

// sources lists the endpoints an ingress rule's peers match (every stranger when it names none),
// then the namespace's own workloads.
func (j *judge) sources(peers []networkingv1.NetworkPolicyPeer) []source {
	var out []source
	for _, p := range peers {
		if s, ok := j.peer(p); ok {
			out = append(out, s)
		}
	}
	return j.withStrangersAndLocals(out, len(peers) == 0)
}

// destinations lists what an egress rule's peers match, as sources do; an address is a workload
// without a namespace, and the namespace's own stranger is not one (it is local).
func (j *judge) destinations(peers []networkingv1.NetworkPolicyPeer) []source {
	var out []source
	for _, s := range j.sources(peers) {
		switch {
		case s.Workload == nil:
			out = append(out, source{Endpoint: Endpoint{Workload: &Workload{IP: s.IP}}})
		case len(peers) == 0 && s.Workload.Namespace == j.namespace && s.Workload.Name == "any-pod":
		default:
			out = append(out, s)
		}
	}
	return out
}
