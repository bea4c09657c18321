package eval

import (
	"cmp"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	securityv1beta1 "istio.io/api/security/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/compiler"
	"github.com/servicegraph/servicegraph-operator/internal/graph"
	"github.com/servicegraph/servicegraph-operator/internal/object"
)

// Widening is a policy someone else wrote that lets through, in one layer, a connection the
// graph's own objects refuse there.
type Widening struct {
	// Object is "Kind namespace/name".
	Object string `json:"object"`
	// Layer is L4 (NetworkPolicies), mTLS (PeerAuthentications) or authorization.
	Layer string `json:"layer"`
	// Example is one connection the object opens.
	Example string `json:"example"`
}

func (w Widening) String() string {
	return fmt.Sprintf("%s opens %s at %s", w.Object, w.Example, w.Layer)
}

// GraphWidenings judges the foreign policies of a compiled graph's namespace against its objects,
// the namespace running the graph's local services and the pods no service selects (known by
// their labels and whether Istio injected them). The operator and the linter both ask it.
func GraphWidenings(d *compiler.Result, trustDomain string, pods []metav1.PartialObjectMetadata, foreign *Cluster) []Widening {
	base := &Cluster{TrustDomain: trustDomain}
	for _, obj := range d.Objects() {
		base.Add(obj)
	}
	g := d.Graph
	var workloads []*Workload
	for i := range g.Services {
		if s := &g.Services[i]; g.Local(s) {
			workloads = append(workloads, &Workload{Namespace: s.Namespace, Name: s.Name, Labels: s.Labels, ServiceAccount: s.ServiceAccount,
				Meshed: g.Mesh == v1alpha1.MeshIstio})
		}
	}
	for _, p := range pods {
		if p.Namespace != g.Namespace || slices.ContainsFunc(g.Services, func(s graph.Service) bool { return g.Local(&s) && compiler.Selects(s.Labels, p.Labels) }) {
			continue
		}
		workloads = append(workloads, &Workload{Namespace: p.Namespace, Name: p.Name, Labels: p.Labels,
			Meshed: object.IstioMarked(p.Annotations)})
	}
	return Widenings(base, g.Namespace, workloads, foreign)
}

// Widenings judges each foreign policy of a graph's namespace on its own: added to the graph's
// objects, does it let through, in its layer, a connection they refuse there? Foreign DENY
// policies and policies that only narrow never do. The connections asked about are built from
// the namespace's workloads, the graph's ports and what the policy itself names (its selectors,
// peers, addresses, principals, ports and paths), plus strangers: a pod of another namespace, with
// and without a sidecar, and an address outside the cluster.
func Widenings(graph *Cluster, namespace string, workloads []*Workload, foreign *Cluster) []Widening {
	j := &judge{graph: graph, namespace: namespace, ports: graphPorts(graph)}
	for _, w := range workloads {
		if w.Namespace == namespace {
			j.local = append(j.local, w)
		}
	}
	var out []Widening
	for _, np := range foreign.NetworkPolicies {
		if np.Namespace == namespace {
			out = appendIf(out, j.networkPolicy(np))
		}
	}
	for _, pa := range foreign.PeerAuthentications {
		if pa.Namespace == namespace {
			out = appendIf(out, j.peerAuthentication(pa))
		}
	}
	for _, ap := range foreign.AuthorizationPolicies {
		if ap.Namespace == namespace {
			out = appendIf(out, j.authorizationPolicy(ap))
		}
	}
	slices.SortFunc(out, func(a, b Widening) int { return cmp.Compare(a.Object, b.Object) })
	return out
}

func appendIf(out []Widening, w *Widening) []Widening {
	if w == nil {
		return out
	}
	return append(out, *w)
}

// judge asks the connections of one foreign object of a namespace.
type judge struct {
	graph     *Cluster
	namespace string
	local     []*Workload
	ports     []int32
}

// Strangers: what no rule written for the graph's callers should admit.
var (
	strangerNamespace = "another-namespace"
	outsideAddress    = "203.0.113.7" // TEST-NET-3: an address no cluster uses
)

