// Package compiler turns a ServiceGraph into the Kubernetes and Istio objects that enforce it.
// Compile is pure and deterministic: the same graph and options give byte-identical objects, with
// no client, clock or map order involved.
//
// The model is two-sided. A graph writes objects into its own namespace only: for an edge to a
// peer in another namespace it writes the caller's egress rule, and that namespace's own graph must
// allow the matching ingress (it declares the caller as a peer); for an edge from a peer in
// another namespace it writes the ingress rule and the AuthorizationPolicy rule.
package compiler

import (
	"errors"
	"maps"
	"slices"
	"strings"

	securityv1beta1 "istio.io/api/security/v1beta1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/graph"
)

// Compile validates the graph as a whole and returns the objects that enforce it and the plan to
// apply them, given the facts observed in the cluster; or a graph.ErrorList naming every offending
// edge. Objects carry no ownerReferences: the reconciler adds them. They share no memory with the
// input, but objects of one Result share the parts that many rules repeat (a service's label
// selector, an edge's ports, a caller's principal): DeepCopy an object before changing its spec.
func Compile(sg *v1alpha1.ServiceGraph, opts Options, facts Facts) (*Result, error) {
	g, err := graph.Build(sg)
	if err != nil {
		return nil, err
	}
	reg := opts.outputs()
	l := layers{off: reg.layersOff(facts.Missing)}
	if g.Mesh == v1alpha1.MeshNone {
		l.disabled = []*Layer{LayerIstio}
	}
	if unused := networkPolicyLayerUnused(g, l); unused != nil {
		l.disabled = append(l.disabled, unused)
	}
	meshOn := l.on(LayerIstio)
	if err := opts.validate(meshOn); err != nil {
		return nil, err
	}
	declared := g.MTLS
	mtls := decideMTLS(&sg.Spec, declared, meshOn, facts)
	g.MTLS = mtls.mode
	if g.Mesh == v1alpha1.MeshNone {
		declared, g.MTLS = "", "" // no mesh, no mutual TLS to speak of
	}
	res := newCompilation(g, opts, facts, reg, l).result()
	res.MTLSHeldBack, res.Unmeshed = mtls.heldBack, mtls.unmeshed
	if meshOn {
		res.ProtocolMismatches = ProtocolMismatches(g, facts.Services)
	}
	if sg.Spec.Enforcement == v1alpha1.EnforcementAudit {
		enforce := *g
		enforce.MTLS = declared
		res.Enforce = newCompilation(&enforce, opts, facts, reg, l).result()
		res.audit()
	}
	if err := checkLimits(reg, res.Objects()); err != nil {
		return nil, err
	}
	return res, nil
}

// result emits every output whose layer is on, phase by phase, kind by kind, each kind's objects
// sorted by name (names are unique within a kind only).
func (c *Compilation) result() *Result {
	c.collect()
	res := &Result{
		Services:    len(c.g.Services),
		Edges:       len(c.g.Edges),
		MTLSMode:    c.g.MTLS,
		Enforcement: v1alpha1.EnforcementEnforce,
		Graph:       c.g,
		Outputs:     c.reg,
		Off:         c.layers.off,
		Disabled:    c.layers.disabled,
	}
	if c.LayerOn(LayerIstio) {
		res.Plaintext = c.plaintext()
		res.WaypointProblems, res.Waypoints, res.Enroll = c.waypointProblems(), c.waypoints(), c.enrolled()
		if len(res.Enroll) > 0 {
			res.WaypointName = c.waypointName()
		}
	}
	res.Dataplanes = c.dataplanes()
	phases := []*[]Object{PhaseAllow: &res.Allow, PhaseMTLS: &res.MTLS, PhaseDeny: &res.Deny}
	for _, o := range c.reg {
		if !c.layers.on(o.Layer) {
			continue
		}
		var emitted [3][]Object
		for _, e := range o.Emit(c) {
			emitted[e.Phase] = append(emitted[e.Phase], e.Object)
		}
		for phase, objs := range emitted {
			*phases[phase] = append(*phases[phase], sortByName(objs)...)
		}
	}
	slices.Sort(c.unresolved)
	res.UnresolvedPorts = slices.Compact(c.unresolved)
	return res
}

