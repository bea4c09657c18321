package graph

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
)

// Graph is a validated ServiceGraph with every default applied. The compiler, never the API
// server, applies defaults: Argo CD would show a default inside a list item as a permanent diff.
type Graph struct {
	Name      string
	Namespace string
	// Mesh is spec.mesh, Istio when unset.
	Mesh v1alpha1.Mesh
	// MTLS is the effective mode: STRICT unless the spec says PERMISSIVE.
	MTLS v1alpha1.MTLSMode
	// AllowDNS is spec.allowDNS, true when unset.
	AllowDNS bool
	// Waypoint is spec.waypoint.name ("" when unset); CreateWaypoint is spec.waypoint.create.
	Waypoint       string
	CreateWaypoint bool
	// Services are sorted by name.
	Services []Service
	// Edges are distinct and sorted by caller, then callee, then ports, methods and paths; each
	// one's ports, paths and methods are sorted, its ToNamespace and port protocols filled in.
	Edges []Edge

	index map[string]int // service name → position in Services
}

// Service is a declared service with its defaults applied.
type Service struct {
	Name string
	// Namespace is where the service's pods run, the graph's unless it is a peer elsewhere.
	Namespace string
	// Labels select the service's pods: selector.matchLabels, {app: NAME} by default.
	Labels map[string]string
	// ServiceAccount is the pods' identity, NAME by default.
	ServiceAccount string
	// External is set for an external peer (spec.external), which has no namespace, labels or
	// ServiceAccount of its own.
	External *External
	// Remote is set for a service of another cluster (spec.services[].remote).
	Remote *Remote
}

// Remote is a service of another cluster of the mesh: its trust domain, the east-west gateway
// pods of this cluster its calls come through, and the addresses it is reached at.
type Remote struct {
	TrustDomain      string
	GatewayNamespace string
	GatewayLabels    map[string]string
	CIDRs            []string
}

// EastWestGatewayPort is where an Istio east-west gateway takes mesh traffic for another network.
const EastWestGatewayPort = 15443

// External is what an external peer is.
type External struct {
	// CIDRs and Except are IP ranges in their canonical form.
	CIDRs, Except []string
	// Namespaces (by name) or NamespaceSelector, with PodSelector, select pods of other namespaces.
	Namespaces        []string
	NamespaceSelector *metav1.LabelSelector
	PodSelector       *metav1.LabelSelector
	Hosts             []string
	KubernetesAPI     bool
	Unmeshed          bool
}

// CalleeOnly tells whether the peer can only be called: hosts and the API server call nothing of
// the graph's (nothing could tell such a caller apart).
func (x *External) CalleeOnly() bool { return len(x.Hosts) > 0 || x.KubernetesAPI }

// Identified tells whether Istio can match the peer's callers by identity: pods of namespaces
// named, in the mesh.
func (x *External) Identified() bool { return len(x.Namespaces) > 0 && !x.Unmeshed }

// Service returns the declared service of that name.
func (g *Graph) Service(name string) (*Service, bool) {
	i, ok := g.index[name]
	if !ok {
		return nil, false
	}
	return &g.Services[i], true
}

// Local reports whether the service's pods run in the graph's namespace.
func (g *Graph) Local(s *Service) bool {
	return s.External == nil && s.Remote == nil && s.Namespace == g.Namespace
}

