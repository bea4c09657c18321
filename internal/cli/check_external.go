package cli

import (
	"net/netip"
	"regexp"
	"strings"

	"github.com/servicegraph/servicegraph-operator/internal/eval"
	"github.com/servicegraph/servicegraph-operator/internal/graph"
)

// Destinations outside the cluster. check's TO may be one when it names no workload: an address,
// a host name (matched by CiliumNetworkPolicies' toFQDNs, as if looked up through Cilium's DNS
// proxy), or an external peer of a graph: its first host, the API server (Cilium's kube-apiserver
// entity) or its first address.

// dnsName is a host name: labels of letters, digits, '-' and '_', with a dot at least.
var dnsName = regexp.MustCompile(`^([A-Za-z0-9_]([-A-Za-z0-9_]*[A-Za-z0-9_])?\.)+[A-Za-z0-9_]([-A-Za-z0-9_]*[A-Za-z0-9_])?\.?$`)

// external resolves a destination outside the cluster by name, when TO names no workload.
func (w *World) external(name string) (*eval.Workload, bool) {
	if _, err := netip.ParseAddr(name); err == nil {
		return &eval.Workload{Name: name, IP: name}, true
	}
	if x, ok := w.graphExternal(name); ok {
		return x, true
	}
	if dnsName.MatchString(name) {
		return &eval.Workload{Name: name, Host: strings.TrimSuffix(name, ".")}, true
	}
	return nil, false
}

// graphExternal is an external peer of a graph ([NAMESPACE/]NAME, in -n's namespace when it names
// none, or any graph's when -n is not given) as a destination: its first host without a wildcard,
// the API server, or the first address of its ranges.
func (w *World) graphExternal(name string) (*eval.Workload, bool) {
	ns, n, qualified := strings.Cut(name, "/")
	if !qualified {
		ns, n = w.namespace, name
	}
	for _, sg := range w.graphs {
		if ns != "" && sg.Namespace != ns {
			continue
		}
		g, err := graph.Build(sg)
		if err != nil {
			continue
		}
		s, ok := g.Service(n)
		if !ok || s.External == nil {
			continue
		}
		x := s.External
		for _, h := range x.Hosts {
			if !strings.Contains(h, "*") {
				return &eval.Workload{Name: h, Host: h}, true
			}
		}
		switch {
		case x.KubernetesAPI:
			return &eval.Workload{Name: s.Name + " (the API server)", APIServer: true}, true
		case len(x.CIDRs) > 0:
			if p, err := netip.ParsePrefix(x.CIDRs[0]); err == nil {
				return &eval.Workload{Name: p.Addr().String(), IP: p.Addr().String()}, true
			}
		}
	}
	return nil, false
}
