package traffic

import (
	"net/netip"
	"slices"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/compiler"
	"github.com/servicegraph/servicegraph-operator/internal/eval"
	"github.com/servicegraph/servicegraph-operator/internal/graph"
)

// Against turns a proposal into the existing graph plus what it does not allow: the proposal's
// services take the name of the base graph's service selecting the same pods, and an edge whose
// every port and path the base graph's policies (judge: the base compiled, as check sees it)
// already allow is left out. Write then prints the base graph's spec followed by the additions.
func (p *Proposal) Against(base *v1alpha1.ServiceGraph, judge Judge) error {
	g, err := graph.Build(base)
	if err != nil {
		return err
	}
	p.Name, p.Base = base.Name, base
	rename := map[string]string{}
	var kept []ProposedService
	for _, s := range p.Services {
		ns := s.Namespace
		if ns == "" {
			ns = p.Namespace
		}
		i := slices.IndexFunc(g.Services, func(b graph.Service) bool {
			return b.External == nil && b.Namespace == ns && compiler.Selects(b.Labels, s.Labels)
		})
		if i >= 0 {
			rename[s.Name] = g.Services[i].Name
			continue
		}
		if _, taken := g.Service(s.Name); taken {
			s.Name = s.Name + "-seen"
			rename[s.Name] = s.Name
		}
		kept = append(kept, s)
	}
	var edges []ProposedEdge
	for _, e := range p.Edges {
		if p.allowedBy(judge, e) {
			continue
		}
		if n, ok := rename[e.From]; ok {
			e.From = n
		}
		if n, ok := rename[e.To]; ok {
			e.To = n
		}
		edges = append(edges, e)
	}
	p.Services, p.Edges = kept, edges
	return nil
}

// allowedBy tells whether the policies let an edge's caller reach its destination on every port
// and path of it.
func (p *Proposal) allowedBy(judge Judge, e ProposedEdge) bool {
	from, ok := p.endpoint(e.From)
	to, ok2 := p.endpoint(e.To)
	if !ok || !ok2 || to.Workload == nil {
		return false
	}
	paths := e.Paths
	if len(paths) == 0 {
		paths = []string{""}
	}
	for _, port := range e.Ports {
		for _, path := range paths {
			r := eval.Request{From: from, To: to.Workload, Port: port, Protocol: e.Protocol}
			if path != "" {
				r.HTTP = &eval.HTTP{Path: path, Method: first(e.Methods), Host: "-"}
			}
			if !judge.Check(r).Allowed {
				return false
			}
		}
	}
	return true
}

// endpoint is a proposal's party by its name: a service's pods, or an external peer's first address
// or namespace.
func (p *Proposal) endpoint(name string) (eval.Endpoint, bool) {
	for _, s := range p.Services {
		if s.Name == name {
			ns := s.Namespace
			if ns == "" {
				ns = p.Namespace
			}
			return eval.Endpoint{Workload: &eval.Workload{Namespace: ns, Name: s.Name, Labels: s.Labels, ServiceAccount: s.ServiceAccount, Meshed: true}}, true
		}
	}
	for _, x := range p.External {
		if x.Name != name {
			continue
		}
		if len(x.Namespaces) > 0 {
			return eval.Endpoint{Workload: &eval.Workload{Namespace: x.Namespaces[0], Name: "any", ServiceAccount: "default", Meshed: !x.Unmeshed}}, true
		}
		if len(x.CIDRs) > 0 {
			if prefix, err := netip.ParsePrefix(x.CIDRs[0]); err == nil {
				return eval.Endpoint{IP: prefix.Addr().String()}, true
			}
		}
	}
	return eval.Endpoint{}, false
}
