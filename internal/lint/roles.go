package lint

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/servicegraph/servicegraph-operator/internal/object"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Roles: what the input says a workload's pods are for, and the openings that role needs. A
// webhook or API backend must be reachable by the API server, which is no pod (so from anywhere,
// and in plain text for Istio); istiod by every sidecar; a gateway or public front end by
// anyone; a metrics endpoint by the cluster's Prometheus. An opening no wider than its pods' roles
// need is reported as a note saying why it is fine; a wider one keeps its severity and says what
// the role needed.

// reach is how far an opening lets callers come from.
type reach int

const (
	// reachCluster: pods of any namespace.
	reachCluster reach = iota + 1
	// reachAnywhere: any address, in the cluster and out.
	reachAnywhere
)

func (r reach) String() string {
	if r == reachAnywhere {
		return "from anywhere"
	}
	return "from the cluster"
}

// anyPort in a need stands for every port of the pods (a gateway whose ports the input does not
// say).
var anyPort = intstr.FromInt32(0)

// need is one opening a role needs: a pod port (a number, or a container port's name) and how far,
// or (egress) the destinations' ports and how far they are.
type need struct {
	port   intstr.IntOrString
	reach  reach
	why    string
	egress bool
}

// opening is what a finding opens: pod ports (nil: every port) to callers from some reach. The
// pods are the object's; Lint sets them.
type opening struct {
	ports []intstr.IntOrString
	reach reach
	// pods selects the pods it applies to; nil selects every pod of the namespace.
	pods labels.Selector
	// egress: the pods may call out (to destinations on ports), rather than be called.
	egress bool
}

// roleIndex holds the input's evidence of roles.
type roleIndex struct {
	workloads map[string][]*corev1.PodTemplate
	services  map[string][]*corev1.Service
	evidence  []*unstructured.Unstructured
}

func newRoleIndex(objs []Object) *roleIndex {
	ri := &roleIndex{workloads: map[string][]*corev1.PodTemplate{}, services: map[string][]*corev1.Service{}}
	for _, o := range objs {
		switch x := o.Object.(type) {
		case *corev1.PodTemplate:
			ri.workloads[x.Namespace] = append(ri.workloads[x.Namespace], x)
		case *corev1.Service:
			ri.services[x.Namespace] = append(ri.services[x.Namespace], x)
		case *unstructured.Unstructured:
			ri.evidence = append(ri.evidence, x)
		}
	}
	return ri
}

// pods are the pods an opening applies to: the namespace's workloads it selects; without any in
// the input (an operator may make them, as Prometheus's), the pods its Services select (a
// Service's selector is a subset of its pods' labels); without those, pods labelled as the
// selector says (for the well-known labels of Istio and monitoring components).
func (ri *roleIndex) pods(namespace string, sel labels.Selector) []*corev1.PodTemplate {
	matches := func(l map[string]string) bool { return sel == nil || sel.Matches(labels.Set(l)) }
	var out []*corev1.PodTemplate
	for _, w := range ri.workloads[namespace] {
		if matches(w.Template.Labels) {
			out = append(out, w)
		}
	}
	if len(out) > 0 {
		return out
	}
	for _, svc := range ri.services[namespace] {
		if len(svc.Spec.Selector) > 0 && matches(svc.Spec.Selector) {
			out = append(out, &corev1.PodTemplate{Template: corev1.PodTemplateSpec{}})
			out[len(out)-1].Namespace, out[len(out)-1].Template.Labels = namespace, svc.Spec.Selector
		}
	}
	if len(out) == 0 && sel != nil {
		if req, ok := sel.Requirements(); ok {
			l := map[string]string{}
			for _, r := range req {
				if v, ok := r.Values().PopAny(); ok && r.Values().Len() == 1 {
					l[r.Key()] = v
				}
			}
			if len(l) > 0 {
				p := &corev1.PodTemplate{}
				p.Namespace, p.Template.Labels = namespace, l
				out = append(out, p)
			}
		}
	}
	return out
}

// judge tells whether the roles of every pod of the opening need all it opens, and the needs that
// say so (or, when it opens more, the needs there are).
func (ri *roleIndex) judge(namespace string, op opening) (covered bool, needs []need) {
	pods := ri.pods(namespace, op.pods)
	if len(pods) == 0 {
		return false, nil
	}
	covered = true
	for _, p := range pods {
		pn := ri.needsOf(p)
		needs = append(needs, pn...)
		if len(pn) == 0 {
			covered = false
			continue
		}
		if op.ports == nil {
			covered = covered && slices.ContainsFunc(pn, func(n need) bool { return n.egress == op.egress && n.port == anyPort && n.reach >= op.reach })
			continue
		}
		for _, port := range op.ports {
			if !slices.ContainsFunc(pn, func(n need) bool { return n.egress == op.egress && n.reach >= op.reach && samePort(p, n.port, port) }) {
				covered = false
			}
		}
	}
	return covered, needs
}

// samePort tells whether a need's port is an opened port: equal, or a container port's name and
// its number.
func samePort(p *corev1.PodTemplate, need, opened intstr.IntOrString) bool {
	if need == anyPort || need == opened {
		return true
	}
	return resolve(p, need) != 0 && resolve(p, need) == resolve(p, opened)
}

// resolve is a pod port's number: a number, or the number of the container port so named.
func resolve(p *corev1.PodTemplate, port intstr.IntOrString) int32 {
	if port.Type == intstr.Int {
		return port.IntVal
	}
	for _, c := range p.Template.Spec.Containers {
		for _, cp := range c.Ports {
			if cp.Name == port.StrVal {
				return cp.ContainerPort
			}
		}
	}
	return 0
}

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
	if port := p.Template.Annotations["prometheus.io/port"]; port != "" {
		out = append(out, need{port: portOf(port), reach: reachCluster, why: "metrics endpoint (annotation prometheus.io/port: " + port + ")"})
	}
	out = append(out, podMonitorNeeds(ri.evidence, p)...)
	out = append(out, istioNeeds(ri, p)...)
	return out
}