func (j *judge) strangers() []Endpoint {
	meshed := &Workload{Namespace: strangerNamespace, Name: "any-pod", ServiceAccount: "default", Meshed: true}
	unmeshed := &Workload{Namespace: strangerNamespace, Name: "any-pod-without-sidecar"}
	sameNamespace := &Workload{Namespace: j.namespace, Name: "any-pod", ServiceAccount: "default", Meshed: true}
	return []Endpoint{{Workload: meshed}, {Workload: unmeshed}, {Workload: sameNamespace}, {IP: outsideAddress}}
}

// probe is one connection to ask about.
type probe struct {
	from       Endpoint
	to         *Workload
	port       int32
	portName   string
	protocol   corev1.Protocol
	http       *HTTP
	namespaces map[string]map[string]string // the synthetic namespaces it needs
}

func (p probe) String() string {
	port := strconv.Itoa(int(p.port))
	if p.portName != "" {
		port = p.portName
	}
	s := fmt.Sprintf("%s -> %s %s/%s", describe(p.from), describeWorkload(p.to), p.protocol, port)
	if p.http != nil {
		s += " " + p.http.Method + " " + p.http.Path
	}
	return s
}

func describe(e Endpoint) string {
	if e.Workload == nil {
		return e.IP + " (outside the cluster)"
	}
	s := describeWorkload(e.Workload)
	if !e.Workload.Meshed {
		s += " (no sidecar)"
	}
	return s
}

func describeWorkload(w *Workload) string {
	if w.Namespace == "" {
		return w.IP + " (outside the cluster)"
	}
	return w.String()
}

// layerAllows reads one layer of a verdict.
func layerAllows(v Verdict, layer string) bool {
	switch layer {
	case "L4":
		return v.Steps[0].Allowed && v.Steps[1].Allowed
	case "mTLS":
		return v.Steps[2].Allowed
	}
	return v.Steps[3].Allowed
}

// first returns the first probe that the layer refuses with the graph's objects alone and admits
// with the object added.
func (j *judge) first(object, layer string, with *Cluster, probes []probe) *Widening {
	for _, p := range probes {
		base, widened := *j.graph, *with
		base.Namespaces = j.namespaces(p)
		widened.Namespaces = base.Namespaces
		r := Request{From: p.from, To: p.to, Port: p.port, PortName: p.portName, Protocol: p.protocol, HTTP: p.http}
		if p.from.Workload != nil && r.From.IP == "" {
			r.From.IP = p.from.Workload.IP
		}
		if !layerAllows(base.Check(r), layer) && layerAllows(widened.Check(r), layer) {
			return &Widening{Object: object, Layer: layer, Example: p.String()}
		}
	}
	return nil
}

func (j *judge) namespaces(p probe) map[string]map[string]string {
	if len(p.namespaces) == 0 {
		return j.graph.Namespaces
	}
	out := maps.Clone(j.graph.Namespaces)
	if out == nil {
		out = map[string]map[string]string{}
	}
	maps.Copy(out, p.namespaces)
	return out
}

// with is the graph's cluster with one more object.
func (j *judge) with(np *networkingv1.NetworkPolicy, pa *securityv1.PeerAuthentication, ap *securityv1.AuthorizationPolicy) *Cluster {
	c := *j.graph
	if np != nil {
		c.NetworkPolicies = append(slices.Clone(c.NetworkPolicies), np)
	}
	if pa != nil {
		c.PeerAuthentications = append(slices.Clone(c.PeerAuthentications), pa)
	}
	if ap != nil {
		c.AuthorizationPolicies = append(slices.Clone(c.AuthorizationPolicies), ap)
	}
	return &c
}

// selected lists the namespace's workloads a selector picks, and a pod made to match it.
func (j *judge) selected(sel *metav1.LabelSelector) []*Workload {
	var out []*Workload
	for _, w := range j.local {
		if sel == nil || selectorMatches(sel, w.Labels) {
			out = append(out, w)
		}
	}
	made := &Workload{Namespace: j.namespace, Name: "pod" + labelText(labelsFor(sel)), Labels: labelsFor(sel), ServiceAccount: "default", Meshed: true}
	return append(out, made)
}