// audit turns an enforcing result into its audit form, each output's objects as its Audit says
// (the AuthorizationPolicies in Istio's dry-run mode, no NetworkPolicy: any NetworkPolicy selecting
// a pod isolates it, so none can merely observe). The PeerAuthentication was compiled PERMISSIVE.
func (r *Result) audit() {
	r.Enforcement = v1alpha1.EnforcementAudit
	for _, phase := range []*[]Object{&r.Allow, &r.MTLS, &r.Deny} {
		var kept []Object
		for _, obj := range *phase {
			if o := r.Outputs.Of(obj); o.Audit != nil {
				obj = o.Audit(obj)
			}
			if obj != nil {
				kept = append(kept, obj)
			}
		}
		*phase = kept
	}
}

func (o *Options) validate(istio bool) error {
	var problems []string
	if o.DNS.Namespace == "" {
		problems = append(problems, "DNS.Namespace must be set")
	}
	if istio && o.TrustDomain == "" {
		problems = append(problems, "TrustDomain must be set when Istio is on")
	}
	if istio && o.Istiod.Namespace == "" {
		problems = append(problems, "Istiod.Namespace must be set when Istio is on")
	}
	if len(problems) > 0 {
		return errors.New("compiler options: " + strings.Join(problems, "; "))
	}
	return nil
}

// Compilation holds one compilation's state; outputs read the graph and shared helpers through it.
type Compilation struct {
	g     *graph.Graph
	opts  Options
	facts Facts
	reg   Registry
	// layers are the layers off and disabled.
	layers layers
	// services are the local services that have edges, keyed by name.
	services map[string]*servicePolicy
	// ambients memoises what the services in ambient mode need of a waypoint.
	ambients map[string]*ambientService
	// ruleBuffers are serviceRules' ingress and egress rules, reused from service to service.
	ruleBuffers [2][]l4Rule
	// unresolved are the edges into ambient services whose named port no pod declares.
	unresolved []string
	// These memoise values that many rules repeat, per service or per port.
	peers      map[string][]networkingv1.NetworkPolicyPeer
	sources    map[string][]*securityv1beta1.Rule_From
	protocols  map[corev1.Protocol]*corev1.Protocol
	portValues map[intstr.IntOrString]*intstr.IntOrString
}

// layers says which layers a compilation leaves out: off (their APIs are not served) or disabled
// (the graph says so: mesh None).
type layers struct{ off, disabled []*Layer }

func (l layers) on(layer *Layer) bool {
	return !slices.Contains(l.off, layer) && !slices.Contains(l.disabled, layer)
}

func newCompilation(g *graph.Graph, opts Options, facts Facts, reg Registry, l layers) *Compilation {
	return &Compilation{
		g:          g,
		opts:       opts,
		facts:      facts,
		reg:        reg,
		layers:     l,
		services:   make(map[string]*servicePolicy, len(g.Services)),
		ambients:   map[string]*ambientService{},
		peers:      make(map[string][]networkingv1.NetworkPolicyPeer, len(g.Services)),
		sources:    make(map[string][]*securityv1beta1.Rule_From, len(g.Services)),
		protocols:  make(map[corev1.Protocol]*corev1.Protocol, 3),
		portValues: make(map[intstr.IntOrString]*intstr.IntOrString),
	}
}

// Graph is the validated graph being compiled. Outputs must not change it.
func (c *Compilation) Graph() *graph.Graph { return c.g }

// LayerOn tells whether a layer is generated: its APIs are served and the graph wants it.
func (c *Compilation) LayerOn(l *Layer) bool { return c.layers.on(l) }

