package compiler

import (
	"fmt"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/semantics"
)

// +kubebuilder:rbac:groups=gateway.networking.k8s.io,resources=gateways,verbs=get;list;watch;create;update;patch;delete

// LayerGatewayAPI is the Gateway API, in which Istio's waypoints are Gateways. A graph needs it
// only to create its waypoint (spec.waypoint.create).
var LayerGatewayAPI = &Layer{
	Name:    "Gateway API",
	Reason:  "GatewayAPINotServed",
	Missing: "the gateway.networking.k8s.io/v1 Gateway API is not served in this cluster",
	Needed:  func(r *Result) bool { return r.WaypointName != "" },
	Waiting: "waiting for the Gateway API (gateway.networking.k8s.io/v1) to be served to create the waypoint",
}

// Waypoints is the waypoint the operator creates when the graph asks for it and a service in ambient
// mode has edges with paths or methods: a Gateway of class istio-waypoint with Istio's listener
// for HBONE, for Service traffic.
var Waypoints = &Output{
	GVK:       schema.GroupVersionKind{Group: gatewayv1.GroupName, Version: "v1", Kind: "Gateway"},
	Layer:     LayerGatewayAPI,
	Condition: v1alpha1.ConditionWaypointReady,
	// A user's waypoint coming, going or getting its address opens or closes path edges.
	UsersMatter: true,
	Emit: func(c *Compilation) []Emitted {
		if !c.createsWaypoint() || len(c.enrolled()) == 0 {
			return nil
		}
		return []Emitted{{Object: c.waypointGateway(c.waypointName()), Phase: PhaseAllow}}
	},
	// The API server defaults fields of a listener (allowedRoutes): compare what the operator sets.
	SpecEqual: sameSpec(func(w, h *gatewayv1.Gateway) bool {
		return w.Spec.GatewayClassName == h.Spec.GatewayClassName && slices.EqualFunc(w.Spec.Listeners, h.Spec.Listeners, func(a, b gatewayv1.Listener) bool {
			return a.Name == b.Name && a.Port == b.Port && a.Protocol == b.Protocol
		})
	}),
	Describe: func(s Summary) string {
		return fmt.Sprintf("%d waypoint Gateway created", s.Count)
	},
}

// waypointGateway is a waypoint as Istio documents it.
func (c *Compilation) waypointGateway(name string) *gatewayv1.Gateway {
	gw := &gatewayv1.Gateway{
		TypeMeta:   metav1.TypeMeta{APIVersion: gatewayv1.GroupName + "/v1", Kind: "Gateway"},
		ObjectMeta: c.Meta(name, ""),
		Spec: gatewayv1.GatewaySpec{
			GatewayClassName: semantics.WaypointClass,
			Listeners:        []gatewayv1.Listener{{Name: "mesh", Port: semantics.HBONEPort, Protocol: "HBONE"}},
		},
	}
	gw.Labels[semantics.LabelWaypointFor] = "service"
	return gw
}
