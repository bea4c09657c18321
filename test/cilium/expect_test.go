package cilium

import (
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/servicegraph/servicegraph-operator/internal/compiler"
	"github.com/servicegraph/servicegraph-operator/internal/graph"
)

// judged is a compiled graph and what its expectation depends on besides the graph itself.
type judged struct {
	g   *graph.Graph
	res *compiler.Result
	// istio is whether Istio enforces layer 7 (mesh Istio, and served): Cilium must not then.
	istio bool
	// apiServer are the API server's ports (the facts), which the API server is reached on.
	apiServer []int32
}

// enforced is whether the graph applies its policies (Enforce mode).
func (j judged) enforced() bool { return j.res.Enforce == nil }

// expected is what the graphs say, in the table's form, for every pod of their namespaces:
// ingress from each caller's pods on the edge's ports (a caller of the graph with its
// ServiceAccount), egress to each callee, DNS to kube-dns (through the DNS proxy when the graph
// calls hosts by name), istiod with Istio, and the paths and methods as HTTP rules when Istio does
// not enforce them; and from the node, which Cilium always admits. A namespace whose graph only
// audits is not enforced at all.
func expected(c *cluster, js []judged) Table {
	out := Table{}
	for _, ep := range c.endpoints {
		var mine []judged
		for _, j := range js {
			if ep.pod && j.g.Namespace == ep.namespace {
				mine = append(mine, j)
			}
		}
		if len(mine) == 0 {
			continue
		}
		if !slices.ContainsFunc(mine, judged.enforced) {
			out.add(ep.key, "in", "ANY", "ANY", "*", anyL7)
			out.add(ep.key, "out", "ANY", "ANY", "*", anyL7)
			continue
		}
		// Not the graph's: Cilium on Kubernetes lets the node reach its pods (allow-localhost).
		out.add(ep.key, "in", "ANY", "ANY", "reserved:host", anyL7)
		for _, j := range mine {
			expectGraph(out, c, j, ep)
		}
	}
	return out
}

func expectGraph(out Table, c *cluster, j judged, ep *endpoint) {
	g, opts := j.g, compiler.DefaultOptions()
	put := func(dir string, proto corev1.Protocol, port int32, peer *endpoint, l7 string) {
		k := ep.key + " " + dir + " " + string(proto) + "/" + strconv.Itoa(int(port)) + " " + peer.key
		if old, ok := out[k]; ok {
			l7 = mergeL7(old, l7)
		}
		out[k] = l7
	}
	if g.AllowDNS {
		l7 := anyL7
		if slices.ContainsFunc(g.Edges, func(e graph.Edge) bool { x := callee(g, e).External; return x != nil && len(x.Hosts) > 0 }) {
			l7 = "dns name= pattern=*"
		}
		for _, p := range c.podsOf(opts.DNS.Namespace, opts.DNS.Labels, "") {
			put("out", corev1.ProtocolUDP, 53, p, l7)
			put("out", corev1.ProtocolTCP, 53, p, l7)
		}
	}
	if j.istio {
		for _, p := range c.podsOf(opts.Istiod.Namespace, opts.Istiod.Labels, "") {
			put("out", corev1.ProtocolTCP, 15012, p, anyL7)
			put("out", corev1.ProtocolTCP, 15017, p, anyL7)
		}
	}
	for i := range g.Services {
		s := &g.Services[i]
		if !g.Local(s) || ep.namespace != s.Namespace || !subset(s.Labels, ep.labels) {
			continue
		}
		for _, e := range g.Edges {
			l7 := anyL7
			if !j.istio && len(e.Paths)+len(e.Methods) > 0 {
				l7 = httpRules(e)
			}
			if e.To == s.Name {
				for _, peer := range c.callers(g.Services[index(g, e.From)]) {
					for _, p := range e.Ports {
						if n, ok := portNumber(p, ep); ok {
							put("in", p.L4(), n, peer, l7)
						}
					}
				}
			}
			if e.From == s.Name {
				to := callee(g, e)
				if to.External == nil {
					l7 = anyL7 // the callee's own policy carries them
				}
				for _, peer := range c.callees(to) {
					for _, p := range calleePorts(j, to, e) {
						if n, ok := portNumber(p, peer); ok {
							put("out", p.L4(), n, peer, l7)
						}
					}
				}
			}
		}
	}
}

func index(g *graph.Graph, name string) int {
	return slices.IndexFunc(g.Services, func(s graph.Service) bool { return s.Name == name })
}

func callee(g *graph.Graph, e graph.Edge) *graph.Service { return &g.Services[index(g, e.To)] }