// Build validates a ServiceGraph as a whole and normalises it. It reports every problem, not only
// the first, as an ErrorList; compact edges and structured connections that say the same thing
// become the same Edge (and a duplicate when both are written).
func Build(sg *v1alpha1.ServiceGraph) (*Graph, error) {
	b := builder{
		g: &Graph{
			Name:      sg.Name,
			Namespace: sg.Namespace,
			Mesh:      cmp.Or(sg.Spec.Mesh, v1alpha1.MeshIstio),
			MTLS:      cmp.Or(sg.Spec.MTLS, v1alpha1.MTLSStrict),
			AllowDNS:  sg.Spec.AllowDNS == nil || *sg.Spec.AllowDNS,
			index:     make(map[string]int, len(sg.Spec.Services)),
		},
		seen:     make(map[string]source, len(sg.Spec.Edges)+len(sg.Spec.Connections)),
		rejected: map[string]bool{},
	}
	b.g.Edges = make([]Edge, 0, len(sg.Spec.Edges)+len(sg.Spec.Connections))
	b.keys = make([]string, 0, cap(b.g.Edges))
	b.meta(sg)
	for i := range sg.Spec.Services {
		b.service(i, &sg.Spec.Services[i])
	}
	for i := range sg.Spec.External {
		b.external(i, &sg.Spec.External[i])
	}
	for _, s := range sg.Spec.Edges {
		b.compact(s)
	}
	for i := range sg.Spec.Connections {
		b.connection(&sg.Spec.Connections[i])
	}
	if err := b.errs.list.Err(); err != nil {
		return nil, err
	}
	b.sort()
	return b.g, nil
}

type builder struct {
	g    *Graph
	errs errs
	seen map[string]source // edge key → its first occurrence
	keys []string          // keys of g.Edges, index for index
	// rejected are names declared with a problem already reported: edges naming them are dropped
	// without a second, misleading "not declared".
	rejected map[string]bool
}

func (b *builder) meta(sg *v1alpha1.ServiceGraph) {
	// The name ends up in object names and in a label value.
	if sg.Name == "" {
		b.errs.add("metadata.name", "", "must not be empty")
	} else if msgs := validation.IsDNS1123Subdomain(sg.Name); len(msgs) > 0 {
		b.errs.add("metadata.name", "", "%q: %s", sg.Name, strings.Join(msgs, "; "))
	} else if len(sg.Name) > validation.LabelValueMaxLength {
		b.errs.add("metadata.name", "", "must be at most 63 characters: it is used as a label value")
	}
	if err := checkLabel(sg.Namespace, "namespace"); err != nil {
		b.errs.add("metadata.namespace", "", "%v", err)
	}
	if w := sg.Spec.Waypoint; w != nil {
		b.g.Waypoint, b.g.CreateWaypoint = w.Name, w.Create
		if msgs := validation.IsDNS1123Label(w.Name); w.Name != "" && len(msgs) > 0 {
			b.errs.add("spec.waypoint.name", "", "%q: %s", w.Name, strings.Join(msgs, "; "))
		}
	}
	switch sg.Spec.MTLS {
	case "", v1alpha1.MTLSStrict, v1alpha1.MTLSPermissive:
	default:
		b.errs.add("spec.mtls", "", "%q must be STRICT or PERMISSIVE", sg.Spec.MTLS)
	}
	switch sg.Spec.Mesh {
	case "", v1alpha1.MeshIstio, v1alpha1.MeshNone:
	default:
		b.errs.add("spec.mesh", "", "%q must be Istio or None", sg.Spec.Mesh)
	}
	if len(sg.Spec.Edges)+len(sg.Spec.Connections) == 0 {
		b.errs.add("spec", "", "a ServiceGraph needs at least one edge in spec.edges or spec.connections")
	}
}

func (b *builder) service(i int, s *v1alpha1.Service) {
	n := len(b.errs.list)
	item := b.declaration(serviceItem(s.Name), "services", i, s.Name)
	if s.Namespace != "" {
		if err := checkLabel(s.Namespace, "namespace"); err != nil {
			b.errs.add(item, "", "%v", err)
		}
	}
	b.selector(item, s.Selector)
	if s.ServiceAccount != "" {
		if msgs := validation.IsDNS1123Subdomain(s.ServiceAccount); len(msgs) > 0 {
			b.errs.add(item, "", "serviceAccount %q: %s", s.ServiceAccount, strings.Join(msgs, "; "))
		}
	}
	remote := b.remote(item, s.Remote)
	if len(b.errs.list) > n {
		b.rejected[s.Name] = true
		return
	}
	labels := map[string]string{"app": s.Name}
	if s.Selector != nil {
		labels = maps.Clone(s.Selector.MatchLabels)
	}
	b.g.index[s.Name] = len(b.g.Services)
	b.g.Services = append(b.g.Services, Service{
		Name:           s.Name,
		Namespace:      cmp.Or(s.Namespace, b.g.Namespace),
		Labels:         labels,
		ServiceAccount: cmp.Or(s.ServiceAccount, s.Name),
		Remote:         remote,
	})
}

