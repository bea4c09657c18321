package compiler

import (
	"fmt"

	"google.golang.org/protobuf/proto"
	securityv1beta1 "istio.io/api/security/v1beta1"
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
		return []Emitted{{Object: c.peerAuthentication(), Phase: PhaseMTLS}}
	},
	SpecEqual: sameSpec(func(w, h *securityv1.PeerAuthentication) bool { return proto.Equal(&w.Spec, &h.Spec) }),
	// Istio gives no precedence between two namespace-wide PeerAuthentications.
	Exclusive: func(obj Object) bool {
		pa, ok := obj.(*securityv1.PeerAuthentication)
		return ok && pa.Spec.Selector == nil
	},
	Describe: func(s Summary) string {
		if s.Audit {
			return "Audit mode: PeerAuthentication applied with mode PERMISSIVE"
		}
		return fmt.Sprintf("PeerAuthentication applied with mode %s", s.MTLS)
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
