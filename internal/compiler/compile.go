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
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/graph"
)

// Compile validates the graph as a whole and returns the objects that enforce it, or a
// graph.ErrorList naming every offending edge. Objects carry no ownerReferences: the reconciler
// adds them. They share no memory with the input, but objects of one Result share the parts that
// many rules repeat (a service's label selector, an edge's ports, a caller's principal): DeepCopy
// an object before changing its spec.
func Compile(sg *v1alpha1.ServiceGraph, opts Options) (*Result, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	g, err := graph.Build(sg)
	if err != nil {
		return nil, err
	}
	audit := sg.Spec.Enforcement == v1alpha1.EnforcementAudit
	if audit {
		g.MTLS = v1alpha1.MTLSPermissive
	}
	c := compilation{
		g:          g,
		opts:       opts,
		services:   make(map[string]*servicePolicy, len(g.Services)),
		peers:      make(map[string][]networkingv1.NetworkPolicyPeer, len(g.Services)),
		sources:    make(map[string][]*securityv1beta1.Rule_From, len(g.Services)),
		protocols:  make(map[corev1.Protocol]*corev1.Protocol, 3),
		portValues: make(map[intstr.IntOrString]*intstr.IntOrString),
	}
	c.collect()
	res := &Result{
		Allow:    c.allow(),
		Deny:     c.deny(),
		Services: len(g.Services),
		Edges:    len(g.Edges),
		MTLSMode: g.MTLS,
		Graph:    g,
	}
	if opts.Istio {
		res.MTLS = []client.Object{c.peerAuthentication()}
	}
	res.Enforcement = v1alpha1.EnforcementEnforce
	if audit {
		res.audit()
	}
	if err := checkLimits(res.Objects()); err != nil {
		return nil, err
	}
	return res, nil
}

// audit turns an enforcing result into its audit form: the AuthorizationPolicies in Istio's
// dry-run mode and no NetworkPolicy (any NetworkPolicy selecting a pod isolates it, so none can
// merely observe). The PeerAuthentication was compiled PERMISSIVE already.
func (r *Result) audit() {
	r.Enforcement = v1alpha1.EnforcementAudit
	r.Allow = dryRun(r.Allow)
	r.Deny = dryRun(r.Deny)
}

// dryRun keeps the AuthorizationPolicies of a phase, marked dry-run.
func dryRun(objs []client.Object) []client.Object {
	var out []client.Object
	for _, obj := range objs {
		if ap, ok := obj.(*securityv1.AuthorizationPolicy); ok {
			ap.Annotations = map[string]string{AnnotationDryRun: "true"}
			out = append(out, ap)
		}
	}
	return out
}

func (o *Options) validate() error {
	var problems []string
	if o.DNS.Namespace == "" {
		problems = append(problems, "DNS.Namespace must be set")
	}
	if o.Istio && o.TrustDomain == "" {
		problems = append(problems, "TrustDomain must be set when Istio is on")
	}
	if o.Istio && o.Istiod.Namespace == "" {
		problems = append(problems, "Istiod.Namespace must be set when Istio is on")
	}
	if len(problems) > 0 {
		return errors.New("compiler options: " + strings.Join(problems, "; "))
	}
	return nil
}

// compilation holds one Compile call's state.
type compilation struct {
	g    *graph.Graph
	opts Options
	// services are the local services that have edges, keyed by name.
	services map[string]*servicePolicy
	// These memoise values that many rules repeat, per service or per port.
	peers      map[string][]networkingv1.NetworkPolicyPeer
	sources    map[string][]*securityv1beta1.Rule_From
	protocols  map[corev1.Protocol]*corev1.Protocol
	portValues map[intstr.IntOrString]*intstr.IntOrString
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
func (c *compilation) collect() {
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
func (c *compilation) local(name string) *servicePolicy {
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
func (c *compilation) sortedPolicies() []*servicePolicy {
	names := slices.Sorted(maps.Keys(c.services))
	out := make([]*servicePolicy, len(names))
	for i, n := range names {
		out[i] = c.services[n]
	}
	return out
}

func (c *compilation) allow() []client.Object {
	var nps, aps []client.Object
	if c.g.AllowDNS {
		nps = append(nps, c.allowDNS())
	}
	if c.opts.Istio {
		nps = append(nps, c.allowIstiod())
	}
	for _, sp := range c.sortedPolicies() {
		nps = append(nps, c.serviceNetworkPolicy(sp))
		if c.opts.Istio {
			if ap := c.serviceAuthorizationPolicy(sp); ap != nil {
				aps = append(aps, ap)
			}
		}
	}
	return append(sortByName(aps), sortByName(nps)...)
}

func (c *compilation) deny() []client.Object {
	if !c.opts.Istio {
		return []client.Object{c.defaultDeny()}
	}
	return []client.Object{c.denyAll(), c.defaultDeny()}
}

// sortByName orders objects of one kind (a phase lists its kinds in alphabetical order, then
// each kind's objects by name: names are unique within a kind only).
func sortByName(objs []client.Object) []client.Object {
	slices.SortFunc(objs, func(a, b client.Object) int { return strings.Compare(a.GetName(), b.GetName()) })
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
func (c *compilation) labels(service string) map[string]string {
	l := map[string]string{
		LabelManagedBy: ManagedByValue,
		LabelGraph:     c.g.Name,
	}
	if service != "" {
		l[LabelService] = service
	}
	return l
}

func (c *compilation) service(name string) *graph.Service {
	s, _ := c.g.Service(name)
	return s
}