// remote validates a service's place in another cluster and fills in the default gateway.
func (b *builder) remote(item string, r *v1alpha1.Remote) *Remote {
	if r == nil {
		return nil
	}
	if msgs := validation.IsDNS1123Subdomain(r.TrustDomain); len(msgs) > 0 {
		b.errs.add(item, "", "remote.trustDomain %q: %s", r.TrustDomain, strings.Join(msgs, "; "))
	}
	out := &Remote{TrustDomain: r.TrustDomain, GatewayNamespace: "istio-system", GatewayLabels: map[string]string{"istio": "eastwestgateway"}}
	if gw := r.Gateway; gw != nil {
		if err := checkLabel(gw.Namespace, "namespace"); err != nil {
			b.errs.add(item, "", "remote.gateway: %v", err)
		}
		b.selector(item+" remote.gateway", &metav1.LabelSelector{MatchLabels: gw.Labels})
		out.GatewayNamespace, out.GatewayLabels = gw.Namespace, maps.Clone(gw.Labels)
	}
	out.CIDRs = b.cidrs(item, "remote.cidrs", r.CIDRs)
	return out
}

// declaration checks the name of a service or an external peer (edges name both, so they share
// names) and returns how messages call it: by name, or by place when it has none.
func (b *builder) declaration(item, list string, i int, name string) string {
	if name == "" {
		item = fmt.Sprintf("spec.%s[%d]", list, i)
	}
	if err := checkLabel(name, "name"); err != nil {
		b.errs.add(item, "", "%v", err)
	}
	if _, dup := b.g.index[name]; dup {
		b.errs.add(item, "", "declared more than once")
	}
	return item
}

// selector accepts matchLabels only: Istio workload selectors cannot say more, and an empty
// selector would select every pod of the namespace.
func (b *builder) selector(item string, sel *metav1.LabelSelector) {
	if sel == nil {
		return
	}
	switch {
	case len(sel.MatchExpressions) > 0:
		b.errs.add(item, "", "selector.matchExpressions is not supported: Istio workload selectors take matchLabels only")
	case len(sel.MatchLabels) == 0:
		b.errs.add(item, "", "selector.matchLabels must not be empty: an empty selector would match every pod")
	}
	for _, k := range slices.Sorted(maps.Keys(sel.MatchLabels)) {
		msgs := validation.IsQualifiedName(k)
		msgs = append(msgs, validation.IsValidLabelValue(sel.MatchLabels[k])...)
		if len(msgs) > 0 {
			b.errs.add(item, "", "selector.matchLabels %q: %s", k, strings.Join(msgs, "; "))
		}
	}
}

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

// sortedSet sorts and de-duplicates in place; the edge owns the slice.
func sortedSet(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	slices.Sort(s)
	return slices.Compact(s)
}

// sort orders services by name and edges by key, so that the order of the spec never shows in the
// output.
func (b *builder) sort() {
	g := b.g
	slices.SortFunc(g.Services, func(x, y Service) int { return strings.Compare(x.Name, y.Name) })
	for i, s := range g.Services {
		g.index[s.Name] = i
	}
	order := make([]int, len(g.Edges))
	for i := range order {
		order[i] = i
	}
	// By caller, then callee: the compiler relies on a service's edges to one peer being adjacent.
	slices.SortFunc(order, func(x, y int) int {
		ex, ey := &g.Edges[x], &g.Edges[y]
		return cmp.Or(strings.Compare(ex.From, ey.From), strings.Compare(ex.To, ey.To), strings.Compare(b.keys[x], b.keys[y]))
	})
	edges := make([]Edge, len(order))
	for i, j := range order {
		edges[i] = g.Edges[j]
	}
	g.Edges = edges
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
