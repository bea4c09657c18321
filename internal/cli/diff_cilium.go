package cli

import (
	"maps"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/servicegraph/servicegraph-operator/internal/cilium"
	"github.com/servicegraph/servicegraph-operator/internal/eval"
	"github.com/servicegraph/servicegraph-operator/internal/semantics"
)

// What diff probes for Cilium's policies: the ports they name, the HTTP requests their HTTP rules
// admit, and the hosts their toFQDNs rules name, as destinations outside the cluster.

// ciliumPolicies are a cluster's CiliumNetworkPolicies and CiliumClusterwideNetworkPolicies.
func ciliumPolicies(c *eval.Cluster) []semantics.CiliumPolicy {
	var out []semantics.CiliumPolicy
	for _, p := range c.CiliumNetworkPolicies {
		out = append(out, semantics.CiliumPolicyOf(p))
	}
	for _, p := range c.CiliumClusterwideNetworkPolicies {
		out = append(out, semantics.CiliumClusterwidePolicyOf(p))
	}
	return out
}

// addCiliumPorts adds the numbered ports of a cluster's Cilium policies (TCP for any protocol),
// and, for each HTTP rule, a request it admits on its ports.
func addCiliumPorts(c *eval.Cluster, add func(portTarget)) {
	for _, p := range ciliumPolicies(c) {
		for r := range p.Rules() {
			var rules []cilium.PortRule
			for _, x := range r.Ingress {
				rules = append(rules, x.ToPorts...)
			}
			for _, x := range r.Egress {
				rules = append(rules, x.ToPorts...)
			}
			for _, x := range r.IngressDeny {
				rules = append(rules, denyPorts(x.ToPorts)...)
			}
			for _, x := range r.EgressDeny {
				rules = append(rules, denyPorts(x.ToPorts)...)
			}
			for _, pr := range rules {
				addPortRule(pr, add)
			}
		}
	}
}

func denyPorts(rules []cilium.PortDenyRule) []cilium.PortRule {
	out := make([]cilium.PortRule, len(rules))
	for i, r := range rules {
		out[i] = cilium.PortRule{Ports: r.Ports}
	}
	return out
}

func addPortRule(pr cilium.PortRule, add func(portTarget)) {
	for _, pp := range pr.Ports {
		n, err := strconv.ParseUint(pp.Port, 0, 16)
		proto := corev1.Protocol(strings.ToUpper(pp.Protocol))
		if proto == "" || proto == "ANY" {
			proto = corev1.ProtocolTCP
		}
		if err != nil || n == 0 || !slices.Contains([]corev1.Protocol{corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP}, proto) {
			continue
		}
		add(portTarget{port: int32(n), protocol: proto})
		if pr.Rules == nil || proto != corev1.ProtocolTCP {
			continue
		}
		for _, h := range pr.Rules.HTTP {
			if path, method, ok := semantics.CiliumHTTPExample(h); ok {
				add(portTarget{port: int32(n), protocol: proto, http: &eval.HTTP{Path: path, Method: method}})
			}
		}
	}
}

// ciliumHosts are the names toFQDNs rules of the clusters' policies match exactly, as destinations
// outside the cluster.
func ciliumHosts(clusters ...*eval.Cluster) []*eval.Workload {
	hosts := map[string]bool{}
	for _, c := range clusters {
		for _, p := range ciliumPolicies(c) {
			for r := range p.Rules() {
				for _, x := range r.Egress {
					for _, f := range x.ToFQDNs {
						if f.MatchName != "" {
							hosts[strings.TrimSuffix(strings.ToLower(f.MatchName), ".")] = true
						}
					}
				}
			}
		}
	}
	var out []*eval.Workload
	for _, h := range slices.Sorted(maps.Keys(hosts)) {
		out = append(out, &eval.Workload{Name: h, Host: h})
	}
	return out
}
