package graph

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
	// NetworkPolicy is spec.networkPolicy, Kubernetes when unset.
	NetworkPolicy v1alpha1.NetworkPolicyAPI
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
			Name:          sg.Name,
			Namespace:     sg.Namespace,
			Mesh:          cmp.Or(sg.Spec.Mesh, v1alpha1.MeshIstio),
			NetworkPolicy: cmp.Or(sg.Spec.NetworkPolicy, v1alpha1.NetworkPolicyKubernetes),
			MTLS:          cmp.Or(sg.Spec.MTLS, v1alpha1.MTLSStrict),
			AllowDNS:      sg.Spec.AllowDNS == nil || *sg.Spec.AllowDNS,
			index:         make(map[string]int, len(sg.Spec.Services)),
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
	b.ciliumPortAliases()
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
	switch sg.Spec.NetworkPolicy {
	case "", v1alpha1.NetworkPolicyKubernetes, v1alpha1.NetworkPolicyCilium:
	default:
		b.errs.add("spec.networkPolicy", "", "%q must be Kubernetes or Cilium", sg.Spec.NetworkPolicy)
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
		if msgs := validation.IsValidLabelValue(s.ServiceAccount); b.g.NetworkPolicy == v1alpha1.NetworkPolicyCilium && len(msgs) > 0 {
			// Cilium selects a ServiceAccount as a label value.
			b.errs.add(item, "", "serviceAccount %q cannot be selected by CiliumNetworkPolicies (networkPolicy Cilium): %s", s.ServiceAccount, strings.Join(msgs, "; "))
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
