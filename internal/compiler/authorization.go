package compiler

import (
	"fmt"
	"maps"
	"slices"
	"strconv"

	"google.golang.org/protobuf/proto"
	securityv1beta1 "istio.io/api/security/v1beta1"
	typev1beta1 "istio.io/api/type/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/graph"

	"github.com/servicegraph/servicegraph-operator/internal/semantics"
)

// +kubebuilder:rbac:groups=security.istio.io,resources=authorizationpolicies,verbs=get;list;watch;create;update;patch;delete

// AuthorizationPolicies allow each local service's callers by identity, in one ALLOW policy per
// service, and deny everything else with Istio's allow-nothing policy.
var AuthorizationPolicies = &Output{
	GVK:       securityv1.SchemeGroupVersion.WithKind("AuthorizationPolicy"),
	Layer:     LayerIstio,
	Condition: v1alpha1.ConditionAuthorizationReady,
	Emit: func(c *Compilation) []Emitted {
		var out []Emitted
		for _, sp := range c.sortedPolicies() {
			for _, ap := range []*securityv1.AuthorizationPolicy{c.serviceAuthorizationPolicy(sp), c.waypointAuthorizationPolicy(sp)} {
				if ap != nil {
					out = append(out, Emitted{Object: ap, Phase: PhaseAllow})
				}
			}
		}
		out = append(out, Emitted{Object: c.denyAll(), Phase: PhaseDeny})
		if ap := c.waypointDenyAll(); ap != nil {
			out = append(out, Emitted{Object: ap, Phase: PhaseDeny})
		}
		return out
	},
	// Istio evaluates and reports a dry-run policy without enforcing it.
	Audit: func(obj Object) Object {
		obj.SetAnnotations(map[string]string{AnnotationDryRun: "true"})
		return obj
	},
	SpecEqual:          sameSpec(func(w, h *securityv1.AuthorizationPolicy) bool { return proto.Equal(&w.Spec, &h.Spec) }),
	ManagedAnnotations: []string{AnnotationDryRun},
	Describe: func(s Summary) string {
		if s.Audit {
			return fmt.Sprintf("Audit mode: %d AuthorizationPolicies applied in dry-run (evaluated and reported, not enforced)", s.Count)
		}
		return fmt.Sprintf("%d AuthorizationPolicies applied, allow-nothing included", s.Count)
	},
	Limit: func(obj Object) string {
		if ap, ok := obj.(*securityv1.AuthorizationPolicy); ok && len(ap.Spec.Rules) > MaxAuthorizationRules {
			return fmt.Sprintf("would have %d rules; Istio accepts at most %d: split the callers across services", len(ap.Spec.Rules), MaxAuthorizationRules)
		}
		return ""
	},
	RoughSize: func(obj Object) int {
		ap, ok := obj.(*securityv1.AuthorizationPolicy)
		if !ok {
			return 0
		}
		s := newSizer()
		s.labels(ap.Spec.GetSelector().GetMatchLabels())
		for _, r := range ap.Spec.Rules {
			for _, f := range r.From {
				s.strings(f.GetSource().GetPrincipals())
			}
			for _, t := range r.To {
				op := t.GetOperation()
				s.strings(op.GetPorts())
				s.strings(op.GetPaths())
				s.strings(op.GetMethods())
			}
			s.size += 4 * perItem
		}
		return s.size
	},
}

// denyAll is Istio's allow-nothing policy: an empty spec selects every workload of the namespace
// and, having no rule, matches no request.
func (c *Compilation) denyAll() *securityv1.AuthorizationPolicy {
	return &securityv1.AuthorizationPolicy{
		TypeMeta:   istioType("AuthorizationPolicy"),
		ObjectMeta: c.Meta(graphObjectName(c.g.Name, suffixDenyAll), ""),
	}
}

