package controllers

import (
	"context"
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/compiler"
	"github.com/servicegraph/servicegraph-operator/internal/graph"
	"github.com/servicegraph/servicegraph-operator/internal/semantics"
)

// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=services,verbs=get;patch

// WaypointFieldOwner is the field manager of the istio.io/use-waypoint label the operator puts on
// Services when a graph creates its waypoint: the label only, so removing it touches nothing else.
const WaypointFieldOwner = FieldOwner + "-waypoint"

// ambientFacts gathers what the compiler needs for services in ambient mode: the namespace's
// labels, each local service's data plane (from its pods' marks), the ports the kubelet probes
// ambient pods on (read from the pods' specs, only when a service is in ambient mode) and the
// namespace's waypoints (when the Gateway API is served).
func (r *ServiceGraphReconciler) ambientFacts(ctx context.Context, sg *v1alpha1.ServiceGraph, facts *compiler.Facts, pods []metav1.PartialObjectMetadata) error {
	var ns corev1.Namespace
	if err := r.Get(ctx, client.ObjectKey{Name: sg.Namespace}, &ns); client.IgnoreNotFound(err) != nil {
		return err
	}
	facts.NamespaceLabels = ns.Labels
	g, err := graph.Build(sg)
	if err != nil {
		return nil // the compiler reports it
	}
	facts.Dataplanes = map[string]semantics.Dataplane{}
	var ambient []*graph.Service
	selected := matchPods(g.Services, pods) // indexed: every pod against every service is quadratic
	for i := range g.Services {
		svc := &g.Services[i]
		if !g.Local(svc) {
			continue
		}
		if d, ok := serviceDataplane(selected.byService[i], ns.Labels); ok {
			facts.Dataplanes[svc.Name] = d
		}
		if d, ok := facts.Dataplanes[svc.Name]; d == semantics.DataplaneAmbient || !ok && semantics.NamespaceDataplane(ns.Labels) == semantics.DataplaneAmbient {
			ambient = append(ambient, svc)
		}
	}
	if len(ambient) == 0 && sg.Spec.Waypoint == nil {
		return nil
	}
	if facts.ProbePorts, facts.NamedPorts, err = r.podPorts(ctx, sg.Namespace, ambient); err != nil {
		return err
	}
	if slices.Contains(facts.Missing, compiler.Waypoints.GroupKind()) {
		return nil
	}
	facts.Waypoints, err = r.waypoints(ctx, sg.Namespace)
	return err
}

// serviceDataplane is a service's data plane from the pods it selects: ambient when one of them
// is (the ambient shape of its policies also serves sidecar pods), else a sidecar when one has
// one, else none; false when it has no pods.
func serviceDataplane(pods []metav1.PartialObjectMetadata, namespaceLabels map[string]string) (semantics.Dataplane, bool) {
	var seen []semantics.Dataplane
	for _, p := range pods {
		seen = append(seen, semantics.PodDataplane(namespaceLabels, p.Labels, p.Annotations, false))
	}
	for _, d := range []semantics.Dataplane{semantics.DataplaneAmbient, semantics.DataplaneSidecar, semantics.DataplaneNone} {
		if slices.Contains(seen, d) {
			return d, true
		}
	}
	return "", false
}

// podPorts reads, from the pods of the ambient services, the ports their probes reach and their
// named container ports.
func (r *ServiceGraphReconciler) podPorts(ctx context.Context, namespace string, services []*graph.Service) (map[string][]intstr.IntOrString, map[string]map[string]int32, error) {
	if len(services) == 0 {
		return nil, nil, nil
	}
	var list corev1.PodList
	if err := r.APIReader.List(ctx, &list, client.InNamespace(namespace)); err != nil {
		return nil, nil, err
	}
	probes, named := map[string][]intstr.IntOrString{}, map[string]map[string]int32{}
	for _, svc := range services {
		for i := range list.Items {
			p := &list.Items[i]
			if !compiler.Selects(svc.Labels, p.Labels) {
				continue
			}
			probes[svc.Name] = append(probes[svc.Name], probedPorts(&p.Spec)...)
			for _, c := range append(slices.Clone(p.Spec.InitContainers), p.Spec.Containers...) {
				for _, port := range c.Ports {
					if port.Name != "" {
						if named[svc.Name] == nil {
							named[svc.Name] = map[string]int32{}
						}
						named[svc.Name][port.Name] = port.ContainerPort
					}
				}
			}
		}
	}
	return probes, named, nil
}

