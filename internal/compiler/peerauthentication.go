package compiler

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"
	securityv1beta1 "istio.io/api/security/v1beta1"
	typev1beta1 "istio.io/api/type/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
)

// +kubebuilder:rbac:groups=security.istio.io,resources=peerauthentications,verbs=get;list;watch;create;update;patch;delete

// LayerIstio is Istio's security API: mutual TLS and authorization. A graph that asks for STRICT
// mutual TLS cannot be Ready without it; one that asks for PERMISSIVE is Ready with a note.
var LayerIstio = &Layer{
	Name:       "Istio",
	Reason:     v1alpha1.ReasonIstioNotInstalled,
	Missing:    "Istio's security.istio.io/v1 API is not served in this cluster",
	Needed:     func(r *Result) bool { return r.MTLSMode == v1alpha1.MTLSStrict },
	Waiting:    "NetworkPolicies applied; waiting for Istio (security.istio.io/v1) to be installed to enforce STRICT mutual TLS and authorization",
	Unenforced: "Istio is not installed, so mutual TLS and authorization policies are not enforced",
}

// PeerAuthentications sets the namespace's mutual-TLS mode: one namespace-wide PeerAuthentication.
var PeerAuthentications = &Output{
	GVK:       securityv1.SchemeGroupVersion.WithKind("PeerAuthentication"),
	Layer:     LayerIstio,
	Condition: v1alpha1.ConditionMTLSReady,
	Emit: func(c *Compilation) []Emitted {
		out := []Emitted{{Object: c.peerAuthentication(), Phase: PhaseMTLS}}
		for _, sp := range c.sortedPolicies() {
			if pa := c.plaintextException(sp); pa != nil {
				out = append(out, Emitted{Object: pa, Phase: PhaseMTLS})
			}
		}
		return out
	},
	SpecEqual: sameSpec(func(w, h *securityv1.PeerAuthentication) bool { return proto.Equal(&w.Spec, &h.Spec) }),
	// Istio takes the oldest of two namespace-wide PeerAuthentications (semantics.EffectiveMTLS): another
	// one would make the graph's mode depend on which is older.
	Exclusive: func(obj Object) bool {
		pa, ok := obj.(*securityv1.PeerAuthentication)
		return ok && pa.Spec.Selector == nil
	},
	Describe: func(s Summary) string {
		if s.Audit {
			return "Audit mode: PeerAuthentication applied with mode PERMISSIVE"
		}
		msg := fmt.Sprintf("PeerAuthentication applied with mode %s", s.MTLS)
		if len(s.Plaintext) > 0 {
			msg += "; plain text accepted from unmeshed callers (spec.external[].unmeshed) on " + strings.Join(s.Plaintext, ", ")
		}
		return msg
	},
}

var istioAPIVersion = securityv1.SchemeGroupVersion.String()

func istioType(kind string) metav1.TypeMeta {
	return metav1.TypeMeta{APIVersion: istioAPIVersion, Kind: kind}
}

// peerAuthentication sets the namespace-wide mutual-TLS mode (no selector).
func (c *Compilation) peerAuthentication() *securityv1.PeerAuthentication {
	pa := &securityv1.PeerAuthentication{
		TypeMeta:   istioType("PeerAuthentication"),
		ObjectMeta: c.Meta(c.g.Name, ""),
	}
	mode := securityv1beta1.PeerAuthentication_MutualTLS_Mode_value[string(c.g.MTLS)]
	pa.Spec.Mtls = &securityv1beta1.PeerAuthentication_MutualTLS{Mode: securityv1beta1.PeerAuthentication_MutualTLS_Mode(mode)}
	return pa
}

// plaintextPorts are a local service's ports that unmeshed external callers reach: STRICT would
// refuse their plain text.
func (c *Compilation) plaintextPorts(sp *servicePolicy) []uint32 {
	if c.g.MTLS != v1alpha1.MTLSStrict {
		return nil
	}
	var ports []uint32
	for _, e := range sp.ingress {
		if x := c.service(e.From).External; x == nil || !x.Unmeshed {
			continue
		}
		for _, p := range e.Ports {
			if p.Meshed() && !p.Named() {
				ports = append(ports, uint32(p.Port.IntVal))
			}
		}
	}
	slices.Sort(ports)
	return slices.Compact(ports)
}

// plaintextException is a service's own PeerAuthentication, next to the namespace-wide one: its
// pods keep the namespace's mode but accept plain text on the ports unmeshed callers reach. nil
// when there are none.
func (c *Compilation) plaintextException(sp *servicePolicy) *securityv1.PeerAuthentication {
	ports := c.plaintextPorts(sp)
	if len(ports) == 0 {
		return nil
	}
	pa := &securityv1.PeerAuthentication{
		TypeMeta:   istioType("PeerAuthentication"),
		ObjectMeta: c.Meta(c.ServiceObjectName(sp.svc.Name), sp.svc.Name),
	}
	pa.Spec.Selector = &typev1beta1.WorkloadSelector{MatchLabels: maps.Clone(sp.svc.Labels)}
	mode := securityv1beta1.PeerAuthentication_MutualTLS_Mode(securityv1beta1.PeerAuthentication_MutualTLS_Mode_value[string(c.g.MTLS)])
	pa.Spec.Mtls = &securityv1beta1.PeerAuthentication_MutualTLS{Mode: mode}
	pa.Spec.PortLevelMtls = map[uint32]*securityv1beta1.PeerAuthentication_MutualTLS{}
	for _, p := range ports {
		pa.Spec.PortLevelMtls[p] = &securityv1beta1.PeerAuthentication_MutualTLS{Mode: securityv1beta1.PeerAuthentication_MutualTLS_PERMISSIVE}
	}
	return pa
}

// plaintext lists "service:port" for every plain-text exception, for messages.
func (c *Compilation) plaintext() []string {
	var out []string
	for _, sp := range c.sortedPolicies() {
		for _, p := range c.plaintextPorts(sp) {
			out = append(out, sp.svc.Name+":"+strconv.Itoa(int(p)))
		}
	}
	return out
}