// calleePorts are the ports an edge reaches its callee on: the API server's own (policies see
// its traffic after the Service's translation), and for a service of another cluster also its
// east-west gateway's 15443.
func calleePorts(j judged, to *graph.Service, e graph.Edge) []graph.Port {
	switch {
	case to.External != nil && to.External.KubernetesAPI:
		var out []graph.Port
		for _, p := range j.apiServer {
			out = append(out, graph.Port{Port: intOrString(p)})
		}
		return out
	case to.Remote != nil:
		return append(slices.Clone(e.Ports), graph.Port{Port: intOrString(graph.EastWestGatewayPort)})
	}
	return e.Ports
}

// httpRules are an edge's paths × methods, each path as the expression the compiler writes for
// it (CiliumPath; TestCiliumPathAsEnvoyMatchesIt holds it to the graph's meaning).
func httpRules(e graph.Edge) string {
	paths, methods := e.Paths, e.Methods
	if len(paths) == 0 {
		paths = []string{"*"}
	}
	if len(methods) == 0 {
		methods = []string{""}
	}
	var rules []string
	for _, p := range paths {
		for _, m := range methods {
			rules = append(rules, httpRule(m, compiler.CiliumPath(p)))
		}
	}
	return l7String(rules)
}

// mergeL7 is what two grants of the same port to the same peer let through: anything if either
// does, else both sets of rules.
func mergeL7(a, b string) string {
	if a == anyL7 || b == anyL7 {
		return anyL7
	}
	return l7String(append(strings.Split(a, " | "), strings.Split(b, " | ")...))
}

// portNumber resolves a port as the destination pod declares it.
func portNumber(p graph.Port, dst *endpoint) (int32, bool) {
	if !p.Named() {
		return p.Port.IntVal, true
	}
	n, ok := dst.namedPorts[p.Port.StrVal]
	return n, ok
}

// callers are the endpoints a caller of the graph stands for at the callee: a service's pods
// with its ServiceAccount, an external peer's pods or addresses, the east-west gateway for a
// service of another cluster.
func (c *cluster) callers(s graph.Service) []*endpoint {
	switch {
	case s.Remote != nil:
		return c.podsOf(s.Remote.GatewayNamespace, s.Remote.GatewayLabels, "")
	case s.External != nil:
		return c.externalMembers(s.External)
	}
	return c.podsOf(s.Namespace, s.Labels, s.ServiceAccount)
}

// callees are the endpoints a callee stands for: a service's pods (whatever their ServiceAccount),
// a service of another cluster's addresses, an external peer's pods, addresses, names or the
// API server.
func (c *cluster) callees(s *graph.Service) []*endpoint {
	switch {
	case s.Remote != nil:
		return c.addrsIn(s.Remote.CIDRs, nil)
	case s.External != nil:
		return c.externalMembers(s.External)
	}
	return c.podsOf(s.Namespace, s.Labels, "")
}

// externalMembers are what an external peer is: its names when it has hosts (addresses given
// with them are not used), its addresses, pods of its namespaces, or the API server.
func (c *cluster) externalMembers(x *graph.External) []*endpoint {
	var out []*endpoint
	switch {
	case len(x.Hosts) > 0:
		for _, e := range c.endpoints {
			if e.name != "" && slices.ContainsFunc(x.Hosts, func(h string) bool { return hostMatches(h, e.name) }) {
				out = append(out, e)
			}
		}
	case len(x.CIDRs) > 0:
		out = c.addrsIn(x.CIDRs, x.Except)
	case x.KubernetesAPI:
		out = append(out, c.byKey["reserved:kube-apiserver"])
	default:
		for _, e := range c.endpoints {
			if !e.pod {
				continue
			}
			inNS := slices.Contains(x.Namespaces, e.namespace) ||
				x.NamespaceSelector != nil && selects(x.NamespaceSelector, c.namespaces[e.namespace])
			if inNS && (x.PodSelector == nil || selects(x.PodSelector, e.labels)) {
				out = append(out, e)
			}
		}
	}
	return out
}

// podsOf are the pods of a namespace with the labels (and the ServiceAccount, when given).
func (c *cluster) podsOf(ns string, lbls map[string]string, sa string) []*endpoint {
	var out []*endpoint
	for _, e := range c.endpoints {
		if e.pod && e.namespace == ns && subset(lbls, e.labels) && (sa == "" || e.sa == sa) {
			out = append(out, e)
		}
	}
	return out
}

// addrsIn are the probe addresses (not names) inside one of the ranges and none of the excepts.
func (c *cluster) addrsIn(cidrs, except []string) []*endpoint {
	var out []*endpoint
	for _, e := range c.endpoints {
		if e.addr.IsValid() && e.name == "" && contains(cidrs, e) && !contains(except, e) {
			out = append(out, e)
		}
	}
	return out
}
