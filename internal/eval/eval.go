// Package eval decides, for one connection, what the policies of a cluster do with it, layer by
// layer, and which object and rule decided: the source's egress and the destination's ingress
// NetworkPolicies and CiliumNetworkPolicies (see cilium.go), the mutual TLS mode Istio's PeerAuthentications put on the destination port,
// and Istio's AuthorizationPolicies (CUSTOM and DENY before ALLOW). It is pure: the caller gives
// the objects and the workloads; `servicegraph check` and `diff`, the widening-policy detection
// and the tests share it.
package eval

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	securityv1beta1 "istio.io/api/security/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"

	"github.com/servicegraph/servicegraph-operator/internal/cilium"
	"github.com/servicegraph/servicegraph-operator/internal/semantics"
)

// Workload is a pod (or every pod of a workload: they share labels, ServiceAccount and ports). A
// destination without a namespace is outside the cluster, known by its IP, its Host, or both.
type Workload struct {
	Namespace, Name string
	Labels          map[string]string
	// IP matters only to ipBlock and CIDR rules; empty for a workload known by labels alone.
	IP             string
	ServiceAccount string
	// Meshed tells whether an Istio sidecar (or ambient) handles its traffic: Istio's policies
	// apply to it only then, and only then does it present an identity.
	Meshed bool
	Ports  []corev1.ContainerPort
	// TrustDomain is the trust domain of its identity when it is not the cluster's (a workload of
	// another mesh).
	TrustDomain string
	// Dataplane says what carries its traffic when Meshed: a sidecar ("" too) or ambient mode.
	Dataplane semantics.Dataplane
	// Waypoint is the waypoint traffic to its Services goes through in ambient mode, nil for none.
	Waypoint *Waypoint
	// Host is the DNS name a destination outside the cluster is reached by: CiliumNetworkPolicies'
	// toFQDNs rules match it.
	Host string
	// APIServer marks a destination outside the cluster as the Kubernetes API server: Cilium's
	// kube-apiserver entity.
	APIServer bool
}

func (w *Workload) String() string {
	if w.Namespace == "" {
		return cmp.Or(w.Name, w.Host, w.IP)
	}
	return w.Namespace + "/" + w.Name
}

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
	Namespaces      map[string]map[string]string
	NetworkPolicies []*networkingv1.NetworkPolicy
	// CiliumNetworkPolicies and CiliumClusterwideNetworkPolicies are Cilium's (see cilium.go).
	CiliumNetworkPolicies            []*cilium.CiliumNetworkPolicy
	CiliumClusterwideNetworkPolicies []*cilium.CiliumClusterwideNetworkPolicy
	PeerAuthentications              []*securityv1.PeerAuthentication
	AuthorizationPolicies            []*securityv1.AuthorizationPolicy
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
		case *cilium.CiliumNetworkPolicy:
			c.CiliumNetworkPolicies = append(c.CiliumNetworkPolicies, x)
		case *cilium.CiliumClusterwideNetworkPolicy:
			c.CiliumClusterwideNetworkPolicies = append(c.CiliumClusterwideNetworkPolicies, x)
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
type HTTP = semantics.HTTP

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

// Allows tells whether every step of the given layers allows the connection.
func (v Verdict) Allows(layers ...Layer) bool {
	for _, s := range v.Steps {
		if slices.Contains(layers, s.Layer) && !s.Allowed {
			return false
		}
	}
	return true
}

// LayerGroup is a set of layers judged together: the layers a user reads as one.
type LayerGroup struct {
	Name   string
	Layers []Layer
}

// LayerGroups are the groups `servicegraph diff` shows and widenings name: NetworkPolicies (both
// directions), mutual TLS, authorization.
var (
	L4Layers            = LayerGroup{"L4", []Layer{Egress, Ingress}}
	MTLSLayers          = LayerGroup{"mTLS", []Layer{MTLS}}
	AuthorizationLayers = LayerGroup{"authorization", []Layer{Authorization}}
	LayerGroups         = []LayerGroup{L4Layers, MTLSLayers, AuthorizationLayers}
)

// Check evaluates a connection through every layer. In ambient mode a meshed caller's connection
// to a destination whose Services go through a waypoint takes two hops, caller to waypoint and
// waypoint to destination, each layer folding both (see viaWaypoint).
func (c *Cluster) Check(r Request) Verdict {
	r = c.resolvePort(r)
	if w := r.To.Waypoint; w != nil && r.To.ambient() && r.From.Workload.meshed() && r.From.Workload != w.Pods {
		return c.viaWaypoint(r, w)
	}
	l4 := c.transport(r)
	steps := []Step{hboneNote(c.networkPolicies(l4, Egress), l4, r), hboneNote(c.networkPolicies(l4, Ingress), l4, r)}
	mtls, peerIdentity := c.mtls(r)
	steps = append(steps, mtls, c.authorization(r, peerIdentity))
	return verdict(steps)
}

