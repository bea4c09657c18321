package semantics_test

import (
	"net/netip"

	"github.com/servicegraph/servicegraph-operator/internal/semantics"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// refused is what the API server refuses in a NetworkPolicy.
func refused(np *networkingv1.NetworkPolicy) field.ErrorList {
	return semantics.NetworkPolicyRefusals(np)
}

// hasIPv6 tells whether a policy names an IPv6 range.
func hasIPv6(np *networkingv1.NetworkPolicy) bool {
	var blocks []*networkingv1.IPBlock
	for _, r := range np.Spec.Ingress {
		for _, p := range r.From {
			blocks = append(blocks, p.IPBlock)
		}
	}
	for _, r := range np.Spec.Egress {
		for _, p := range r.To {
			blocks = append(blocks, p.IPBlock)
		}
	}
	for _, b := range blocks {
		if b == nil {
			continue
		}
		for _, c := range append([]string{b.CIDR}, b.Except...) {
			if p, err := netip.ParsePrefix(c); err == nil && p.Addr().Is6() {
				return true
			}
		}
	}
	return false
}
