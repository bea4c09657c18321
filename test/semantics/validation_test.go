package semantics_test

import (
	"net/netip"
	"slices"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metavalidation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// refused returns what the API server refuses in a NetworkPolicy. It follows ValidateNetworkPolicy
// of k8s.io/kubernetes/pkg/apis/networking/validation (not a library this module can import: it
// works on the internal types), rule for rule for the spec: label selectors as apimachinery
// validates them; policyTypes Ingress or Egress; a port's protocol TCP, UDP or SCTP, its number in
// 1-65535 or its name an IANA service name, endPort only with a numbered port and not below it;
// a peer with at least one of podSelector, namespaceSelector and ipBlock ("must specify a peer"),
// an ipBlock alone ("may not specify both ipBlock and another peer"), its CIDR valid and each
// except a strict subset of it.
func refused(np *networkingv1.NetworkPolicy) field.ErrorList {
	var errs field.ErrorList
	if msgs := validation.IsDNS1123Subdomain(np.Name); len(msgs) > 0 {
		errs = append(errs, field.Invalid(field.NewPath("metadata", "name"), np.Name, msgs[0]))
	}
	if msgs := validation.IsDNS1123Label(np.Namespace); np.Namespace != "" && len(msgs) > 0 {
		errs = append(errs, field.Invalid(field.NewPath("metadata", "namespace"), np.Namespace, msgs[0]))
	}
	spec := field.NewPath("spec")
	errs = append(errs, selector(&np.Spec.PodSelector, spec.Child("podSelector"))...)
	for i, r := range np.Spec.Ingress {
		errs = append(errs, ports(r.Ports, spec.Child("ingress").Index(i).Child("ports"))...)
		errs = append(errs, peers(r.From, spec.Child("ingress").Index(i).Child("from"))...)
	}
	for i, r := range np.Spec.Egress {
		errs = append(errs, ports(r.Ports, spec.Child("egress").Index(i).Child("ports"))...)
		errs = append(errs, peers(r.To, spec.Child("egress").Index(i).Child("to"))...)
	}
	if len(np.Spec.PolicyTypes) > 2 {
		errs = append(errs, field.Invalid(spec.Child("policyTypes"), np.Spec.PolicyTypes, "may not specify more than two policyTypes"))
	}
	for i, pt := range np.Spec.PolicyTypes {
		if pt != networkingv1.PolicyTypeIngress && pt != networkingv1.PolicyTypeEgress {
			errs = append(errs, field.NotSupported(spec.Child("policyTypes").Index(i), pt, []string{"Ingress", "Egress"}))
		}
	}
	return errs
}

func selector(sel *metav1.LabelSelector, path *field.Path) field.ErrorList {
	return metavalidation.ValidateLabelSelector(sel, metavalidation.LabelSelectorValidationOptions{}, path)
}

func ports(ps []networkingv1.NetworkPolicyPort, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, p := range ps {
		at := path.Index(i)
		if p.Protocol != nil && !slices.Contains(protocols, *p.Protocol) {
			errs = append(errs, field.NotSupported(at.Child("protocol"), *p.Protocol, []string{"TCP", "UDP", "SCTP"}))
		}
		switch {
		case p.Port == nil:
			if p.EndPort != nil {
				errs = append(errs, field.Forbidden(at.Child("endPort"), "may not be specified when `port` is not specified"))
			}
		case p.Port.Type == intstr.Int:
			for _, msg := range validation.IsValidPortNum(int(p.Port.IntVal)) {
				errs = append(errs, field.Invalid(at.Child("port"), p.Port.IntVal, msg))
			}
			if p.EndPort != nil {
				if *p.EndPort < p.Port.IntVal {
					errs = append(errs, field.Invalid(at.Child("endPort"), *p.EndPort, "must be greater than or equal to `port`"))
				}
				for _, msg := range validation.IsValidPortNum(int(*p.EndPort)) {
					errs = append(errs, field.Invalid(at.Child("endPort"), *p.EndPort, msg))
				}
			}
		default:
			for _, msg := range validation.IsValidPortName(p.Port.StrVal) {
				errs = append(errs, field.Invalid(at.Child("port"), p.Port.StrVal, msg))
			}
			if p.EndPort != nil {
				errs = append(errs, field.Invalid(at.Child("endPort"), *p.EndPort, "may not be specified when `port` is non-numeric"))
			}
		}
	}
	return errs
}

func peers(ps []networkingv1.NetworkPolicyPeer, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, p := range ps {
		at := path.Index(i)
		n := 0
		if p.PodSelector != nil {
			n++
			errs = append(errs, selector(p.PodSelector, at.Child("podSelector"))...)
		}
		if p.NamespaceSelector != nil {
			n++
			errs = append(errs, selector(p.NamespaceSelector, at.Child("namespaceSelector"))...)
		}
		if p.IPBlock != nil {
			n++
			errs = append(errs, ipBlock(p.IPBlock, at.Child("ipBlock"))...)
		}
		switch {
		case n == 0:
			errs = append(errs, field.Required(at, "must specify a peer"))
		case n > 1 && p.IPBlock != nil:
			errs = append(errs, field.Forbidden(at, "may not specify both ipBlock and another peer"))
		}
	}
	return errs
}

func ipBlock(b *networkingv1.IPBlock, path *field.Path) field.ErrorList {
	cidr, err := netip.ParsePrefix(b.CIDR)
	if err != nil {
		return field.ErrorList{field.Invalid(path.Child("cidr"), b.CIDR, "must be a valid CIDR")}
	}
	var errs field.ErrorList
	for i, e := range b.Except {
		ex, err := netip.ParsePrefix(e)
		if err != nil || ex.Addr().Is4() != cidr.Addr().Is4() || ex.Bits() <= cidr.Bits() || !cidr.Masked().Contains(ex.Addr()) {
			errs = append(errs, field.Invalid(path.Child("except").Index(i), e, "must be a strict subset of `cidr`"))
		}
	}
	return errs
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
