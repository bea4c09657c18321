package lint

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// The evidence of roles in the input: Services and what points at them (webhook configurations,
// APIServices, CRDs' conversion webhooks, Ingresses, ServiceMonitors), pods' annotations and
// PodMonitors, the well-known labels of Istio's and monitoring components.

// needsOf is every opening the pod's roles need.
func (ri *roleIndex) needsOf(p *corev1.PodTemplate) []need {
	var out []need
	pl := labels.Set(p.Template.Labels)
	for _, svc := range ri.services[p.Namespace] {
		if len(svc.Spec.Selector) == 0 || !labels.SelectorFromSet(svc.Spec.Selector).Matches(pl) {
			continue
		}
		out = append(out, ri.serviceNeeds(svc)...)
	}
	if port, ok := portOf(p.Template.Annotations["prometheus.io/port"]); ok {
		out = append(out, need{port: port, reach: reachCluster, why: "metrics endpoint (annotation prometheus.io/port: " + port.String() + ")"})
	}
	out = append(out, podMonitorNeeds(ri.evidence, p)...)
	out = append(out, istioNeeds(ri, p)...)
	out = append(out, dnsNeeds(p)...)
	return out
}

// dnsNeeds are the openings of the cluster's DNS server, known by its labels (kube-dns, CoreDNS):
// every pod, and every node, looks names up through it on port 53.
func dnsNeeds(p *corev1.PodTemplate) []need {
	l := p.Template.Labels
	name := cmp.Or(l["k8s-app"], l["app.kubernetes.io/name"])
	if name != "kube-dns" && name != "coredns" {
		return nil
	}
	why := "cluster DNS: every pod looks names up through it (label " + labels.Set(l).String() + ")"
	var out []need
	for _, port := range []intstr.IntOrString{intstr.FromInt32(53), intstr.FromString("dns"), intstr.FromString("dns-tcp")} {
		out = append(out, need{port: port, reach: reachCluster, why: why})
	}
	return out
}

// serviceNeeds are the openings a Service's pods need for what the input says the Service is.
func (ri *roleIndex) serviceNeeds(svc *corev1.Service) []need {
	var out []need
	name := "Service " + svc.Namespace + "/" + svc.Name
	for _, sp := range svc.Spec.Ports {
		target := targetOf(sp)
		add := func(r reach, what string) {
			out = append(out, need{port: target, reach: r, why: fmt.Sprintf("%s (%s port %d → pod port %s)", what, name, sp.Port, target.String())})
		}
		if svc.Spec.Type == corev1.ServiceTypeLoadBalancer || svc.Spec.Type == corev1.ServiceTypeNodePort {
			add(reachAnywhere, "public front end: a "+string(svc.Spec.Type))
		}
		for _, ev := range ri.evidence {
			for _, ref := range serviceRefs(ev) {
				if ref.namespace == svc.Namespace && ref.name == svc.Name && ref.matches(sp) {
					add(ref.reach, ref.role+" of "+ev.GetKind()+" "+ev.GetName())
				}
			}
			if serviceMonitorSelects(ev, svc, sp) {
				add(reachCluster, "metrics endpoint of ServiceMonitor "+ev.GetNamespace()+"/"+ev.GetName())
			}
		}
		if port, ok := portOf(svc.Annotations["prometheus.io/port"]); ok && port == intstr.FromInt32(sp.Port) {
			add(reachCluster, "metrics endpoint (annotation prometheus.io/port on "+name+")")
		}
	}
	return out
}

// serviceRef is a Service the API server or an ingress controller calls.
type serviceRef struct {
	namespace, name, role string
	// port is the Service port called (a number, or a name for an Ingress).
	port intstr.IntOrString
	// reach is where the callers are: the API server is no pod, an ingress controller is one.
	reach reach
}

func (r serviceRef) matches(sp corev1.ServicePort) bool {
	return r.port == intstr.FromInt32(sp.Port) || (r.port.Type == intstr.String && r.port.StrVal == sp.Name)
}

