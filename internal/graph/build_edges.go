package graph

// How the builder reads the edges of a graph, compact and structured, and checks each against the
// whole graph.

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
)

// maxEdgeLength is the CRD's maxLength for an item of spec.edges.
const maxEdgeLength = 512

func (b *builder) compact(s string) {
	if utf8.RuneCountInString(s) > maxEdgeLength {
		b.errs.edge(source{"edge", s}, "an edge must be at most %d characters", maxEdgeLength)
		return
	}
	e, err := ParseEdge(s)
	if err != nil {
		b.errs.edge(source{"edge", s}, "%s", err.(*ParseError).Detail())
		return
	}
	b.add(&e, source{"edge", s})
}

func (b *builder) connection(c *v1alpha1.Connection) {
	e := Edge{From: c.From, To: c.To, Paths: slices.Clone(c.Paths), Methods: slices.Clone(c.Methods)}
	fromNS, from, hasFromNS := strings.Cut(c.From, "/")
	if hasFromNS {
		e.FromNamespace, e.From = fromNS, from
	}
	ns, name, hasNS := strings.Cut(c.To, "/")
	if hasNS {
		e.ToNamespace, e.To = ns, name
	}
	for _, p := range c.Ports {
		e.Ports = append(e.Ports, Port{Port: numeric(p.Port), Protocol: p.Protocol})
	}
	src := source{"connection", e.String()}
	n := len(b.errs.list)
	b.fields(&e, hasFromNS, hasNS, src)
	if len(b.errs.list) == n {
		b.add(&e, src)
	}
}

// numeric turns a port written as a quoted number ("8080") into the number it means.
func numeric(p intstr.IntOrString) intstr.IntOrString {
	if p.Type == intstr.String && isNumber(p.StrVal) && len(p.StrVal) <= 5 {
		if n, err := strconv.Atoi(p.StrVal); err == nil {
			return intstr.FromInt32(int32(n))
		}
	}
	return p
}

// fields checks what the compact parser checks by construction, for a structured connection.
func (b *builder) fields(e *Edge, hasFromNS, hasNS bool, src source) {
	if hasFromNS {
		if err := checkLabel(e.FromNamespace, "namespace of from"); err != nil {
			b.errs.edge(src, "%v", err)
		}
	}
	if err := checkLabel(e.From, "from"); err != nil {
		b.errs.edge(src, "%v", err)
	}
	if hasNS {
		if err := checkLabel(e.ToNamespace, "namespace of to"); err != nil {
			b.errs.edge(src, "%v", err)
		}
	}
	if err := checkLabel(e.To, "to"); err != nil {
		b.errs.edge(src, "%v", err)
	}
	if len(e.Ports) == 0 {
		b.errs.edge(src, "ports must not be empty")
	}
	for _, p := range e.Ports {
		if err := checkPort(p); err != nil {
			b.errs.edge(src, "%v", err)
		}
	}
	for _, p := range e.Paths {
		if err := checkPath(p); err != nil {
			b.errs.edge(src, "%v", err)
		}
	}
	for _, m := range e.Methods {
		if err := checkMethod(m); err != nil {
			b.errs.edge(src, "%v", err)
		}
	}
}

func checkPort(p Port) error {
	switch p.Protocol {
	case "", v1alpha1.ProtocolTCP, v1alpha1.ProtocolUDP, v1alpha1.ProtocolSCTP, v1alpha1.ProtocolHTTP, v1alpha1.ProtocolGRPC:
	default:
		return fmt.Errorf("port %s: protocol %q must be TCP, UDP, SCTP, HTTP or GRPC", p.Port.String(), p.Protocol)
	}
	if p.Named() {
		if err := checkPortName(p.Port.StrVal); err != nil {
			return fmt.Errorf("port %q: %w", p.Port.StrVal, err)
		}
		return nil
	}
	if p.Port.IntVal < 1 || p.Port.IntVal > 65535 {
		return fmt.Errorf("port %d: %w", p.Port.IntVal, errPortRange)
	}
	return nil
}

// add checks an edge against the whole graph, normalises it and keeps it unless it has a problem
// or duplicates an edge already kept.
func (b *builder) add(e *Edge, src source) {
	n := len(b.errs.list)
	from, okFrom := b.g.Service(e.From)
	to, okTo := b.g.Service(e.To)
	for _, end := range []struct {
		name, ns string
		s        *Service
	}{{e.From, e.FromNamespace, from}, {e.To, e.ToNamespace, to}} {
		switch {
		case end.s == nil && !b.rejected[end.name]:
			b.errs.edge(src, "service %q is not declared in spec.services", end.name)
		case end.s == nil, end.s.External != nil: // reported with the declaration; externalEdge
		case end.ns != "" && end.ns != end.s.Namespace:
			b.errs.edge(src, "service %q is declared in namespace %q, not %q", end.name, end.s.Namespace, end.ns)
		}
	}
	switch {
	case !okFrom || !okTo:
	case e.From == e.To:
		b.errs.edge(src, "an edge cannot go from a service to itself")
	case from.External != nil && to.External != nil:
		b.errs.edge(src, "both ends are external peers: an edge needs a service of the graph at one end")
	case from.External != nil && !b.g.Local(to), to.External != nil && !b.g.Local(from):
		b.errs.edge(src, "an external peer's edges go to or from a service of namespace %q: a graph only writes rules for its own namespace", b.g.Namespace)
	case from.Remote != nil && !b.g.Local(to), to.Remote != nil && !b.g.Local(from):
		b.errs.edge(src, "a remote service's edges go to or from a service of this cluster's namespace %q", b.g.Namespace)
	case !b.g.Local(from) && !b.g.Local(to):
		b.errs.edge(src, "both ends are in other namespaces (%q and %q): a graph only writes rules for its own namespace %q",
			from.Namespace, to.Namespace, b.g.Namespace)
	}
	if okFrom && okTo && len(b.errs.list) == n { // what an edge to or from a peer may say, once its ends are right
		b.externalEdge(e, from, to, src)
		b.remoteEdge(e, to, src)
	}
	b.ports(e, src)
	b.ciliumPaths(e, src)
	if len(b.errs.list) > n || !okFrom || !okTo {
		return
	}
	// A caller in the graph's namespace goes without one, so messages read as the edges were written.
	e.FromNamespace, e.ToNamespace = "", to.Namespace
	if !b.g.Local(from) {
		e.FromNamespace = from.Namespace
	}
	e.Paths = sortedSet(e.Paths)
	e.Methods = sortedSet(e.Methods)
	slices.SortFunc(e.Ports, portLess)
	key := e.key()
	if first, dup := b.seen[key]; dup {
		b.errs.edge(src, "duplicates %s", first.item())
		return
	}
	b.seen[key] = src
	b.g.Edges = append(b.g.Edges, *e)
	b.keys = append(b.keys, key)
}