// serviceAuthorizationPolicy allows every caller of a local service in one ALLOW policy (once an
// ALLOW policy selects a workload, whatever it does not match is denied, so callers must not be
// split across objects that apply one by one). It returns nil when no edge into the service has a
// port Istio intercepts: Istio does not see UDP or SCTP.
//
// For a service in ambient mode the policy is ztunnel's, which enforces layer 4 only: its edges
// with paths or methods are left to the waypoint, and when its Services go through one the
// waypoint's identity is admitted on every edge's ports.
func (c *Compilation) serviceAuthorizationPolicy(sp *servicePolicy) *securityv1.AuthorizationPolicy {
	var rules []*securityv1beta1.Rule
	var dedup run[*securityv1beta1.Rule]
	a := c.ambient(sp.svc.Name)
	for _, e := range sp.ingress {
		if a != nil && httpOnly(e.Edge) {
			continue
		}
		if r := c.authorizationRule(e.Edge); r != nil && dedup.first(e.From, r, sameOperation) {
			rules = append(rules, r)
		}
	}
	if a != nil && a.through {
		if r := c.waypointRule(sp, a); r != nil {
			rules = append(rules, r)
		}
	}
	if len(rules) == 0 {
		return nil
	}
	ap := &securityv1.AuthorizationPolicy{
		TypeMeta:   istioType("AuthorizationPolicy"),
		ObjectMeta: c.Meta(serviceObjectName(c.g.Name, sp.svc.Name), sp.svc.Name),
	}
	ap.Spec.Selector = &typev1beta1.WorkloadSelector{MatchLabels: maps.Clone(sp.svc.Labels)}
	// ALLOW is the action's zero value: the printed object leaves it out, and Istio reads it so.
	ap.Spec.Action = securityv1beta1.AuthorizationPolicy_ALLOW
	ap.Spec.Rules = rules
	return ap
}

// authorizationRule allows the edge's caller by identity, on the edge's ports, paths and methods.
// AuthorizationPolicy ports are numbers only: when an edge has a named port the rule leaves ports
// out and restricts by identity (and path) alone, and the NetworkPolicy still restricts the port.
// nil when the edge has no port Istio intercepts.
func (c *Compilation) authorizationRule(e *graph.Edge) *securityv1beta1.Rule {
	var ports []string
	named := false
	for _, p := range e.Ports {
		switch {
		case !p.Meshed():
		case p.Named() && c.ambient(e.To) != nil:
			// ztunnel ignores a port name: resolve it, or leave the edge closed and say so.
			n, ok := c.facts.NamedPorts[e.To][p.Port.StrVal]
			if !ok {
				c.unresolved = append(c.unresolved, fmt.Sprintf("edge %s: no pod of %s declares a container port named %s, and ztunnel matches port numbers only", e, e.To, p.Port.StrVal))
				return nil
			}
			ports = append(ports, strconv.Itoa(int(n)))
		case p.Named():
			named = true
		default:
			ports = append(ports, strconv.Itoa(int(p.Port.IntVal)))
		}
	}
	if !named && len(ports) == 0 {
		return nil
	}
	if named {
		ports = nil
	}
	rule := &securityv1beta1.Rule{From: c.source(e.From)}
	if len(ports) > 0 || len(e.Paths) > 0 || len(e.Methods) > 0 {
		// The graph is this compilation's own copy, so its slices can be handed out.
		rule.To = []*securityv1beta1.Rule_To{{Operation: &securityv1beta1.Operation{
			Ports:   ports,
			Paths:   e.Paths,
			Methods: e.Methods,
		}}}
	}
	return rule
}

// sameOperation reports whether two rules of one caller allow the same operations: edges that
// differ only in ports Istio does not see give one rule.
func sameOperation(a, b *securityv1beta1.Rule) bool {
	if len(a.To) != len(b.To) {
		return false
	}
	for i := range a.To {
		x, y := a.To[i].Operation, b.To[i].Operation
		if !slices.Equal(x.Ports, y.Ports) || !slices.Equal(x.Paths, y.Paths) || !slices.Equal(x.Methods, y.Methods) {
			return false
		}
	}
	return true
}

// source is a rule's from: the caller's principal, "<trustDomain>/ns/<namespace>/sa/<account>",
// in its own cluster's trust domain for a remote service. One per service, shared by its rules.
// An external caller is matched by its namespaces (an identity), by its addresses, or, unmeshed
// without addresses, not at all: the rule then admits any source on its ports, and only the
// NetworkPolicy restricts who connects.
func (c *Compilation) source(name string) []*securityv1beta1.Rule_From {
	if f, ok := c.sources[name]; ok {
		return f
	}
	svc := c.service(name)
	var src *securityv1beta1.Source
	switch x := svc.External; {
	case x == nil:
		trustDomain := c.opts.TrustDomain
		if svc.Remote != nil {
			trustDomain = svc.Remote.TrustDomain
		}
		src = &securityv1beta1.Source{Principals: []string{semantics.Principal(trustDomain, svc.Namespace, svc.ServiceAccount)}}
	case x.Identified():
		src = &securityv1beta1.Source{Namespaces: x.Namespaces}
	case len(x.CIDRs) > 0:
		src = &securityv1beta1.Source{IpBlocks: x.CIDRs, NotIpBlocks: x.Except}
	}
	var f []*securityv1beta1.Rule_From
	if src != nil {
		f = []*securityv1beta1.Rule_From{{Source: src}}
	}
	c.sources[name] = f
	return f
}
