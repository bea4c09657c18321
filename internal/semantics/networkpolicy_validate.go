package semantics

import (
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metavalidation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// NetworkPolicyRefusals is what the API server refuses in a NetworkPolicy, rule for rule as
// k8s.io/kubernetes pkg/apis/networking/validation ValidateNetworkPolicy decides (that package
// works on internal types and is not a library), with apimachinery's validation of names, label
// selectors and port names: policyTypes Ingress or Egress, two at most; a port's protocol TCP, UDP
// or SCTP, its number in 1-65535 or its name an IANA service name, endPort only with a numbered
// port and not below it; a peer with at least one of podSelector, namespaceSelector and ipBlock,
// an ipBlock alone, its CIDR valid and each except a strict subset of it.
func NetworkPolicyRefusals(np *networkingv1.NetworkPolicy) field.ErrorList {
	var errs field.ErrorList
	if msgs := validation.IsDNS1123Subdomain(np.Name); len(msgs) > 0 {
		errs = append(errs, field.Invalid(field.NewPath("metadata", "name"), np.Name, strings.Join(msgs, "; ")))
	}
	if msgs := validation.IsDNS1123Label(np.Namespace); np.Namespace != "" && len(msgs) > 0 {
		errs = append(errs, field.Invalid(field.NewPath("metadata", "namespace"), np.Namespace, strings.Join(msgs, "; ")))
	}
	spec := field.NewPath("spec")
	errs = append(errs, validateSelector(&np.Spec.PodSelector, spec.Child("podSelector"))...)
	if len(np.Spec.PolicyTypes) > 2 {
		errs = append(errs, field.Invalid(spec.Child("policyTypes"), np.Spec.PolicyTypes, "may not specify more than two policyTypes"))
	}
	for i, t := range np.Spec.PolicyTypes {
		if t != networkingv1.PolicyTypeIngress && t != networkingv1.PolicyTypeEgress {
			errs = append(errs, field.NotSupported(spec.Child("policyTypes").Index(i), t, []string{"Ingress", "Egress"}))
		}
	}
	for i, r := range np.Spec.Ingress {
		path := spec.Child("ingress").Index(i)
		errs = append(errs, validatePorts(r.Ports, path.Child("ports"))...)
		errs = append(errs, validatePeers(r.From, path.Child("from"))...)
	}
	for i, r := range np.Spec.Egress {
		path := spec.Child("egress").Index(i)
		errs = append(errs, validatePorts(r.Ports, path.Child("ports"))...)
		errs = append(errs, validatePeers(r.To, path.Child("to"))...)
	}
	return errs
}

func validateSelector(sel *metav1.LabelSelector, path *field.Path) field.ErrorList {
	return metavalidation.ValidateLabelSelector(sel, metavalidation.LabelSelectorValidationOptions{}, path)
}

func validatePorts(ports []networkingv1.NetworkPolicyPort, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, p := range ports {
		at := path.Index(i)
		if p.Protocol != nil && !slices.Contains([]corev1.Protocol{corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP}, *p.Protocol) {
			errs = append(errs, field.NotSupported(at.Child("protocol"), *p.Protocol, []string{"TCP", "UDP", "SCTP"}))
		}
		switch {
		case p.Port == nil:
			if p.EndPort != nil {
				errs = append(errs, field.Required(at.Child("port"), "endPort needs a port"))
			}
		case p.Port.Type == intstr.Int:
			for _, msg := range validation.IsValidPortNum(int(p.Port.IntVal)) {
				errs = append(errs, field.Invalid(at.Child("port"), p.Port.IntVal, msg))
			}
			if p.EndPort != nil && *p.EndPort < p.Port.IntVal {
				errs = append(errs, field.Invalid(at.Child("endPort"), *p.EndPort, "must be greater than or equal to port"))
			}
			if p.EndPort != nil {
				for _, msg := range validation.IsValidPortNum(int(*p.EndPort)) {
					errs = append(errs, field.Invalid(at.Child("endPort"), *p.EndPort, msg))
				}
			}
		default:
			for _, msg := range validation.IsValidPortName(p.Port.StrVal) {
				errs = append(errs, field.Invalid(at.Child("port"), p.Port.StrVal, msg))
			}
			if p.EndPort != nil {
				errs = append(errs, field.Invalid(at.Child("endPort"), *p.EndPort, "may not be set when port is a name"))
			}
		}
	}
	return errs
}

func validatePeers(peers []networkingv1.NetworkPolicyPeer, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, p := range peers {
		at := path.Index(i)
		if EmptyPeer(p) {
			errs = append(errs, field.Required(at, "must specify a peer"))
		}
		if p.IPBlock != nil && (p.PodSelector != nil || p.NamespaceSelector != nil) {
			errs = append(errs, field.Forbidden(at, "may not specify both ipBlock and another peer"))
		}
		if p.PodSelector != nil {
			errs = append(errs, validateSelector(p.PodSelector, at.Child("podSelector"))...)
		}
		if p.NamespaceSelector != nil {
			errs = append(errs, validateSelector(p.NamespaceSelector, at.Child("namespaceSelector"))...)
		}
		if b := p.IPBlock; b != nil {
			errs = append(errs, validateIPBlock(b, at.Child("ipBlock"))...)
		}
	}
	return errs
}

// validateIPBlock checks the CIDR and that each except range is strictly inside it, as the API
// server does.
func validateIPBlock(b *networkingv1.IPBlock, path *field.Path) field.ErrorList {
	cidr, err := netip.ParsePrefix(b.CIDR)
	if err != nil {
		return field.ErrorList{field.Invalid(path.Child("cidr"), b.CIDR, "must be a valid CIDR such as 10.0.0.0/8")}
	}
	var errs field.ErrorList
	for i, e := range b.Except {
		ex, err := netip.ParsePrefix(e)
		switch {
		case err != nil:
			errs = append(errs, field.Invalid(path.Child("except").Index(i), e, "must be a valid CIDR such as 10.1.0.0/16"))
		case ex.Addr().Is4() != cidr.Addr().Is4() || ex.Bits() <= cidr.Bits() || !cidr.Masked().Contains(ex.Addr()):
			errs = append(errs, field.Invalid(path.Child("except").Index(i), e, "must be a strict subset of "+b.CIDR))
		}
	}
	return errs
}
