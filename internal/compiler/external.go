package compiler

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/servicegraph/servicegraph-operator/internal/graph"
)

// APIServerEndpoint is one address of the Kubernetes API server, from the EndpointSlice of
// Service default/kubernetes.
type APIServerEndpoint struct {
	Address string
	Port    int32
}

// APIServerEndpoints reads the ready addresses and TCP ports of the API server's EndpointSlice.
func APIServerEndpoints(slice *discoveryv1.EndpointSlice) []APIServerEndpoint {
	var out []APIServerEndpoint
	for _, ep := range slice.Endpoints {
		if ready := ep.Conditions.Ready; ready != nil && !*ready {
			continue
		}
		for _, addr := range ep.Addresses {
			for _, p := range slice.Ports {
				if p.Port != nil && (p.Protocol == nil || *p.Protocol == corev1.ProtocolTCP) {
					out = append(out, APIServerEndpoint{Address: addr, Port: *p.Port})
				}
			}
		}
	}
	return out
}

// ParseClusterCIDRs reads the manager's --cluster-cidrs: comma-separated IP ranges, in their
// canonical form.
func ParseClusterCIDRs(s string) ([]string, error) {
	var out []string
	for _, c := range strings.Split(s, ",") {
		p, err := netip.ParsePrefix(strings.TrimSpace(c))
		if err != nil {
			return nil, fmt.Errorf("%q is not an IP range such as 10.244.0.0/16", strings.TrimSpace(c))
		}
		out = append(out, p.Masked().String())
	}
	return out, nil
}

// externalPeers are the NetworkPolicy peers of an external peer.
func (c *Compilation) externalPeers(x *graph.External) []networkingv1.NetworkPolicyPeer {
	switch {
	case len(x.Namespaces) > 0 || x.NamespaceSelector != nil:
		ns := x.NamespaceSelector.DeepCopy()
		if len(x.Namespaces) > 0 {
			ns = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
				Key: namespaceLabel, Operator: metav1.LabelSelectorOpIn, Values: slices.Clone(x.Namespaces)}}}
		}
		return []networkingv1.NetworkPolicyPeer{{NamespaceSelector: ns, PodSelector: x.PodSelector.DeepCopy()}}
	case len(x.CIDRs) > 0:
		return ipBlocks(x.CIDRs, x.Except)
	case len(x.Hosts) > 0:
		// Names cannot be matched: every address outside the cluster's own ranges.
		return ipBlocks(c.outside(), c.opts.ClusterCIDRs)
	case x.KubernetesAPI:
		var hosts []string
		for _, ep := range c.facts.APIServer {
			if a, err := netip.ParseAddr(ep.Address); err == nil {
				hosts = append(hosts, netip.PrefixFrom(a, a.BitLen()).String())
			}
		}
		slices.Sort(hosts)
		return ipBlocks(slices.Compact(hosts), nil)
	}
	return nil
}

// outside is the whole address space of the cluster's IP families: the families of the cluster's
// ranges when they are given (a single-stack cluster gets no ::/0, which some analyzers and
// enforcers read as covering IPv4-mapped addresses too), both otherwise.
func (c *Compilation) outside() []string {
	v4 := slices.ContainsFunc(c.opts.ClusterCIDRs, func(s string) bool { return netip.MustParsePrefix(s).Addr().Is4() })
	v6 := slices.ContainsFunc(c.opts.ClusterCIDRs, func(s string) bool { return !netip.MustParsePrefix(s).Addr().Is4() })
	switch {
	case v4 && !v6:
		return []string{"0.0.0.0/0"}
	case v6 && !v4:
		return []string{"::/0"}
	}
	return []string{"0.0.0.0/0", "::/0"}
}

// ipBlocks is one peer per range, each with the except ranges inside it.
func ipBlocks(cidrs, except []string) []networkingv1.NetworkPolicyPeer {
	peers := make([]networkingv1.NetworkPolicyPeer, 0, len(cidrs))
	for _, c := range cidrs {
		cp := netip.MustParsePrefix(c)
		block := &networkingv1.IPBlock{CIDR: c}
		for _, e := range except {
			ep, err := netip.ParsePrefix(e)
			if err == nil && ep.Addr().Is4() == cp.Addr().Is4() && cp.Bits() < ep.Bits() && cp.Contains(ep.Addr()) {
				block.Except = append(block.Except, ep.Masked().String())
			}
		}
		peers = append(peers, networkingv1.NetworkPolicyPeer{IPBlock: block})
	}
	return peers
}

// apiServerPorts are the API server's own ports, TCP.
func (c *Compilation) apiServerPorts() []networkingv1.NetworkPolicyPort {
	var ports []int32
	for _, ep := range c.facts.APIServer {
		ports = append(ports, ep.Port)
	}
	slices.Sort(ports)
	var out []networkingv1.NetworkPolicyPort
	for _, p := range slices.Compact(ports) {
		out = append(out, networkingv1.NetworkPolicyPort{Protocol: intern(c.protocols, corev1.ProtocolTCP), Port: intern(c.portValues, intstr.FromInt32(p))})
	}
	return out
}
