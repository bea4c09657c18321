package eval

import (
	"cmp"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/servicegraph/servicegraph-operator/internal/semantics"
)

// Witnesses: the peers and ports made up to match what a foreign rule names, so the judge can
// ask about the connections the rule opens (np-guard calls them representative peers).

// selected lists the namespace's workloads a selector picks, and a pod made to match it.
func (j *judge) selected(sel *metav1.LabelSelector) []*Workload {
	var out []*Workload
	for _, w := range j.local {
		if sel == nil || semantics.SelectorMatches(sel, w.Labels) {
			out = append(out, w)
		}
	}
	made := &Workload{Namespace: j.namespace, Name: "pod" + labelText(semantics.LabelsMatching(sel)), Labels: semantics.LabelsMatching(sel), ServiceAccount: "default", Meshed: true}
	return append(out, made)
}

func labelText(l map[string]string) string {
	if len(l) == 0 {
		return ""
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(l)) {
		parts = append(parts, k+"="+l[k])
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// peer makes an endpoint that a NetworkPolicy peer matches.
func (j *judge) peer(p networkingv1.NetworkPolicyPeer) (source, bool) {
	if p.IPBlock != nil {
		ip, ok := addressIn(p.IPBlock.CIDR, p.IPBlock.Except)
		return source{Endpoint: Endpoint{IP: ip}}, ok
	}
	ns, nsLabels := j.namespace, map[string]string(nil)
	if p.NamespaceSelector != nil {
		nsLabels = semantics.LabelsMatching(p.NamespaceSelector)
		ns = nsLabels[corev1.LabelMetadataName]
		if ns == "" {
			ns = "namespace" + labelText(nsLabels)
		}
	}
	pod := semantics.LabelsMatching(p.PodSelector)
	w := &Workload{Namespace: ns, Name: "pod" + labelText(pod), Labels: pod, ServiceAccount: "default", Meshed: true}
	if nsLabels == nil {
		return source{Endpoint: Endpoint{Workload: w}}, true
	}
	return source{Endpoint: Endpoint{Workload: w}, namespaces: map[string]map[string]string{ns: nsLabels}}, true
}

// addressIn picks an address of a block outside its exceptions: the second, the last but one, or
// the one after an exception (the block's own address when it is one).
func addressIn(cidr string, except []string) (string, bool) {
	prefix, err := netip.ParsePrefix(cidr)
	if err != nil {
		return "", false
	}
	prefix = prefix.Masked()
	candidates := []netip.Addr{prefix.Addr()} // a single address
	if prefix.Bits() < prefix.Addr().BitLen() {
		candidates = []netip.Addr{prefix.Addr().Next(), lastAddr(prefix).Prev()} // not a network's own address
	}
	for _, e := range except {
		if ex, err := netip.ParsePrefix(e); err == nil {
			candidates = append(candidates, lastAddr(ex.Masked()).Next())
		}
	}
	for _, a := range candidates {
		if a.IsValid() && semantics.InBlock(a.String(), &networkingv1.IPBlock{CIDR: cidr, Except: except}) {
			return a.String(), true
		}
	}
	return "", false
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := range b {
		if bit := i * 8; bit+8 > p.Bits() {
			keep := max(0, p.Bits()-bit)
			b[i] |= byte(0xff >> keep)
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// graphPorts lists the numbered ports the graph's NetworkPolicies and CiliumNetworkPolicies name: the ports a foreign rule
// for every port would most plausibly be used on.
func graphPorts(c *Cluster) []int32 {
	var out []int32
	for _, np := range c.NetworkPolicies {
		for _, r := range np.Spec.Ingress {
			for _, p := range r.Ports {
				if p.Port != nil && p.Port.StrVal == "" {
					out = append(out, p.Port.IntVal)
				}
			}
		}
	}
	// A Cilium graph's ports are in its CiliumNetworkPolicies.
	for _, p := range c.CiliumNetworkPolicies {
		for r := range semantics.CiliumPolicyOf(p).Rules() {
			for _, in := range r.Ingress {
				for _, pr := range in.ToPorts {
					for _, pp := range pr.Ports {
						if n, err := strconv.ParseInt(pp.Port, 10, 32); err == nil && n > 0 {
							out = append(out, int32(n))
						}
					}
				}
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// portSet is what to probe a destination on: the ports a rule names, or, for a rule on every port,
// the destination's container ports, the graph's ports and port 1, which nothing else uses.
type portSet []probePort

type probePort struct {
	port     int32
	name     string
	protocol corev1.Protocol
}

func (j *judge) allPorts(to *Workload) portSet {
	var out portSet
	for _, p := range to.Ports {
		out = append(out, probePort{port: p.ContainerPort, protocol: cmp.Or(p.Protocol, corev1.ProtocolTCP)})
	}
	for _, p := range append(slices.Clone(j.ports), 1) {
		out = append(out, probePort{port: p, protocol: corev1.ProtocolTCP})
	}
	return out
}