// Meta is the metadata of a generated object: its name, the graph's namespace and the operator's
// labels; service is "" for a namespace-wide object.
func (c *Compilation) Meta(name, service string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: c.g.Namespace, Labels: c.labels(service)}
}

// GraphObjectName names a namespace-wide object; ServiceObjectName one object of a service.
func (c *Compilation) GraphObjectName(suffix string) string { return graphObjectName(c.g.Name, suffix) }

// ServiceObjectName names the object of a service.
func (c *Compilation) ServiceObjectName(service string) string {
	return serviceObjectName(c.g.Name, service)
}

// ExternalObjectName names the object of an external peer.
func (c *Compilation) ExternalObjectName(peer string) string {
	return externalObjectName(c.g.Name, peer)
}

// LocalServices returns the services of the graph's namespace that have edges, by name.
func (c *Compilation) LocalServices() []*graph.Service {
	policies := c.sortedPolicies()
	out := make([]*graph.Service, len(policies))
	for i, sp := range policies {
		out[i] = sp.svc
	}
	return out
}

// servicePolicy gathers the edges that touch one local service.
type servicePolicy struct {
	svc     *graph.Service
	ingress []*edge // edges into the service
	egress  []*edge // edges out of it
}

// edge is a graph edge with what its two NetworkPolicy rules (the caller's egress, the callee's
// ingress) share, computed once.
type edge struct {
	*graph.Edge
	ports []networkingv1.NetworkPolicyPort
}

// collect files every edge under the local services at its ends; the graph's edges are sorted, so
// each service's lists are too.
func (c *Compilation) collect() {
	edges := make([]edge, len(c.g.Edges))
	for i := range c.g.Edges {
		e := &edges[i]
		e.Edge = &c.g.Edges[i]
		e.ports = c.networkPolicyPorts(e.Edge)
		if from := c.local(e.From); from != nil {
			from.egress = append(from.egress, e)
		}
		if to := c.local(e.To); to != nil {
			to.ingress = append(to.ingress, e)
		}
	}
}

// local returns the policy of a local service, nil for a peer in another namespace.
func (c *Compilation) local(name string) *servicePolicy {
	svc, _ := c.g.Service(name)
	if !c.g.Local(svc) {
		return nil
	}
	sp, ok := c.services[name]
	if !ok {
		sp = &servicePolicy{svc: svc}
		c.services[name] = sp
	}
	return sp
}

// sortedPolicies returns the service policies by service name.
func (c *Compilation) sortedPolicies() []*servicePolicy {
	names := slices.Sorted(maps.Keys(c.services))
	out := make([]*servicePolicy, len(names))
	for i, n := range names {
		out[i] = c.services[n]
	}
	return out
}

// sortByName orders objects of one kind by name.
func sortByName(objs []Object) []Object {
	slices.SortFunc(objs, func(a, b Object) int { return strings.Compare(a.GetName(), b.GetName()) })
	return objs
}

// run de-duplicates the rules of one policy. A service's edges to or from one peer are adjacent
// (the graph sorts edges by caller, then callee), so a rule only needs comparing with the rules
// kept for the same peer: no map, no keys.
type run[T any] struct {
	peer string
	kept []T
}

// first reports whether v is new among the peer's rules, and keeps it.
func (r *run[T]) first(peer string, v T, same func(T, T) bool) bool {
	if peer != r.peer {
		r.peer, r.kept = peer, r.kept[:0]
	}
	for _, k := range r.kept {
		if same(k, v) {
			return false
		}
	}
	r.kept = append(r.kept, v)
	return true
}

// labels are the generated objects' labels; service is "" for namespace-wide objects.
func (c *Compilation) labels(service string) map[string]string {
	l := map[string]string{
		LabelManagedBy: ManagedByValue,
		LabelGraph:     c.g.Name,
	}
	if service != "" {
		l[LabelService] = service
	}
	return l
}

func (c *Compilation) service(name string) *graph.Service {
	s, _ := c.g.Service(name)
	return s
}