// serviceRefs are the Services an evidence object sends callers to: webhooks, API services and
// conversion webhooks (the API server calls them, on port 443 unless they say), Ingress backends.
func serviceRefs(ev *unstructured.Unstructured) []serviceRef {
	ref := func(m map[string]any, role string) []serviceRef {
		ns, _, _ := unstructured.NestedString(m, "namespace")
		name, _, _ := unstructured.NestedString(m, "name")
		port, found, _ := unstructured.NestedInt64(m, "port")
		if !found {
			port = 443
		}
		if name == "" {
			return nil
		}
		return []serviceRef{{ns, name, role, intstr.FromInt32(int32(port)), reachAnywhere}}
	}
	var out []serviceRef
	switch ev.GetKind() {
	case "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration":
		hooks, _, _ := unstructured.NestedSlice(ev.Object, "webhooks")
		for _, h := range hooks {
			if m, ok := h.(map[string]any); ok {
				svc, _, _ := unstructured.NestedMap(m, "clientConfig", "service")
				out = append(out, ref(svc, "webhook backend")...)
			}
		}
	case "APIService":
		svc, _, _ := unstructured.NestedMap(ev.Object, "spec", "service")
		out = append(out, ref(svc, "aggregated API backend")...)
	case "CustomResourceDefinition":
		svc, _, _ := unstructured.NestedMap(ev.Object, "spec", "conversion", "webhook", "clientConfig", "service")
		out = append(out, ref(svc, "conversion webhook backend")...)
	case "Ingress":
		for _, b := range ingressBackends(ev) {
			port := intstr.FromString(b.portName)
			if b.portName == "" {
				port = intstr.FromInt32(int32(b.portNumber))
			}
			out = append(out, serviceRef{ev.GetNamespace(), b.name, "front end: a backend", port, reachCluster})
		}
	}
	return out
}

type backend struct {
	name, portName string
	portNumber     int64
}

// ingressBackends are an Ingress's default backend and its rules' backends.
func ingressBackends(ev *unstructured.Unstructured) []backend {
	var services []map[string]any
	if svc, ok, _ := unstructured.NestedMap(ev.Object, "spec", "defaultBackend", "service"); ok {
		services = append(services, svc)
	}
	rules, _, _ := unstructured.NestedSlice(ev.Object, "spec", "rules")
	for _, r := range rules {
		paths, _, _ := unstructured.NestedSlice(asMap(r), "http", "paths")
		for _, p := range paths {
			if svc, ok, _ := unstructured.NestedMap(asMap(p), "backend", "service"); ok {
				services = append(services, svc)
			}
		}
	}
	var out []backend
	for _, svc := range services {
		b := backend{}
		b.name, _, _ = unstructured.NestedString(svc, "name")
		b.portName, _, _ = unstructured.NestedString(svc, "port", "name")
		b.portNumber, _, _ = unstructured.NestedInt64(svc, "port", "number")
		out = append(out, b)
	}
	return out
}

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

// serviceMonitorSelects tells whether a ServiceMonitor scrapes a port of the Service: it selects
// the Service's labels in its namespaces, and an endpoint names the port (or its target port).
func serviceMonitorSelects(ev *unstructured.Unstructured, svc *corev1.Service, sp corev1.ServicePort) bool {
	if ev.GetKind() != "ServiceMonitor" || !monitorSelects(ev, svc.Namespace, svc.Labels) {
		return false
	}
	endpoints, _, _ := unstructured.NestedSlice(ev.Object, "spec", "endpoints")
	for _, e := range endpoints {
		port, _, _ := unstructured.NestedString(asMap(e), "port")
		target, _, _ := unstructured.NestedFieldNoCopy(asMap(e), "targetPort")
		if port != "" && port == sp.Name || target != nil && fmt.Sprint(target) == sp.TargetPort.String() {
			return true
		}
	}
	return false
}

// monitorSelects tells whether a ServiceMonitor or PodMonitor selects objects with these labels in
// this namespace (its own namespace unless namespaceSelector says otherwise).
func monitorSelects(ev *unstructured.Unstructured, namespace string, l map[string]string) bool {
	anyNamespace, _, _ := unstructured.NestedBool(ev.Object, "spec", "namespaceSelector", "any")
	names, _, _ := unstructured.NestedStringSlice(ev.Object, "spec", "namespaceSelector", "matchNames")
	if !anyNamespace && !slices.Contains(names, namespace) && !(len(names) == 0 && ev.GetNamespace() == namespace) {
		return false
	}
	selMap, _, _ := unstructured.NestedMap(ev.Object, "spec", "selector")
	matchLabels, _, _ := unstructured.NestedStringMap(selMap, "matchLabels")
	if len(matchLabels) == 0 {
		return false // an empty or expression selector: not judged
	}
	return labels.SelectorFromSet(matchLabels).Matches(labels.Set(l))
}

// podMonitorNeeds are the metrics ports PodMonitors of the input scrape on the pod.
func podMonitorNeeds(evidence []*unstructured.Unstructured, p *corev1.PodTemplate) []need {
	var out []need
	for _, ev := range evidence {
		if ev.GetKind() != "PodMonitor" || !monitorSelects(ev, p.Namespace, p.Template.Labels) {
			continue
		}
		endpoints, _, _ := unstructured.NestedSlice(ev.Object, "spec", "podMetricsEndpoints")
		for _, e := range endpoints {
			port, _, _ := unstructured.NestedString(asMap(e), "port")
			number, _, _ := unstructured.NestedInt64(asMap(e), "portNumber")
			target := intstr.FromString(port)
			if number > 0 && number <= 65535 {
				target = intstr.FromInt32(int32(number))
			}
			if target != intstr.FromString("") {
				out = append(out, need{port: target, reach: reachCluster, why: "metrics endpoint of PodMonitor " + ev.GetNamespace() + "/" + ev.GetName()})
			}
		}
	}
	return out
}

