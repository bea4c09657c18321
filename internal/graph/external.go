package graph

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
)

// external validates an external peer and adds it to the graph's names.
func (b *builder) external(i int, x *v1alpha1.External) {
	n := len(b.errs.list)
	item := b.declaration(fmt.Sprintf("external %q", x.Name), "external", i, x.Name)
	kinds := 0
	for _, is := range []bool{len(x.CIDRs) > 0 && len(x.Hosts) == 0, x.Namespaces != nil, len(x.Hosts) > 0, x.KubernetesAPI} {
		if is {
			kinds++
		}
	}
	if kinds != 1 {
		b.errs.add(item, "", "an external peer is exactly one of cidrs, namespaces, hosts (which may come with cidrs) or kubernetesAPI: true")
	}
	if len(x.Except) > 0 && len(x.CIDRs) == 0 {
		b.errs.add(item, "", "except needs cidrs")
	}
	if x.Unmeshed && (len(x.Hosts) > 0 || x.KubernetesAPI) {
		b.errs.add(item, "", "unmeshed is for callers: cidrs or namespaces")
	}
	ext := &External{Hosts: slices.Clone(x.Hosts), KubernetesAPI: x.KubernetesAPI, Unmeshed: x.Unmeshed}
	ext.CIDRs = b.cidrs(item, "cidrs", x.CIDRs)
	ext.Except = b.cidrs(item, "except", x.Except)
	b.within(item, ext)
	for _, h := range x.Hosts {
		if msgs := validation.IsDNS1123Subdomain(strings.TrimPrefix(h, "*.")); len(msgs) > 0 || !strings.Contains(h, ".") {
			b.errs.add(item, "", "host %q must be a DNS name with a dot (a leading *. for a wildcard)", h)
		}
	}
	if ns := x.Namespaces; ns != nil {
		b.externalNamespaces(item, ns, ext)
	}
	if len(b.errs.list) > n {
		b.rejected[x.Name] = true
		return
	}
	b.g.index[x.Name] = len(b.g.Services)
	b.g.Services = append(b.g.Services, Service{Name: x.Name, External: ext})
}

// cidrs parses IP ranges into their canonical form ("10.0.0.1/8" is 10.0.0.0/8).
func (b *builder) cidrs(item, field string, in []string) []string {
	var out []string
	for _, c := range in {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			b.errs.add(item, "", "%s: %q is not an IP range such as 10.0.0.0/8", field, c)
			continue
		}
		out = append(out, p.Masked().String())
	}
	return out
}

// within checks that each except range lies inside one of the cidrs, as a NetworkPolicy ipBlock
// requires.
func (b *builder) within(item string, x *External) {
	for _, e := range x.Except {
		ep := netip.MustParsePrefix(e)
		if !slices.ContainsFunc(x.CIDRs, func(c string) bool {
			cp := netip.MustParsePrefix(c)
			return cp.Addr().Is4() == ep.Addr().Is4() && cp.Bits() < ep.Bits() && cp.Contains(ep.Addr())
		}) {
			b.errs.add(item, "", "except %s is not inside any of the cidrs", e)
		}
	}
}

func (b *builder) externalNamespaces(item string, ns *v1alpha1.ExternalNamespaces, x *External) {
	if (len(ns.Names) > 0) == (ns.Selector != nil) {
		b.errs.add(item, "", "namespaces takes names or a selector, not both")
	}
	for _, n := range ns.Names {
		if err := checkLabel(n, "namespace"); err != nil {
			b.errs.add(item, "", "%v", err)
		}
	}
	for field, sel := range map[string]*metav1.LabelSelector{"namespaces.selector": ns.Selector, "namespaces.podSelector": ns.PodSelector} {
		if sel == nil {
			continue
		}
		if _, err := metav1.LabelSelectorAsSelector(sel); err != nil {
			b.errs.add(item, "", "%s: %v", field, err)
		}
	}
	x.Namespaces = slices.Sorted(slices.Values(ns.Names))
	x.NamespaceSelector, x.PodSelector = ns.Selector.DeepCopy(), ns.PodSelector.DeepCopy()
}

// externalEdge checks what an edge to or from an external peer may say.
func (b *builder) externalEdge(e *Edge, from, to *Service, src source) {
	for _, end := range []struct {
		s  *Service
		ns string
	}{{from, e.FromNamespace}, {to, e.ToNamespace}} {
		if end.s.External != nil && end.ns != "" {
			b.errs.edge(src, "external peer %q has no namespace", end.s.Name)
		}
	}
	if x := to.External; x != nil && len(e.Paths)+len(e.Methods) > 0 {
		b.errs.edge(src, "paths and methods on an edge to external peer %q are not enforced: nothing of the mesh runs at its end", to.Name)
	}
	if x := to.External; x != nil && !x.KubernetesAPI {
		for _, p := range e.Ports {
			if p.Named() {
				b.errs.edge(src, "port %q: external peer %q has no container port names, give the number", p.Port.StrVal, to.Name)
			}
		}
	}
	x := from.External
	if x == nil {
		return
	}
	switch {
	case x.CalleeOnly():
		b.errs.edge(src, "external peer %q can only be called (hosts and kubernetesAPI call nothing of the graph's)", from.Name)
	case b.g.Mesh == v1alpha1.MeshIstio && !x.Unmeshed && !x.Identified():
		b.errs.edge(src, "callers from %q have no identity Istio can check: set unmeshed: true on it (it opens %s's ports of this edge to plain text) or name its namespaces", from.Name, to.Name)
	case b.g.Mesh == v1alpha1.MeshIstio && x.Unmeshed:
		for _, p := range e.Ports {
			if p.Named() {
				b.errs.edge(src, "port %q: a plain-text exception for unmeshed callers needs a port number (Istio's portLevelMtls takes numbers)", p.Port.StrVal)
			}
		}
	}
}