// probedPorts are the ports of a pod's liveness, readiness and startup probes.
func probedPorts(spec *corev1.PodSpec) []intstr.IntOrString {
	var out []intstr.IntOrString
	for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
		for _, p := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe, c.StartupProbe} {
			switch {
			case p == nil:
			case p.HTTPGet != nil:
				out = append(out, p.HTTPGet.Port)
			case p.TCPSocket != nil:
				out = append(out, p.TCPSocket.Port)
			case p.GRPC != nil:
				out = append(out, intstr.FromInt32(p.GRPC.Port))
			}
		}
	}
	return out
}

// waypoints reads the namespace's waypoints: Gateways of class istio-waypoint, ready once they have
// an address, with their pods' ServiceAccount. They are the user's as often as the operator's, so
// they are read around the cache (which holds the operator's own objects only).
func (r *ServiceGraphReconciler) waypoints(ctx context.Context, namespace string) (map[string]compiler.WaypointFacts, error) {
	var list gatewayv1.GatewayList
	if err := r.APIReader.List(ctx, &list, client.InNamespace(namespace)); err != nil {
		return nil, err
	}
	out := map[string]compiler.WaypointFacts{}
	for _, gw := range list.Items {
		if gw.Spec.GatewayClassName != semantics.WaypointClass {
			continue
		}
		sa := gw.Annotations[semantics.AnnotationWaypointServiceAccount]
		if sa == "" {
			sa = gw.Name
		}
		out[gw.Name] = compiler.WaypointFacts{Ready: len(gw.Status.Addresses) > 0, ServiceAccount: sa}
	}
	return out, nil
}

// enroll labels the Services a graph's waypoint must serve istio.io/use-waypoint, and takes the
// label back from those it labelled that no longer need it. The label is applied with a field
// manager of its own, so nothing else of the Service is touched.
func (r *ServiceGraphReconciler) enroll(ctx context.Context, sg *v1alpha1.ServiceGraph, d *compiler.Result, services []compiler.KubeService) error {
	for _, name := range d.Enroll {
		ac := corev1ac.Service(name, sg.Namespace).WithLabels(map[string]string{semantics.LabelUseWaypoint: d.WaypointName})
		if err := r.Apply(ctx, ac, client.FieldOwner(WaypointFieldOwner), client.ForceOwnership); err != nil {
			return err
		}
	}
	mine := d.WaypointName
	if mine == "" {
		mine = compiler.DefaultWaypointName
		if w := sg.Spec.Waypoint; w != nil && w.Name != "" {
			mine = w.Name
		}
	}
	for _, ks := range services {
		if ks.Labels[semantics.LabelUseWaypoint] != mine || slices.Contains(d.Enroll, ks.Name) {
			continue
		}
		var svc corev1.Service
		if err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: ks.Namespace, Name: ks.Name}, &svc); err != nil {
			return client.IgnoreNotFound(err)
		}
		if !slices.ContainsFunc(svc.ManagedFields, func(m metav1.ManagedFieldsEntry) bool { return m.Manager == WaypointFieldOwner }) {
			continue // the user's label
		}
		if err := r.Apply(ctx, corev1ac.Service(ks.Name, ks.Namespace), client.FieldOwner(WaypointFieldOwner), client.ForceOwnership); err != nil {
			return err
		}
	}
	return nil
}

// namespaceDataplaneChanged passes the namespace updates that change the data plane or waypoint of
// its pods and Services.
var namespaceDataplaneChanged = predicate.Funcs{
	CreateFunc: func(event.CreateEvent) bool { return false },
	DeleteFunc: func(event.DeleteEvent) bool { return false },
	UpdateFunc: func(e event.UpdateEvent) bool {
		for _, k := range []string{semantics.LabelDataplaneMode, semantics.LabelUseWaypoint, semantics.LabelUseWaypointNamespace, "istio-injection", "istio.io/rev"} {
			if e.ObjectOld.GetLabels()[k] != e.ObjectNew.GetLabels()[k] {
				return true
			}
		}
		return false
	},
}

// graphsOfNamespaceObject enqueues the graphs of the namespace an event is about.
func (r *ServiceGraphReconciler) graphsOfNamespaceObject(ctx context.Context, obj client.Object) []reconcile.Request {
	return r.graphsIn(ctx, obj.GetName(), "")
}

// namespaceLabelsOnly keeps of a namespace only its name and labels in the cache.
func namespaceLabelsOnly(obj any) (any, error) {
	ns, ok := obj.(*corev1.Namespace)
	if !ok {
		return obj, nil
	}
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns.Name, UID: ns.UID, ResourceVersion: ns.ResourceVersion, Labels: ns.Labels}}, nil
}
