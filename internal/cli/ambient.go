package cli

import (
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/compiler"
	"github.com/servicegraph/servicegraph-operator/internal/eval"
	"github.com/servicegraph/servicegraph-operator/internal/graph"
	"github.com/servicegraph/servicegraph-operator/internal/object"
	"github.com/servicegraph/servicegraph-operator/internal/semantics"
)

// meshObjects are what ambient mode reads besides policies and workloads: the Kubernetes Services
// (which waypoint their traffic goes through) and the waypoints (Gateways of class
// istio-waypoint), by namespace.
type meshObjects struct {
	services map[string][]*corev1.Service
	gateways map[string][]*gatewayv1.Gateway
	// offline: a Gateway of the files is ready (files carry no status); live, it needs an address.
	offline bool
}

func newMeshObjects(offline bool) *meshObjects {
	return &meshObjects{services: map[string][]*corev1.Service{}, gateways: map[string][]*gatewayv1.Gateway{}, offline: offline}
}

// collect keeps a Service or a waypoint.
func (m *meshObjects) collect(o object.Object) {
	switch x := o.(type) {
	case *corev1.Service:
		m.services[x.Namespace] = append(m.services[x.Namespace], x)
	case *gatewayv1.Gateway:
		if x.Spec.GatewayClassName == semantics.WaypointClass {
			m.gateways[x.Namespace] = append(m.gateways[x.Namespace], x)
		}
	}
}

// enroll labels, as the operator would, the Services a compiled graph puts behind its waypoint.
func (m *meshObjects) enroll(res *compiler.Result) {
	for _, svc := range m.services[res.Graph.Namespace] {
		if slices.Contains(res.Enroll, svc.Name) {
			svc.Labels = mergeLabels(svc.Labels, map[string]string{semantics.LabelUseWaypoint: res.WaypointName})
		}
	}
}

func mergeLabels(a, b map[string]string) map[string]string {
	out := make(map[string]string, len(a)+len(b))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

// facts are the compiler's facts about a graph's namespace as the input shows it: its labels, its
// Services, its waypoints, and the data plane of each local service's workloads.
func (w *World) facts(sg *v1alpha1.ServiceGraph, m *meshObjects) compiler.Facts {
	f := compiler.Facts{NamespaceLabels: w.cluster.Namespaces[sg.Namespace], Waypoints: map[string]compiler.WaypointFacts{},
		Dataplanes: map[string]semantics.Dataplane{}}
	for _, svc := range m.services[sg.Namespace] {
		f.Services = append(f.Services, compiler.KubeServiceOf(svc))
	}
	for _, gw := range m.gateways[sg.Namespace] {
		f.Waypoints[gw.Name] = compiler.WaypointFacts{Ready: m.offline || len(gw.Status.Addresses) > 0, ServiceAccount: waypointAccount(gw)}
	}
	if g, err := graph.Build(sg); err == nil {
		f.NamedPorts = map[string]map[string]int32{}
		for i := range g.Services {
			if s := &g.Services[i]; g.Local(s) {
				if d, ok := w.dataplaneOf(s); ok {
					f.Dataplanes[s.Name] = d
				}
				f.NamedPorts[s.Name] = w.namedPorts(s)
			}
		}
	}
	return f
}

// namedPorts are the named container ports of a service's workloads.
func (w *World) namedPorts(s *graph.Service) map[string]int32 {
	out := map[string]int32{}
	for _, wl := range w.workloads {
		if wl.Namespace == s.Namespace && compiler.Selects(s.Labels, wl.Labels) {
			for _, p := range wl.Ports {
				if p.Name != "" {
					out[p.Name] = p.ContainerPort
				}
			}
		}
	}
	return out
}

// dataplaneOf is a service's data plane from the input's workloads: ambient when one of them is, a
// sidecar when one is meshed, none otherwise; false without workloads.
func (w *World) dataplaneOf(s *graph.Service) (semantics.Dataplane, bool) {
	found := false
	d := semantics.DataplaneNone
	for _, wl := range w.workloads {
		if wl.Namespace != s.Namespace || !compiler.Selects(s.Labels, wl.Labels) {
			continue
		}
		found = true
		switch {
		case wl.Meshed && wl.Dataplane == semantics.DataplaneAmbient:
			return semantics.DataplaneAmbient, true
		case wl.Meshed:
			d = semantics.DataplaneSidecar
		}
	}
	return d, found
}

func waypointAccount(gw *gatewayv1.Gateway) string {
	if sa := gw.Annotations[semantics.AnnotationWaypointServiceAccount]; sa != "" {
		return sa
	}
	return gw.Name
}

// ambientDataplane marks a meshed workload in ambient mode: its pods are, or will be, captured by
// ztunnel rather than given a sidecar.
func ambientDataplane(wl *eval.Workload, namespaceLabels, podAnnotations map[string]string, sidecar bool) {
	if wl.Meshed && semantics.PodDataplane(namespaceLabels, wl.Labels, podAnnotations, sidecar) == semantics.DataplaneAmbient {
		wl.Dataplane = semantics.DataplaneAmbient
	}
}

// attachWaypoints gives each workload in ambient mode the waypoint its Services go through, when
// that waypoint exists: traffic addressed to the Services then passes it.
func (w *World) attachWaypoints(m *meshObjects) {
	for _, wl := range w.workloads {
		if wl.Dataplane != semantics.DataplaneAmbient {
			continue
		}
		var services []string
		ports := map[int32]int32{}
		name := ""
		for _, svc := range m.services[wl.Namespace] {
			if !compiler.Selects(svc.Spec.Selector, wl.Labels) {
				continue
			}
			n, ns := semantics.Waypoint(svc.Namespace, svc.Labels, w.cluster.Namespaces[wl.Namespace])
			if n == "" || ns != wl.Namespace {
				continue
			}
			name = n
			services = append(services, svc.Name)
			for _, p := range svc.Spec.Ports {
				if t := compiler.TargetPort(compiler.KubeServicePort{Port: p.Port, TargetPort: p.TargetPort}); t.Type == intstr.Int {
					ports[t.IntVal] = p.Port
				}
			}
		}
		gw := m.waypoint(wl.Namespace, name)
		if gw == nil {
			continue
		}
		wl.Waypoint = &eval.Waypoint{Name: name, Pods: w.waypointPods(gw), Services: services, ServicePorts: ports}
	}
}

// waypoint is a namespace's waypoint of that name when it exists (and, live, is ready: Istio
// sends nothing through one without an address).
func (m *meshObjects) waypoint(namespace, name string) *gatewayv1.Gateway {
	for _, gw := range m.gateways[namespace] {
		if gw.Name == name && (m.offline || len(gw.Status.Addresses) > 0) {
			return gw
		}
	}
	return nil
}

// waypointPods are the waypoint's pods of the input, or pods made like Istio's: labelled with the
// Gateway's name, running as its ServiceAccount.
func (w *World) waypointPods(gw *gatewayv1.Gateway) *eval.Workload {
	for _, wl := range w.workloads {
		if wl.Namespace == gw.Namespace && wl.Labels[semantics.LabelGatewayName] == gw.Name {
			return wl
		}
	}
	return &eval.Workload{Namespace: gw.Namespace, Name: gw.Name, Labels: map[string]string{semantics.LabelGatewayName: gw.Name},
		ServiceAccount: waypointAccount(gw), Meshed: true}
}
