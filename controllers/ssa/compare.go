package ssa

import (
	"k8s.io/apimachinery/pkg/api/equality"

	"github.com/servicegraph/servicegraph-operator/internal/compiler"
)

// upToDate tells whether the live object already carries the desired labels, annotations and
// spec, and none of the annotations its output manages but no longer wants. Specs are compared as
// typed values by the output (Istio's as protobuf messages, whose generated Go structs carry
// internal state that plain deep equality would trip on).
func upToDate(out *compiler.Output, want, have compiler.Object) bool {
	return subset(want.GetLabels(), have.GetLabels()) && subset(want.GetAnnotations(), have.GetAnnotations()) &&
		!hasUnwanted(out, have, want) && out.SpecEqual(want, have)
}

// hasUnwanted tells whether live carries an annotation its output manages that want does not.
func hasUnwanted(out *compiler.Output, live, want compiler.Object) bool {
	for _, key := range out.ManagedAnnotations {
		if _, wanted := want.GetAnnotations()[key]; !wanted && live.GetAnnotations()[key] != "" {
			return true
		}
	}
	return false
}

func subset(small, big map[string]string) bool {
	for k, v := range small {
		if big[k] != v {
			return false
		}
	}
	return true
}

// specEqual compares two specs, an absent spec being the same as an empty one (Istio's allow-nothing
// AuthorizationPolicy has an empty spec).
func specEqual(a, b any) bool {
	empty := func(v any) bool { m, ok := v.(map[string]any); return v == nil || (ok && len(m) == 0) }
	if empty(a) && empty(b) {
		return true
	}
	return equality.Semantic.DeepEqual(a, b)
}
