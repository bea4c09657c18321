package compiler

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"
	networkingv1beta1 "istio.io/api/networking/v1beta1"
	istionetworkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/graph"
)

// +kubebuilder:rbac:groups=networking.istio.io,resources=serviceentries;sidecars,verbs=get;list;watch;create;update;patch;delete

var istioNetworkingType = func(kind string) metav1.TypeMeta {
	return metav1.TypeMeta{APIVersion: istionetworkingv1.SchemeGroupVersion.String(), Kind: kind}
}

// ServiceEntries declare to the mesh the external peers the graph's services call: hosts outside
// the cluster (resolved by DNS) and address ranges. Without them a sidecar under REGISTRY_ONLY
// refuses the connection.
var ServiceEntries = &Output{
	GVK:       istionetworkingv1.SchemeGroupVersion.WithKind("ServiceEntry"),
	Layer:     LayerIstio,
	Condition: v1alpha1.ConditionEgressReady,
	Emit: func(c *Compilation) []Emitted {
		var out []Emitted
		for _, callee := range c.externalCallees() {
			if se := c.serviceEntry(callee); se != nil {
				out = append(out, Emitted{Object: se, Phase: PhaseAllow})
			}
		}
		return out
	},
	SpecEqual: sameSpec(func(w, h *istionetworkingv1.ServiceEntry) bool { return proto.Equal(&w.Spec, &h.Spec) }),
	Describe: func(s Summary) string {
		return fmt.Sprintf("%d ServiceEntries for the external hosts and addresses the services call", s.Count)
	},
}

// Sidecars make the namespace's sidecars refuse every host outside the mesh but the declared
// ones (outboundTrafficPolicy REGISTRY_ONLY), when the graph calls external hosts: the
// NetworkPolicy cannot tell hosts apart, the sidecar can.
var Sidecars = &Output{
	GVK:       istionetworkingv1.SchemeGroupVersion.WithKind("Sidecar"),
	Layer:     LayerIstio,
	Condition: v1alpha1.ConditionEgressReady,
	Emit: func(c *Compilation) []Emitted {
		if !slices.ContainsFunc(c.externalCallees(), func(s *graph.Service) bool { return len(s.External.Hosts) > 0 }) {
			return nil
		}
		return []Emitted{{Object: c.sidecar(), Phase: PhaseDeny}}
	},
	// A sidecar has no dry run: Audit mode leaves egress open.
	Audit:     func(Object) Object { return nil },
	SpecEqual: sameSpec(func(w, h *istionetworkingv1.Sidecar) bool { return proto.Equal(&w.Spec, &h.Spec) }),
	// Istio gives no precedence between two namespace-wide Sidecars.
	Exclusive: func(obj Object) bool {
		sc, ok := obj.(*istionetworkingv1.Sidecar)
		return ok && sc.Spec.GetWorkloadSelector() == nil
	},
	Describe: func(s Summary) string {
		if s.Count == 0 {
			return "no Sidecar: the graph calls no external host"
		}
		return "Sidecar applied: the namespace's sidecars reach no host outside the mesh but the declared ones (REGISTRY_ONLY)"
	},
}

// externalCallees are the external peers some edge calls, by name.
func (c *Compilation) externalCallees() []*graph.Service {
	var out []*graph.Service
	for i := range c.g.Edges {
		if to := c.service(c.g.Edges[i].To); to.External != nil && !slices.Contains(out, to) {
			out = append(out, to)
		}
	}
	slices.SortFunc(out, func(a, b *graph.Service) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// serviceEntry declares a callee with hosts or addresses, on the ports the graph calls it on
// (Istio does not intercept UDP or SCTP); nil for other callees.
func (c *Compilation) serviceEntry(callee *graph.Service) *istionetworkingv1.ServiceEntry {
	x := callee.External
	if len(x.Hosts) == 0 && len(x.CIDRs) == 0 {
		return nil
	}
	se := &istionetworkingv1.ServiceEntry{TypeMeta: istioNetworkingType("ServiceEntry"),
		ObjectMeta: c.Meta(c.ExternalObjectName(callee.Name), "")}
	se.Spec.Location = networkingv1beta1.ServiceEntry_MESH_EXTERNAL
	se.Spec.ExportTo = []string{"."}
	se.Spec.Hosts = slices.Clone(x.Hosts)
	se.Spec.Resolution = networkingv1beta1.ServiceEntry_DNS
	if len(x.Hosts) == 0 {
		// Addresses only: the host is a name of the entry's own; traffic is matched by address.
		se.Spec.Hosts = []string{callee.Name + "." + c.g.Namespace + ".external"}
		se.Spec.Addresses = slices.Clone(x.CIDRs)
		se.Spec.Resolution = networkingv1beta1.ServiceEntry_NONE
	}
	if len(x.Hosts) > 0 && slices.ContainsFunc(x.Hosts, func(h string) bool { return h[0] == '*' }) {
		se.Spec.Resolution = networkingv1beta1.ServiceEntry_NONE // wildcards cannot be resolved
	}
	var ports []int32
	for _, e := range c.g.Edges {
		if e.To != callee.Name {
			continue
		}
		for _, p := range e.Ports {
			if p.Meshed() {
				ports = append(ports, p.Port.IntVal)
			}
		}
	}
	slices.Sort(ports)
	for _, p := range slices.Compact(ports) {
		protocol := "TCP"
		if p == 443 && len(x.Hosts) > 0 {
			protocol = "TLS" // matched by SNI, so each host is told apart
		}
		se.Spec.Ports = append(se.Spec.Ports, &networkingv1beta1.ServicePort{Number: uint32(p), Protocol: protocol,
			Name: strings.ToLower(protocol) + "-" + strconv.Itoa(int(p))})
	}
	if len(se.Spec.Ports) == 0 {
		return nil
	}
	return se
}

// sidecar is the namespace-wide Sidecar: REGISTRY_ONLY, egress to the graph's namespace (its own
// services and ServiceEntries), istiod's, and what the graph's services call in other
// namespaces: peers, namespaces by name, the API server. A callee chosen by namespace label can be
// in any namespace: then every namespace.
func (c *Compilation) sidecar() *istionetworkingv1.Sidecar {
	sc := &istionetworkingv1.Sidecar{TypeMeta: istioNetworkingType("Sidecar"), ObjectMeta: c.Meta(c.g.Name, "")}
	sc.Spec.OutboundTrafficPolicy = &networkingv1beta1.OutboundTrafficPolicy{Mode: networkingv1beta1.OutboundTrafficPolicy_REGISTRY_ONLY}
	var hosts []string
	for i := range c.g.Edges {
		to := c.service(c.g.Edges[i].To)
		switch x := to.External; {
		case x == nil && to.Namespace != c.g.Namespace:
			hosts = append(hosts, to.Namespace+"/*")
		case x == nil:
		case x.KubernetesAPI:
			hosts = append(hosts, "default/kubernetes.default.svc.cluster.local")
		case x.NamespaceSelector != nil:
			hosts = append(hosts, "*/*")
		default:
			for _, ns := range x.Namespaces {
				hosts = append(hosts, ns+"/*")
			}
		}
	}
	slices.Sort(hosts)
	hosts = append([]string{"./*", c.opts.Istiod.Namespace + "/*"}, slices.Compact(hosts)...)
	sc.Spec.Egress = []*networkingv1beta1.IstioEgressListener{{Hosts: hosts}}
	return sc
}
