// Package eval decides, for one connection, what the policies of a cluster do with it, layer by
// layer, and which object and rule decided: the source's egress and the destination's ingress
// NetworkPolicies, the mutual TLS mode Istio's PeerAuthentications put on the destination port,
// and Istio's AuthorizationPolicies (CUSTOM and DENY before ALLOW). It is pure: the caller gives
// the objects and the workloads; `servicegraph check` and `diff`, the widening-policy detection
// and the tests share it.
package eval

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	securityv1beta1 "istio.io/api/security/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// Workload is a pod (or every pod of a workload: they share labels, ServiceAccount and ports). A
// destination without a namespace is an address outside the cluster, known by its IP.
type Workload struct {
	Namespace, Name string
	Labels          map[string]string
	// IP matters only to ipBlock rules; empty for a workload known by labels alone.
	IP             string
	ServiceAccount string
	// Meshed tells whether an Istio sidecar (or ambient) handles its traffic: Istio's policies
	// apply to it only then, and only then does it present an identity.
	Meshed bool
	Ports  []corev1.ContainerPort
}

func (w *Workload) String() string { return w.Namespace + "/" + w.Name }

// Endpoint is a connection's source: a workload, or an address outside the cluster.
type Endpoint struct {
	Workload *Workload
	IP       string
}

func (e Endpoint) String() string {
	if e.Workload != nil {
		return e.Workload.String()
	}
	return e.IP
}

// Cluster is what the policies apply to.
type Cluster struct {
	// Namespaces are the namespaces' labels (kubernetes.io/metadata.name is added when missing).
	Namespaces            map[string]map[string]string
	NetworkPolicies       []*networkingv1.NetworkPolicy
	PeerAuthentications   []*securityv1.PeerAuthentication
	AuthorizationPolicies []*securityv1.AuthorizationPolicy
	// TrustDomain names principals (cluster.local by default); RootNamespace is Istio's root
	// namespace, whose policies without a selector apply to the whole mesh.
	TrustDomain, RootNamespace string
}

// Add puts the policies among objs into the cluster; other objects are ignored.
func (c *Cluster) Add(objs ...any) {
	for _, o := range objs {
		switch x := o.(type) {
		case *networkingv1.NetworkPolicy:
			c.NetworkPolicies = append(c.NetworkPolicies, x)
		case *securityv1.PeerAuthentication:
			c.PeerAuthentications = append(c.PeerAuthentications, x)
		case *securityv1.AuthorizationPolicy:
			c.AuthorizationPolicies = append(c.AuthorizationPolicies, x)
		}
	}
}

// Request is one new connection: a port of the destination (a number, or a name of its container
// ports) over a protocol, and for HTTP the request's path, method and host.
type Request struct {
	From     Endpoint
	To       *Workload
	Port     int32
	PortName string
	Protocol corev1.Protocol
	HTTP     *HTTP
}

// HTTP is what an HTTP request carries that AuthorizationPolicies match.
type HTTP struct{ Path, Method, Host string }

// Layer names a stage a connection passes.
type Layer string

const (
	Egress        Layer = "egress"
	Ingress       Layer = "ingress"
	MTLS          Layer = "mtls"
	Authorization Layer = "authorization"
)

// Step is one layer's verdict and why.
type Step struct {
	Layer   Layer `json:"layer"`
	Allowed bool  `json:"allowed"`
	// Applies is false when the layer does not see the connection (no policy selects the pod, no
	// sidecar, UDP for Istio): then Allowed is true.
	Applies bool `json:"applies"`
	// By names the deciding object and rule, or what is missing ("no rule allows it").
	By     string `json:"by"`
	Detail string `json:"detail,omitempty"`
}

// Verdict is the connection's fate: allowed only when every layer allows it.
type Verdict struct {
	Allowed bool   `json:"allowed"`
	Steps   []Step `json:"steps"`
}

// Check evaluates a connection through every layer.
func (c *Cluster) Check(r Request) Verdict {
	r = c.resolvePort(r)
	steps := []Step{c.networkPolicies(r, Egress), c.networkPolicies(r, Ingress)}
	mtls, peerIdentity := c.mtls(r)
	steps = append(steps, mtls, c.authorization(r, peerIdentity))
	v := Verdict{Allowed: true, Steps: steps}
	for _, s := range steps {
		v.Allowed = v.Allowed && s.Allowed
	}
	return v
}