// serviceNeeds are the openings a Service's pods need for what the input says the Service is.
func (ri *roleIndex) serviceNeeds(svc *corev1.Service) []need {
	var out []need
	name := "Service " + svc.Namespace + "/" + svc.Name
	for _, sp := range svc.Spec.Ports {
		target := sp.TargetPort
		if target.IntVal == 0 && target.StrVal == "" {
			target = intstr.FromInt32(sp.Port)
		}
		add := func(r reach, what string) {
			out = append(out, need{port: target, reach: r, why: fmt.Sprintf("%s (%s port %d → pod port %s)", what, name, sp.Port, target.String())})
		}
		if svc.Spec.Type == corev1.ServiceTypeLoadBalancer || svc.Spec.Type == corev1.ServiceTypeNodePort {
			add(reachAnywhere, "public front end: a "+string(svc.Spec.Type))
		}
		for _, ev := range ri.evidence {
			for _, ref := range serviceRefs(ev) {
				if ref.namespace == svc.Namespace && ref.name == svc.Name && ref.matches(sp) {
					add(reachAnywhere, ref.role+" of "+ev.GetKind()+" "+ev.GetName())
				}
			}
			if serviceMonitorSelects(ev, svc, sp) {
				add(reachCluster, "metrics endpoint of ServiceMonitor "+ev.GetNamespace()+"/"+ev.GetName())
			}
		}
		if port := svc.Annotations["prometheus.io/port"]; port != "" && portOf(port) == intstr.FromInt32(sp.Port) {
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
		return []serviceRef{{ns, name, role, intstr.FromInt32(int32(port))}}
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
			out = append(out, serviceRef{ev.GetNamespace(), b.name, "public front end: a backend", port})
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
	any, _, _ := unstructured.NestedBool(ev.Object, "spec", "namespaceSelector", "any")
	names, _, _ := unstructured.NestedStringSlice(ev.Object, "spec", "namespaceSelector", "matchNames")
	if !any && !slices.Contains(names, namespace) && !(len(names) == 0 && ev.GetNamespace() == namespace) {
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
			number, hasNumber, _ := unstructured.NestedInt64(asMap(e), "portNumber")
			target := intstr.FromString(port)
			if hasNumber {
				target = intstr.FromInt32(int32(number))
			}
			if port != "" || hasNumber {
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
	case strings.HasSuffix(l["istio"], "gateway") || l["gateway.networking.k8s.io/gateway-name"] != "" || l["istio.io/gateway-name"] != "":
		why := "gateway: it takes traffic from outside the mesh (labels " + labels.Set(l).String() + ")"
		ports := gatewayListenerPorts(ri.evidence, p)
		if len(ports) == 0 {
			ports = []intstr.IntOrString{anyPort}
		}
		for _, port := range ports {
			out = append(out, need{port: port, reach: reachAnywhere, why: why})
		}
		out = append(out, need{port: intstr.FromInt32(15021), reach: reachAnywhere, why: "gateway health checks from the load balancer"})
	}
	if what := callsOut[cmp.Or(l["app.kubernetes.io/name"], l["app"])]; what != "" {
		out = append(out, need{port: anyPort, reach: reachAnywhere, egress: true, why: what + " (label " + labels.Set(l).String() + ")"})
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

func istiodLabel(l map[string]string) string {
	if l["app"] == "istiod" {
		return "app=istiod"
	}
	return "istio=pilot"
}

// gatewayListenerPorts are the listener ports of the Gateway API Gateway a gateway's pods are
// deployed for.
func gatewayListenerPorts(evidence []*unstructured.Unstructured, p *corev1.PodTemplate) []intstr.IntOrString {
	name := p.Template.Labels["gateway.networking.k8s.io/gateway-name"]
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

// portOf reads a port annotation: a number, else a name.
func portOf(s string) intstr.IntOrString {
	if n, err := strconv.Atoi(s); err == nil {
		return intstr.FromInt32(int32(n))
	}
	return intstr.FromString(s)
}

// describeNeeds says, once each, what the roles need.
func describeNeeds(needs []need) string {
	var parts []string
	for _, n := range needs {
		port := "every port"
		if n.port != anyPort {
			port = "port " + n.port.String()
		}
		if s := port + " " + n.reach.String() + ": " + n.why; !slices.Contains(parts, s) {
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, "; ")
}

// weigh turns the problems whose opening the object's pods' roles need into notes that say why,
// and adds to the others what the roles needed.
func (ri *roleIndex) weigh(obj object.Object, problems []problem) []problem {
	for i, p := range problems {
		if p.opening == nil || p.severity == SeverityNote {
			continue
		}
		op := *p.opening
		op.pods, _ = policySelector(obj)
		covered, needs := ri.judge(obj.GetNamespace(), op)
		switch {
		case covered:
			problems[i].severity = SeverityNote
			problems[i].message += "; its role needs it, " + describeNeeds(opened(needs, op))
		case len(needs) > 0:
			problems[i].message += "; it opens more than its role needs, which is " + describeNeeds(needs)
		}
	}
	return problems
}

// opened are the needs an opening meets.
func opened(needs []need, op opening) []need {
	return slices.DeleteFunc(slices.Clone(needs), func(n need) bool {
		return n.egress != op.egress || n.reach < op.reach || op.ports != nil && n.port != anyPort && !slices.ContainsFunc(op.ports, func(port intstr.IntOrString) bool {
			return n.port == port || n.port.Type != port.Type
		})
	})
}
