package eval

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"
)

// Widening is a policy someone else wrote that lets through, in one layer, a connection the
// graph's own objects refuse there.
type Widening struct {
	// Object is "Kind namespace/name".
	Object string `json:"object"`
	// Layer is L4 (NetworkPolicies, CiliumNetworkPolicies), mTLS (PeerAuthentications) or authorization.
	Layer string `json:"layer"`
	// Example is one connection the object opens.
	Example string `json:"example"`
}

func (w Widening) String() string {
	return fmt.Sprintf("%s opens %s at %s", w.Object, w.Example, w.Layer)
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
	for _, cnp := range foreign.CiliumNetworkPolicies {
		if cnp.Namespace == namespace {
			out = appendIf(out, j.ciliumNetworkPolicy(cnp))
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

// judge asks, for each foreign object of a namespace, which connections it opens.
type judge struct {
	graph     *Cluster
	namespace string
	local     []*Workload
	ports     []int32
}

// Strangers: what no rule written for the graph's callers should admit.
const (
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
	switch {
	case w.APIServer:
		return "the API server " + w.IP
	case w.Namespace == "" && w.Host != "":
		return w.Host + " (outside the cluster)" // a toFQDNs name
	case w.Namespace == "":
		return w.IP + " (outside the cluster)"
	}
	return w.String()
}

// firstOpened returns the first probe that the layers refuse with the graph's objects alone and
// admit with the object added.
func (j *judge) firstOpened(object string, layers LayerGroup, with *Cluster, probes []probe) *Widening {
	for _, p := range probes {
		base, widened := *j.graph, *with
		base.Namespaces = j.namespaces(p)
		widened.Namespaces = base.Namespaces
		r := Request{From: p.from, To: p.to, Port: p.port, PortName: p.portName, Protocol: p.protocol, HTTP: p.http}
		if p.from.Workload != nil && r.From.IP == "" {
			r.From.IP = p.from.Workload.IP
		}
		if !base.Check(r).Allows(layers.Layers...) && widened.Check(r).Allows(layers.Layers...) {
			return &Widening{Object: object, Layer: layers.Name, Example: p.String()}
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

// withObject is the graph's cluster with one more policy.
func (j *judge) withObject(obj any) *Cluster {
	c := *j.graph
	c.NetworkPolicies = slices.Clone(c.NetworkPolicies)
	c.CiliumNetworkPolicies = slices.Clone(c.CiliumNetworkPolicies)
	c.CiliumClusterwideNetworkPolicies = slices.Clone(c.CiliumClusterwideNetworkPolicies)
	c.PeerAuthentications = slices.Clone(c.PeerAuthentications)
	c.AuthorizationPolicies = slices.Clone(c.AuthorizationPolicies)
	c.Add(obj)
	return &c
}

// source is an endpoint a rule's peers match, with the synthetic namespaces it needs.
type source struct {
	Endpoint
	namespaces map[string]map[string]string
}

// withStrangersAndLocals ends a list of sources: every stranger when the rule names no peer, then
// the namespace's own workloads.
func (j *judge) withStrangersAndLocals(out []source, namesNone bool) []source {
	if namesNone {
		for _, s := range j.strangers() {
			out = append(out, source{Endpoint: s})
		}
	}
	for _, w := range j.local {
		out = append(out, source{Endpoint: Endpoint{Workload: w, IP: w.IP}})
	}
	return out
}
