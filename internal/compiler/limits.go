package compiler

import (
	"encoding/json"
	"fmt"

	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/servicegraph/servicegraph-operator/internal/graph"
)

const (
	// MaxObjectBytes keeps every object well under what the API server stores: etcd refuses
	// requests over about 1.5 MiB, and retrying such a write can never succeed.
	MaxObjectBytes = 1 << 20
	// MaxAuthorizationRules is the most rules Istio's CRD accepts in one AuthorizationPolicy.
	MaxAuthorizationRules = 512
)

// checkLimits reports every object the API server would refuse for its size or rule count, so an
// oversized graph is an invalid spec (reported once) instead of a write failing forever.
func checkLimits(objs []client.Object) error {
	var problems graph.ErrorList
	for _, obj := range objs {
		item := fmt.Sprintf("%s %q", obj.GetObjectKind().GroupVersionKind().Kind, obj.GetName())
		if ap, ok := obj.(*securityv1.AuthorizationPolicy); ok && len(ap.Spec.Rules) > MaxAuthorizationRules {
			problems = append(problems, graph.Error{Item: item, Kind: graph.KindTooLarge, Message: fmt.Sprintf(
				"would have %d rules; Istio accepts at most %d: split the callers across services", len(ap.Spec.Rules), MaxAuthorizationRules)})
		}
		if roughSize(obj) < MaxObjectBytes/2 {
			continue // far below the limit: skip the costly encoding
		}
		data, err := json.Marshal(obj)
		if err != nil {
			return err
		}
		if len(data) > MaxObjectBytes {
			problems = append(problems, graph.Error{Item: item, Kind: graph.KindTooLarge, Message: fmt.Sprintf(
				"would be %d bytes; the API server stores at most about 1.5 MiB and this operator allows %d: split the callers or shorten their selectors",
				len(data), MaxObjectBytes)})
		}
	}
	return problems.Err()
}

// roughSize adds up the lengths of an object's variable parts with a generous allowance for the
// JSON around them: within a factor of two of the encoded size, at a fraction of its cost.
func roughSize(obj client.Object) int {
	const perItem = 64 // quotes, keys and punctuation around one value
	size := 1024
	labels := func(m map[string]string) {
		for k, v := range m {
			size += len(k) + len(v) + perItem
		}
	}
	strs := func(list []string) {
		for _, s := range list {
			size += len(s) + perItem
		}
	}
	switch o := obj.(type) {
	case *networkingv1.NetworkPolicy:
		peersAndPorts := func(peers []networkingv1.NetworkPolicyPeer, ports []networkingv1.NetworkPolicyPort) {
			size += len(ports) * 2 * perItem
			for _, p := range peers {
				size += 2 * perItem
				if p.PodSelector != nil {
					labels(p.PodSelector.MatchLabels)
				}
				if p.NamespaceSelector != nil {
					labels(p.NamespaceSelector.MatchLabels)
				}
			}
		}
		labels(o.Spec.PodSelector.MatchLabels)
		for _, r := range o.Spec.Ingress {
			peersAndPorts(r.From, r.Ports)
		}
		for _, r := range o.Spec.Egress {
			peersAndPorts(r.To, r.Ports)
		}
	case *securityv1.AuthorizationPolicy:
		labels(o.Spec.GetSelector().GetMatchLabels())
		for _, r := range o.Spec.Rules {
			for _, f := range r.From {
				strs(f.GetSource().GetPrincipals())
			}
			for _, t := range r.To {
				op := t.GetOperation()
				strs(op.GetPorts())
				strs(op.GetPaths())
				strs(op.GetMethods())
			}
			size += 4 * perItem
		}
	}
	return size
}