// istioNeeds are the openings of Istio's own workloads, known by their labels: istiod serves
// every sidecar (xDS, certificates) and the API server (its webhook); gateways take traffic from
// outside, on the ports of their Services or of their Gateway's listeners.
func istioNeeds(ri *roleIndex, p *corev1.PodTemplate) []need {
	l := p.Template.Labels
	var out []need
	switch {
	case l["app"] == "istiod" || l["istio"] == "pilot":
		// Sidecars connect from every namespace, and VMs and remote clusters from outside.
		for _, port := range []int32{15010, 15012, 15014} {
			out = append(out, need{port: intstr.FromInt32(port), reach: reachAnywhere, why: "istiod: every proxy of the mesh connects to it (label " + istiodLabel(l) + ")"})
		}
		out = append(out, need{port: intstr.FromInt32(15017), reach: reachAnywhere, why: "istiod's webhook: the API server calls it (label " + istiodLabel(l) + ")"})
	case isGateway(ri.evidence, p):
		why := "gateway: it takes traffic from outside the mesh (labels " + labels.Set(l).String() + ")"
		ports := gatewayListenerPorts(ri.evidence, p)
		if len(ports) == 0 {
			out = append(out, need{all: true, reach: reachAnywhere, why: why + "; the input does not say its ports"})
		}
		for _, port := range ports {
			out = append(out, need{port: port, reach: reachAnywhere, why: why})
		}
		out = append(out, need{port: intstr.FromInt32(15021), reach: reachAnywhere, why: "gateway health checks from the load balancer"})
	}
	if what := callsOut[cmp.Or(l["app.kubernetes.io/name"], l["app"])]; what != "" {
		out = append(out, need{all: true, reach: reachAnywhere, egress: true, why: what + " (label " + labels.Set(l).String() + ")"})
	}
	return out
}

// callsOut are the well-known monitoring components whose job is to call any address: a
// scraper, a prober, a notifier, a dashboard's data sources.
var callsOut = map[string]string{
	"prometheus":        "Prometheus scrapes targets in every namespace and outside",
	"alertmanager":      "Alertmanager sends notifications to receivers anywhere",
	"blackbox-exporter": "blackbox exporter probes arbitrary targets",
	"grafana":           "Grafana queries its data sources, wherever they are",
}

// isGateway tells whether the pods are an Istio ingress or east-west gateway: labelled istio=…gateway
// (not an egress gateway, which takes the mesh's traffic out), or deployed for a Gateway API Gateway
// of the input that is no waypoint (a waypoint takes only the mesh's own traffic).
func isGateway(evidence []*unstructured.Unstructured, p *corev1.PodTemplate) bool {
	l := p.Template.Labels
	if v := l["istio"]; strings.HasSuffix(v, "gateway") && !strings.Contains(v, "egress") {
		return true
	}
	name := cmp.Or(l["gateway.networking.k8s.io/gateway-name"], l["istio.io/gateway-name"])
	if name == "" || l["istio.io/waypoint-for"] != "" {
		return false
	}
	return slices.ContainsFunc(evidence, func(ev *unstructured.Unstructured) bool {
		class, _, _ := unstructured.NestedString(ev.Object, "spec", "gatewayClassName")
		return ev.GetKind() == "Gateway" && ev.GetName() == name && ev.GetNamespace() == p.Namespace && class != "istio-waypoint"
	})
}

func istiodLabel(l map[string]string) string {
	if l["app"] == "istiod" {
		return "app=istiod"
	}
	return "istio=pilot"
}

// gatewayListenerPorts are the listener ports of the Gateway API Gateway a gateway's pods are
// deployed for.
func gatewayListenerPorts(evidence []*unstructured.Unstructured, p *corev1.PodTemplate) []intstr.IntOrString {
	name := cmp.Or(p.Template.Labels["gateway.networking.k8s.io/gateway-name"], p.Template.Labels["istio.io/gateway-name"])
	var out []intstr.IntOrString
	for _, ev := range evidence {
		if ev.GetKind() != "Gateway" || ev.GetName() != name || ev.GetNamespace() != p.Namespace {
			continue
		}
		listeners, _, _ := unstructured.NestedSlice(ev.Object, "spec", "listeners")
		for _, l := range listeners {
			if port, ok, _ := unstructured.NestedInt64(asMap(l), "port"); ok {
				out = append(out, intstr.FromInt32(int32(port)))
			}
		}
	}
	return out
}

// targetOf is a Service port's target: its targetPort, or the port itself when unset.
func targetOf(sp corev1.ServicePort) intstr.IntOrString {
	if sp.TargetPort == (intstr.IntOrString{}) {
		return intstr.FromInt32(sp.Port)
	}
	return sp.TargetPort
}