// resolvePort fills in the number of a named port, or the name of a numbered one, from the
// destination's container ports.
func (c *Cluster) resolvePort(r Request) Request {
	if r.Protocol == "" {
		r.Protocol = corev1.ProtocolTCP
	}
	for _, p := range r.To.Ports {
		proto := p.Protocol
		if proto == "" {
			proto = corev1.ProtocolTCP
		}
		if proto != r.Protocol {
			continue
		}
		if r.PortName != "" && p.Name == r.PortName {
			r.Port = p.ContainerPort
		}
		if r.PortName == "" && p.ContainerPort == r.Port {
			r.PortName = p.Name
		}
	}
	return r
}

func (c *Cluster) namespaceLabels(ns string) labels.Set {
	l := labels.Set{}
	for k, v := range c.Namespaces[ns] {
		l[k] = v
	}
	l["kubernetes.io/metadata.name"] = ns
	return l
}

func selectorMatches(sel *metav1.LabelSelector, l map[string]string) bool {
	s, err := metav1.LabelSelectorAsSelector(sel)
	return err == nil && s.Matches(labels.Set(l))
}

// networkPolicies decides one direction: the source's egress or the destination's ingress.
func (c *Cluster) networkPolicies(r Request, dir Layer) Step {
	subject, peer := r.To, r.From
	if dir == Egress {
		if r.From.Workload == nil {
			return Step{Layer: dir, Allowed: true, By: "the source is outside the cluster: no egress policy"}
		}
		subject, peer = r.From.Workload, Endpoint{Workload: r.To, IP: r.To.IP}
	}
	var selecting []string
	for _, np := range c.NetworkPolicies {
		if np.Namespace != subject.Namespace || !selectorMatches(&np.Spec.PodSelector, subject.Labels) || !isolates(np, dir) {
			continue
		}
		selecting = append(selecting, np.Name)
		if i, ok := c.allowedBy(np, dir, peer, r); ok {
			return Step{Layer: dir, Allowed: true, Applies: true, By: fmt.Sprintf("NetworkPolicy %s/%s spec.%s[%d]", np.Namespace, np.Name, dir, i)}
		}
	}
	slices.Sort(selecting) // the same message whatever order the policies were read in
	if len(selecting) == 0 {
		return Step{Layer: dir, Allowed: true, By: fmt.Sprintf("no NetworkPolicy selects %s for %s: not isolated", subject, dir)}
	}
	return Step{Layer: dir, Allowed: false, Applies: true, By: "no rule allows it",
		Detail: fmt.Sprintf("NetworkPolicies selecting %s for %s: %s", subject, dir, strings.Join(selecting, ", "))}
}

// isolates tells whether a policy applies to a direction (policyTypes, or Ingress and, with egress
// rules, Egress when unset).
func isolates(np *networkingv1.NetworkPolicy, dir Layer) bool {
	if len(np.Spec.PolicyTypes) == 0 {
		return dir == Ingress || len(np.Spec.Egress) > 0
	}
	want := networkingv1.PolicyTypeIngress
	if dir == Egress {
		want = networkingv1.PolicyTypeEgress
	}
	return slices.Contains(np.Spec.PolicyTypes, want)
}

// allowedBy returns the index of the policy's first rule that admits the peer on the request's
// port.
func (c *Cluster) allowedBy(np *networkingv1.NetworkPolicy, dir Layer, peer Endpoint, r Request) (int, bool) {
	type rule struct {
		peers []networkingv1.NetworkPolicyPeer
		ports []networkingv1.NetworkPolicyPort
	}
	var rules []rule
	if dir == Ingress {
		for _, x := range np.Spec.Ingress {
			rules = append(rules, rule{x.From, x.Ports})
		}
	} else {
		for _, x := range np.Spec.Egress {
			rules = append(rules, rule{x.To, x.Ports})
		}
	}
	for i, x := range rules {
		if portMatches(x.ports, r) && (len(x.peers) == 0 || slices.ContainsFunc(x.peers, func(p networkingv1.NetworkPolicyPeer) bool {
			return c.peerMatches(p, np.Namespace, peer)
		})) {
			return i, true
		}
	}
	return 0, false
}

func (c *Cluster) peerMatches(p networkingv1.NetworkPolicyPeer, policyNamespace string, peer Endpoint) bool {
	if p.IPBlock != nil {
		return ipInBlock(peer.IP, p.IPBlock)
	}
	w := peer.Workload
	if w == nil || w.Namespace == "" {
		return false // selectors match pods only; a destination without a namespace is an address
	}
	if p.NamespaceSelector == nil && w.Namespace != policyNamespace {
		return false
	}
	if p.NamespaceSelector != nil && !selectorMatches(p.NamespaceSelector, c.namespaceLabels(w.Namespace)) {
		return false
	}
	return p.PodSelector == nil || selectorMatches(p.PodSelector, w.Labels)
}