// labelsFor makes labels that a selector matches: matchLabels, the first value of each In, a value
// for each Exists.
func labelsFor(sel *metav1.LabelSelector) map[string]string {
	out := map[string]string{}
	if sel == nil {
		return out
	}
	maps.Copy(out, sel.MatchLabels)
	for _, e := range sel.MatchExpressions {
		switch e.Operator {
		case metav1.LabelSelectorOpIn:
			if len(e.Values) > 0 {
				out[e.Key] = e.Values[0]
			}
		case metav1.LabelSelectorOpExists:
			out[e.Key] = "any"
		}
	}
	return out
}

func labelText(l map[string]string) string {
	if len(l) == 0 {
		return ""
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(l)) {
		parts = append(parts, k+"="+l[k])
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// peer makes an endpoint that a NetworkPolicy peer matches.
func (j *judge) peer(p networkingv1.NetworkPolicyPeer) (Endpoint, map[string]map[string]string, bool) {
	if p.IPBlock != nil {
		ip, ok := addressIn(p.IPBlock.CIDR, p.IPBlock.Except)
		return Endpoint{IP: ip}, nil, ok
	}
	ns, nsLabels := j.namespace, map[string]string(nil)
	if p.NamespaceSelector != nil {
		nsLabels = labelsFor(p.NamespaceSelector)
		ns = nsLabels["kubernetes.io/metadata.name"]
		if ns == "" {
			ns = "namespace" + labelText(nsLabels)
		}
	}
	pod := labelsFor(p.PodSelector)
	w := &Workload{Namespace: ns, Name: "pod" + labelText(pod), Labels: pod, ServiceAccount: "default", Meshed: true}
	if nsLabels == nil {
		return Endpoint{Workload: w}, nil, true
	}
	return Endpoint{Workload: w}, map[string]map[string]string{ns: nsLabels}, true
}

// addressIn picks an address of a block outside its exceptions: the second, the last but one, or
// the one after an exception (the block's own address when it is one).
func addressIn(cidr string, except []string) (string, bool) {
	prefix, err := netip.ParsePrefix(cidr)
	if err != nil {
		return "", false
	}
	prefix = prefix.Masked()
	candidates := []netip.Addr{prefix.Addr()} // a single address
	if prefix.Bits() < prefix.Addr().BitLen() {
		candidates = []netip.Addr{prefix.Addr().Next(), lastAddr(prefix).Prev()} // not a network's own address
	}
	for _, e := range except {
		if ex, err := netip.ParsePrefix(e); err == nil {
			candidates = append(candidates, lastAddr(ex.Masked()).Next())
		}
	}
	for _, a := range candidates {
		if a.IsValid() && ipInBlock(a.String(), &networkingv1.IPBlock{CIDR: cidr, Except: except}) {
			return a.String(), true
		}
	}
	return "", false
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := range b {
		if bit := i * 8; bit+8 > p.Bits() {
			keep := max(0, p.Bits()-bit)
			b[i] |= byte(0xff >> keep)
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// graphPorts lists the numbered ports the graph's NetworkPolicies name: the ports a foreign rule
// for every port would most plausibly be used on.
func graphPorts(c *Cluster) []int32 {
	var out []int32
	for _, np := range c.NetworkPolicies {
		for _, r := range np.Spec.Ingress {
			for _, p := range r.Ports {
				if p.Port != nil && p.Port.StrVal == "" {
					out = append(out, p.Port.IntVal)
				}
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// portSet is what to probe a destination on: the ports a rule names, or, for a rule on every port,
// the destination's container ports, the graph's ports and port 1, which nothing else uses.
type portSet []probePort

type probePort struct {
	port     int32
	name     string
	protocol corev1.Protocol
}

func (j *judge) allPorts(to *Workload) portSet {
	var out portSet
	for _, p := range to.Ports {
		out = append(out, probePort{port: p.ContainerPort, protocol: cmp.Or(p.Protocol, corev1.ProtocolTCP)})
	}
	for _, p := range append(slices.Clone(j.ports), 1) {
		out = append(out, probePort{port: p, protocol: corev1.ProtocolTCP})
	}
	return out
}

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

func (j *judge) networkPolicy(np *networkingv1.NetworkPolicy) *Widening {
	var probes []probe
	subjects := j.selected(&np.Spec.PodSelector)
	if isolates(np, Ingress) {
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
	if isolates(np, Egress) {
		for _, rule := range np.Spec.Egress {
			for _, dst := range j.destinations(rule.To) {
				for _, from := range subjects {
					for _, p := range j.networkPolicyPorts(rule.Ports, dst.to) {
						probes = append(probes, probe{from: Endpoint{Workload: from}, to: dst.to, port: p.port, portName: p.name, protocol: p.protocol, namespaces: dst.namespaces})
					}
				}
			}
		}
	}
	return j.first(fmt.Sprintf("NetworkPolicy %s/%s", np.Namespace, np.Name), "L4", j.with(np, nil, nil), probes)
}

type source struct {
	Endpoint
	namespaces map[string]map[string]string
}

// sources lists the endpoints an ingress rule's peers match (every stranger when it names none),
// then the namespace's own workloads.
func (j *judge) sources(peers []networkingv1.NetworkPolicyPeer) []source {
	var out []source
	if len(peers) == 0 {
		for _, s := range j.strangers() {
			out = append(out, source{Endpoint: s})
		}
	}
	for _, p := range peers {
		if e, ns, ok := j.peer(p); ok {
			out = append(out, source{Endpoint: e, namespaces: ns})
		}
	}
	for _, w := range j.local {
		out = append(out, source{Endpoint: Endpoint{Workload: w, IP: w.IP}})
	}
	return out
}

type destination struct {
	to         *Workload
	namespaces map[string]map[string]string
}

// destinations lists what an egress rule's peers match (a stranger pod and an outside address when
// it names none); an address is a workload without a namespace.
func (j *judge) destinations(peers []networkingv1.NetworkPolicyPeer) []destination {
	var out []destination
	if len(peers) == 0 {
		for _, s := range j.strangers() {
			if s.Workload == nil {
				out = append(out, destination{to: &Workload{IP: s.IP}})
			} else if s.Workload.Namespace != j.namespace {
				out = append(out, destination{to: s.Workload})
			}
		}
	}
	for _, p := range peers {
		e, ns, ok := j.peer(p)
		switch {
		case !ok:
		case e.Workload == nil:
			out = append(out, destination{to: &Workload{IP: e.IP}})
		default:
			out = append(out, destination{to: e.Workload, namespaces: ns})
		}
	}
	for _, w := range j.local {
		out = append(out, destination{to: w})
	}
	return out
}

func (j *judge) peerAuthentication(pa *securityv1.PeerAuthentication) *Widening {
	var sel *metav1.LabelSelector
	if m := pa.Spec.GetSelector().GetMatchLabels(); len(m) > 0 {
		sel = &metav1.LabelSelector{MatchLabels: m}
	}
	unmeshed := []Endpoint{{Workload: &Workload{Namespace: strangerNamespace, Name: "any-pod-without-sidecar"}}, {IP: outsideAddress}}
	var probes []probe
	for _, to := range j.selected(sel) {
		ports := j.allPorts(to)
		for port := range pa.Spec.GetPortLevelMtls() {
			ports = append(ports, probePort{port: int32(port), protocol: corev1.ProtocolTCP})
		}
		slices.SortFunc(ports, func(a, b probePort) int { return cmp.Compare(a.port, b.port) })
		for _, from := range unmeshed {
			for _, p := range ports {
				probes = append(probes, probe{from: from, to: to, port: p.port, protocol: p.protocol})
			}
		}
	}
	return j.first(fmt.Sprintf("PeerAuthentication %s/%s", pa.Namespace, pa.Name), "mTLS", j.with(nil, pa, nil), probes)
}

func (j *judge) authorizationPolicy(ap *securityv1.AuthorizationPolicy) *Widening {
	if ap.Spec.GetAction() != securityv1beta1.AuthorizationPolicy_ALLOW || ap.Spec.GetTargetRef() != nil || len(ap.Spec.GetTargetRefs()) > 0 {
		return nil // DENY, AUDIT and CUSTOM never admit more; targetRef policies apply to waypoints
	}
	var sel *metav1.LabelSelector
	if m := ap.Spec.GetSelector().GetMatchLabels(); len(m) > 0 {
		sel = &metav1.LabelSelector{MatchLabels: m}
	}
	var probes []probe
	for _, rule := range ap.Spec.GetRules() {
		sources := j.istioSources(rule.GetFrom())
		for _, to := range j.selected(sel) {
			for _, op := range operations(rule.GetTo()) {
				ports := j.allPorts(to)
				if len(op.GetPorts()) > 0 {
					ports = nil
					for _, p := range op.GetPorts() {
						if n, err := strconv.Atoi(p); err == nil {
							ports = append(ports, probePort{port: int32(n), protocol: corev1.ProtocolTCP})
						}
					}
				}
				for _, src := range sources {
					for _, p := range ports {
						probes = append(probes, probe{from: src.Endpoint, to: to, port: p.port, protocol: corev1.ProtocolTCP, http: requestOf(op), namespaces: src.namespaces})
					}
				}
			}
		}
	}
	return j.first(fmt.Sprintf("AuthorizationPolicy %s/%s", ap.Namespace, ap.Name), "authorization", j.with(nil, nil, ap), probes)
}

// operations lists a rule's operations; a rule without any matches every request.
func operations(to []*securityv1beta1.Rule_To) []*securityv1beta1.Operation {
	var out []*securityv1beta1.Operation
	for _, t := range to {
		out = append(out, t.GetOperation())
	}
	if len(out) == 0 {
		out = append(out, nil)
	}
	return out
}

// requestOf makes an HTTP request an operation matches, or nil when it names no paths or methods.
func requestOf(op *securityv1beta1.Operation) *HTTP {
	if len(op.GetPaths()) == 0 && len(op.GetMethods()) == 0 && len(op.GetHosts()) == 0 {
		return nil
	}
	h := &HTTP{Path: "/", Method: "GET"}
	if paths := op.GetPaths(); len(paths) > 0 {
		h.Path = strings.Replace(paths[0], "*", "x", 1)
	}
	if methods := op.GetMethods(); len(methods) > 0 && methods[0] != "*" {
		h.Method = methods[0]
	}
	if hosts := op.GetHosts(); len(hosts) > 0 {
		h.Host = strings.Replace(hosts[0], "*", "x", 1)
	}
	return h
}

// istioSources lists the callers a rule's sources match (every stranger when it names none),
// then the namespace's own workloads.
func (j *judge) istioSources(from []*securityv1beta1.Rule_From) []source {
	var out []source
	if len(from) == 0 {
		for _, s := range j.strangers() {
			out = append(out, source{Endpoint: s})
		}
	}
	for _, f := range from {
		s := f.GetSource()
		for _, p := range s.GetPrincipals() {
			ns, sa := principalParts(strings.ReplaceAll(p, "*", "x"))
			out = append(out, source{Endpoint: Endpoint{Workload: &Workload{Namespace: ns, Name: "pod{serviceAccount=" + sa + "}", ServiceAccount: sa, Meshed: true}}})
		}
		for _, ns := range s.GetNamespaces() {
			ns = strings.ReplaceAll(ns, "*", "x")
			out = append(out, source{Endpoint: Endpoint{Workload: &Workload{Namespace: ns, Name: "any-pod", ServiceAccount: "default", Meshed: true}}})
		}
		for _, b := range append(slices.Clone(s.GetIpBlocks()), s.GetRemoteIpBlocks()...) {
			if !strings.Contains(b, "/") {
				b += map[bool]string{true: "/128", false: "/32"}[strings.Contains(b, ":")]
			}
			if ip, ok := addressIn(b, nil); ok {
				out = append(out, source{Endpoint: Endpoint{IP: ip}})
			}
		}
		if len(s.GetPrincipals())+len(s.GetNamespaces())+len(s.GetIpBlocks())+len(s.GetRemoteIpBlocks()) == 0 {
			for _, e := range j.strangers() {
				out = append(out, source{Endpoint: e})
			}
		}
	}
	for _, w := range j.local {
		out = append(out, source{Endpoint: Endpoint{Workload: w, IP: w.IP}})
	}
	return out
}

// principalParts reads TRUST_DOMAIN/ns/NAMESPACE/sa/SERVICEACCOUNT.
func principalParts(p string) (namespace, serviceAccount string) {
	namespace, serviceAccount = strangerNamespace, "default"
	parts := strings.Split(p, "/")
	for i := 0; i+1 < len(parts); i++ {
		switch parts[i] {
		case "ns":
			namespace = parts[i+1]
		case "sa":
			serviceAccount = parts[i+1]
		}
	}
	return namespace, serviceAccount
}