func verdict(steps []Step) Verdict {
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

// networkPolicies decides one direction: the source's egress or the destination's ingress, by its
// NetworkPolicies and CiliumNetworkPolicies together.
func (c *Cluster) networkPolicies(r Request, dir Layer) Step {
	subject, peer := r.To, r.From
	switch {
	case dir == Egress && r.From.Workload == nil:
		return Step{Layer: dir, Allowed: true, By: "the source is outside the cluster: no egress policy"}
	case dir == Egress:
		subject, peer = r.From.Workload, Endpoint{Workload: r.To, IP: r.To.IP}
	case r.To.Namespace == "":
		return Step{Layer: dir, Allowed: true, By: "the destination is outside the cluster: no ingress policy"}
	}
	cnp := c.cilium(r, dir, subject, peer)
	if cnp.denied != nil {
		return *cnp.denied
	}
	direction := semantics.Direction(dir)
	var selecting []string
	for _, np := range c.NetworkPolicies {
		if !semantics.SelectsPod(np, subject.Namespace, subject.Labels) || !semantics.Isolates(np, direction) {
			continue
		}
		selecting = append(selecting, np.Name)
		if i, ok := c.allowedBy(np, direction, peer, r); ok {
			return Step{Layer: dir, Allowed: true, Applies: true, By: fmt.Sprintf("NetworkPolicy %s/%s spec.%s[%d]", np.Namespace, np.Name, dir, i)}
		}
	}
	if cnp.decided != nil {
		return *cnp.decided
	}
	slices.Sort(selecting) // the same message whatever order the policies were read in
	kinds := "NetworkPolicy"
	if len(c.CiliumNetworkPolicies)+len(c.CiliumClusterwideNetworkPolicies) > 0 {
		kinds = "NetworkPolicy or CiliumNetworkPolicy"
	}
	if len(selecting) == 0 && len(cnp.selecting) == 0 {
		return Step{Layer: dir, Allowed: true, By: fmt.Sprintf("no %s selects %s for %s: not isolated", kinds, subject, dir), Detail: strings.Join(cnp.notes, "; ")}
	}
	var details []string
	if len(selecting) > 0 {
		details = append(details, fmt.Sprintf("NetworkPolicies selecting %s for %s: %s", subject, dir, strings.Join(selecting, ", ")))
	}
	if len(cnp.selecting) > 0 {
		details = append(details, fmt.Sprintf("Cilium policies selecting %s for %s: %s", subject, dir, strings.Join(cnp.selecting, ", ")))
	}
	return Step{Layer: dir, Allowed: false, Applies: true, By: "no rule allows it", Detail: strings.Join(append(details, cnp.notes...), "; ")}
}

// allowedBy returns the index of the policy's first rule that admits the peer on the request's
// port.
func (c *Cluster) allowedBy(np *networkingv1.NetworkPolicy, dir semantics.Direction, peer Endpoint, r Request) (int, bool) {
	other := semantics.Peer{IP: peer.IP}
	if w := peer.Workload; w != nil && w.Namespace != "" {
		other = semantics.Peer{Namespace: w.Namespace, Labels: w.Labels, NamespaceLabels: c.Namespaces[w.Namespace], IP: peer.IP}
	}
	matches := func(peers []networkingv1.NetworkPolicyPeer, ports []networkingv1.NetworkPolicyPort) bool {
		return semantics.PortMatches(ports, r.Protocol, r.Port, r.PortName) && (len(peers) == 0 || slices.ContainsFunc(peers, func(p networkingv1.NetworkPolicyPeer) bool {
			return semantics.PeerMatches(p, np.Namespace, other)
		}))
	}
	if dir == semantics.Ingress {
		for i, x := range np.Spec.Ingress {
			if matches(x.From, x.Ports) {
				return i, true
			}
		}
		return 0, false
	}
	for i, x := range np.Spec.Egress {
		if matches(x.To, x.Ports) {
			return i, true
		}
	}
	return 0, false
}

// mtls finds the mode in force on the destination port (see semantics.EffectiveMTLS). It also
// tells whether the connection carries the caller's identity: both ends meshed and the mode not
// DISABLE.
func (c *Cluster) mtls(r Request) (Step, bool) {
	to := r.To
	if !to.Meshed || r.Protocol != corev1.ProtocolTCP {
		why := "the destination has no sidecar: Istio enforces nothing there"
		if to.Meshed {
			why = "Istio does not intercept " + string(r.Protocol)
		}
		return Step{Layer: MTLS, Allowed: true, By: why}, false
	}
	m := semantics.EffectiveMTLS(c.PeerAuthentications, semantics.Workload{Namespace: to.Namespace, Labels: to.Labels}, r.Port, c.rootNamespace())
	if to.ambient() && m.Mode == securityv1beta1.PeerAuthentication_MutualTLS_DISABLE {
		m.Mode = securityv1beta1.PeerAuthentication_MutualTLS_PERMISSIVE // ztunnel cannot disable mutual TLS: it ignores DISABLE
	}
	mode, by := m.Mode.String(), "no PeerAuthentication: Istio's default PERMISSIVE"
	switch {
	case m.Port:
		by = fmt.Sprintf("PeerAuthentication %s/%s portLevelMtls[%d]", m.By.Namespace, m.By.Name, r.Port)
	case m.By != nil:
		by = fmt.Sprintf("PeerAuthentication %s/%s", m.By.Namespace, m.By.Name)
	}
	callerMeshed := r.From.Workload != nil && r.From.Workload.Meshed
	step := Step{Layer: MTLS, Allowed: true, Applies: true, By: by, Detail: "mode " + mode}
	switch {
	case m.Mode == securityv1beta1.PeerAuthentication_MutualTLS_STRICT && !callerMeshed:
		step.Allowed = false
		step.Detail = "mode STRICT: the caller has no sidecar, so its plain text is refused"
	case m.Mode == securityv1beta1.PeerAuthentication_MutualTLS_DISABLE:
		step.Detail = "mode DISABLE: plain text, no identity"
	case !callerMeshed:
		step.Detail = "mode " + mode + ": the caller has no sidecar, so it sends plain text without identity"
	}
	return step, callerMeshed && m.Mode != securityv1beta1.PeerAuthentication_MutualTLS_DISABLE
}

func (c *Cluster) rootNamespace() string {
	return cmp.Or(c.RootNamespace, semantics.DefaultRootNamespace)
}

func (c *Cluster) trustDomain() string {
	return cmp.Or(c.TrustDomain, semantics.DefaultTrustDomain)
}