func ipInBlock(ip string, b *networkingv1.IPBlock) bool {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	cidr, err := netip.ParsePrefix(b.CIDR)
	if err != nil || !cidr.Contains(addr) {
		return false
	}
	for _, e := range b.Except {
		if ex, err := netip.ParsePrefix(e); err == nil && ex.Contains(addr) {
			return false
		}
	}
	return true
}

// portMatches tells whether a rule's ports admit the request's port: none listed admits every
// port; a named port matches the destination's container port of that name.
func portMatches(ports []networkingv1.NetworkPolicyPort, r Request) bool {
	if len(ports) == 0 {
		return true
	}
	return slices.ContainsFunc(ports, func(p networkingv1.NetworkPolicyPort) bool {
		proto := corev1.ProtocolTCP
		if p.Protocol != nil {
			proto = *p.Protocol
		}
		switch {
		case proto != r.Protocol:
			return false
		case p.Port == nil:
			return true
		case p.Port.StrVal != "":
			return p.Port.StrVal == r.PortName
		case p.EndPort != nil:
			return p.Port.IntVal <= r.Port && r.Port <= *p.EndPort
		}
		return p.Port.IntVal == r.Port
	})
}

// Modes of mutual TLS, as Istio names them.
const (
	modeStrict     = "STRICT"
	modePermissive = "PERMISSIVE"
	modeDisable    = "DISABLE"
)

// mtls finds the mode in force on the destination port: a workload policy's port-level mode, else
// its mode, else the namespace's, else the root namespace's, else PERMISSIVE (Istio's default). It
// also tells whether the connection carries the caller's identity: both ends meshed and the mode
// not DISABLE.
func (c *Cluster) mtls(r Request) (Step, bool) {
	to := r.To
	if !to.Meshed || r.Protocol != corev1.ProtocolTCP {
		why := "the destination has no sidecar: Istio enforces nothing there"
		if to.Meshed {
			why = "Istio does not intercept " + string(r.Protocol)
		}
		return Step{Layer: MTLS, Allowed: true, By: why}, false
	}
	mode, by := modePermissive, "no PeerAuthentication: Istio's default PERMISSIVE"
	var workload, namespace, root *securityv1.PeerAuthentication
	for _, pa := range c.PeerAuthentications {
		sel := pa.Spec.GetSelector().GetMatchLabels()
		switch {
		case pa.Namespace == to.Namespace && len(sel) > 0 && selectorMatches(&metav1.LabelSelector{MatchLabels: sel}, to.Labels):
			workload = pa
		case pa.Namespace == to.Namespace && len(sel) == 0:
			namespace = pa
		case pa.Namespace == c.rootNamespace() && len(sel) == 0:
			root = pa
		}
	}
	for _, pa := range []*securityv1.PeerAuthentication{root, namespace, workload} {
		if pa == nil {
			continue
		}
		if m := pa.Spec.GetMtls().GetMode(); m != securityv1beta1.PeerAuthentication_MutualTLS_UNSET {
			mode, by = m.String(), fmt.Sprintf("PeerAuthentication %s/%s", pa.Namespace, pa.Name)
		}
	}
	if workload != nil {
		if pl, ok := workload.Spec.GetPortLevelMtls()[uint32(r.Port)]; ok && pl.GetMode() != securityv1beta1.PeerAuthentication_MutualTLS_UNSET {
			mode, by = pl.GetMode().String(), fmt.Sprintf("PeerAuthentication %s/%s portLevelMtls[%d]", workload.Namespace, workload.Name, r.Port)
		}
	}
	callerMeshed := r.From.Workload != nil && r.From.Workload.Meshed
	step := Step{Layer: MTLS, Allowed: true, Applies: true, By: by, Detail: "mode " + mode}
	switch {
	case mode == modeStrict && !callerMeshed:
		step.Allowed = false
		step.Detail = "mode STRICT: the caller has no sidecar, so its plain text is refused"
	case mode == modeDisable:
		step.Detail = "mode DISABLE: plain text, no identity"
	case !callerMeshed:
		step.Detail = "mode " + mode + ": the caller has no sidecar, so it sends plain text without identity"
	}
	return step, callerMeshed && mode != modeDisable
}

func (c *Cluster) rootNamespace() string {
	if c.RootNamespace == "" {
		return "istio-system"
	}
	return c.RootNamespace
}

func (c *Cluster) trustDomain() string {
	if c.TrustDomain == "" {
		return "cluster.local"
	}
	return c.TrustDomain
}