// ports fills in default protocols and rejects ports listed twice and HTTP fields on ports that
// do not speak HTTP: Istio never matches those on TCP traffic, so such an edge would deny all.
func (b *builder) ports(e *Edge, src source) {
	def := e.defaultProtocol()
	http := len(e.Paths) > 0 || len(e.Methods) > 0
	for i := range e.Ports {
		p := &e.Ports[i]
		p.Protocol = cmp.Or(p.Protocol, def)
		if http && !p.HTTP() {
			b.errs.edge(src, "paths and methods need an HTTP or GRPC port, but port %s is %s", p.Port.String(), p.Protocol)
		}
		// An edge has a few ports (at most 64): a quadratic scan beats a map.
		if slices.ContainsFunc(e.Ports[:i], func(q Port) bool { return q.Port == p.Port && q.L4() == p.L4() }) {
			b.errs.edge(src, "port %s is listed more than once", p.Port.String())
		}
	}
}

// ciliumPaths rejects, for CiliumNetworkPolicies, a path with a query string or fragment: Istio
// compares paths without them, so such a path matches no request, while Cilium's proxy matches
// its expression against the whole request target and would let requests through.
func (b *builder) ciliumPaths(e *Edge, src source) {
	if b.g.NetworkPolicy != v1alpha1.NetworkPolicyCilium {
		return
	}
	for _, p := range e.Paths {
		if strings.ContainsAny(p, "?#") {
			b.errs.edge(src, "path %q has a query string or fragment: paths are compared without them, so it would match no request", p)
		}
	}
}

// ciliumPortAliases rejects, for CiliumNetworkPolicies, one caller's edges to one callee that name a
// port by name with paths or methods and by number without, or the other way round: Cilium
// resolves the name on the pods and adds up the rules of a port, so the number would take HTTP
// only, while the graph may open it to any traffic. Which number a name is, only the pods say.
func (b *builder) ciliumPortAliases() {
	if b.g.NetworkPolicy != v1alpha1.NetworkPolicyCilium {
		return
	}
	// The edges without HTTP fields by their ends, so each edge with some is held only to its own
	// pair's (a graph has up to 4,096 edges, and this runs on every reconcile).
	type ends struct{ fromNamespace, from, toNamespace, to string }
	open := map[ends][]*Edge{}
	for i := range b.g.Edges {
		if e := &b.g.Edges[i]; len(e.Paths) == 0 && len(e.Methods) == 0 {
			k := ends{e.FromNamespace, e.From, e.ToNamespace, e.To}
			open[k] = append(open[k], e)
		}
	}
	for i := range b.g.Edges {
		restricted := &b.g.Edges[i]
		if len(restricted.Paths) == 0 && len(restricted.Methods) == 0 {
			continue
		}
		for _, o := range open[ends{restricted.FromNamespace, restricted.From, restricted.ToNamespace, restricted.To}] {
			for _, p := range restricted.Ports {
				same := func(q Port) bool { return q.Port == p.Port && q.L4() == p.L4() } // opens p outright
				if !slices.ContainsFunc(o.Ports, same) && slices.ContainsFunc(o.Ports, func(q Port) bool { return q.Named() != p.Named() && q.L4() == p.L4() }) {
					b.errs.add(fmt.Sprintf("edges %q and %q", restricted.String(), o.String()), "",
						"with networkPolicy Cilium, write a port the same way (its name or its number) in both: Cilium cannot tell whether port %s is the other edge's, which it would restrict to HTTP", p.Port.String())
					break
				}
			}
		}
	}
}

// sortedSet sorts and de-duplicates in place; the edge owns the slice.
func sortedSet(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	slices.Sort(s)
	return slices.Compact(s)
}

// remoteEdge checks an edge to a service of another cluster: it is reached at addresses, which
// have no container port names.
func (b *builder) remoteEdge(e *Edge, to *Service, src source) {
	if to.Remote == nil {
		return
	}
	if len(to.Remote.CIDRs) == 0 {
		b.errs.edge(src, "remote service %q is called but has no remote.cidrs: the addresses this cluster reaches it at (the other cluster's east-west gateway, or its pods on a flat network)", to.Name)
	}
	for _, p := range e.Ports {
		if p.Named() {
			b.errs.edge(src, "port %q: remote service %q has no container port names here, give the number", p.Port.StrVal, to.Name)
		}
	}
}
