package lint

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	securityv1beta1 "istio.io/api/security/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/servicegraph/servicegraph-operator/internal/semantics"
)

var peerAuthenticationChecks = []check[*securityv1.PeerAuthentication]{
	weakMTLS,
	disabledForWorkloads,
	portLevelWithoutSelector,
	invalidPortLevelPorts,
}

// weakModes are the mutual-TLS modes worth a finding when they apply beyond single workloads.
var weakModes = map[securityv1beta1.PeerAuthentication_MutualTLS_Mode]*Rule{
	securityv1beta1.PeerAuthentication_MutualTLS_DISABLE:    ruleMTLSDisabled,
	securityv1beta1.PeerAuthentication_MutualTLS_PERMISSIVE: ruleMTLSPermissive,
}

// weakMTLS finds DISABLE and PERMISSIVE for a whole namespace, or the whole mesh from the root
// namespace. A workload-scoped exception (with a selector) is how Istio means them to be used.
func weakMTLS(pa *securityv1.PeerAuthentication, opts Options) []problem {
	mode := pa.Spec.GetMtls().GetMode()
	rule, weak := weakModes[mode]
	if !weak || !semantics.NamespaceWide(pa.Spec.GetSelector()) {
		return nil
	}
	scope := "every workload of namespace " + pa.Namespace
	if pa.Namespace == opts.RootNamespace {
		scope = "the whole mesh (root namespace " + pa.Namespace + ")"
	}
	return []problem{opens(rule.problemf("mtls.mode %s applies to %s", mode, scope), &opening{reach: reachCluster})}
}

// disabledForWorkloads finds mutual TLS turned off for some workloads or ports: that traffic is
// plain text and carries no identity. Namespace and mesh scope are PA001's.
func disabledForWorkloads(pa *securityv1.PeerAuthentication, _ Options) []problem {
	var found []string
	// Plain text on these ports is what the pods' roles may need: the API server calls a webhook
	// without a sidecar, Prometheus may scrape without one.
	open := &opening{reach: reachCluster, ports: []intstr.IntOrString{}}
	if mode := pa.Spec.GetMtls().GetMode(); weakModes[mode] != nil && !semantics.NamespaceWide(pa.Spec.GetSelector()) {
		found = append(found, fmt.Sprintf("mtls.mode %s for the workloads labelled %s", mode, labels.Set(pa.Spec.GetSelector().GetMatchLabels()).String()))
		open.ports = nil
	}
	for _, port := range slices.Sorted(maps.Keys(pa.Spec.GetPortLevelMtls())) {
		if mode := pa.Spec.GetPortLevelMtls()[port].GetMode(); weakModes[mode] != nil {
			found = append(found, fmt.Sprintf("portLevelMtls[%d] is %s", port, mode))
			if open.ports != nil {
				open.ports = append(open.ports, intstr.FromInt32(int32(port)))
			}
		}
	}
	if len(found) == 0 {
		return nil
	}
	return []problem{opens(ruleMTLSDisabledSome.problemf("%s: plain text is accepted there", strings.Join(found, "; ")), open)}
}

// invalidPortLevelPorts finds portLevelMtls ports istiod refuses: 0 or above 65535.
func invalidPortLevelPorts(pa *securityv1.PeerAuthentication, _ Options) []problem {
	var out []problem
	for _, port := range slices.Sorted(maps.Keys(pa.Spec.GetPortLevelMtls())) {
		if port == 0 || port > 65535 {
			out = append(out, rulePortLevelNoSelector.problemf("portLevelMtls port %d: istiod refuses ports outside 1-65535", port))
		}
	}
	return out
}

// portLevelWithoutSelector finds portLevelMtls on a policy without a selector, which istiod
// refuses (ports are a workload's).
func portLevelWithoutSelector(pa *securityv1.PeerAuthentication, _ Options) []problem {
	if len(pa.Spec.GetPortLevelMtls()) == 0 || !semantics.NamespaceWide(pa.Spec.GetSelector()) {
		return nil
	}
	return []problem{rulePortLevelNoSelector.problemf("portLevelMtls without a selector: istiod refuses it, and the ports' modes never apply")}
}
