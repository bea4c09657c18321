package outcome

import (
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/eval"
)

// BypassedCondition says whether foreign policies widen the graph, naming at most NamedLimit of
// them, each with one connection it opens.
func BypassedCondition(widenings []eval.Widening) (metav1.ConditionStatus, string, string) {
	if len(widenings) == 0 {
		return metav1.ConditionFalse, v1alpha1.ReasonNoWideningPolicies, "No policy of the namespace lets through what the graph refuses"
	}
	named := widenings[:min(len(widenings), NamedLimit)]
	texts := make([]string, len(named))
	for i, w := range named {
		texts[i] = w.String()
	}
	noun := map[bool]string{true: "policy", false: "policies"}[len(widenings) == 1]
	return metav1.ConditionTrue, v1alpha1.ReasonWideningPolicies, fmt.Sprintf("%d %s the graph did not generate let through what it refuses: %s%s",
		len(widenings), noun, strings.Join(texts, "; "), More(len(widenings), len(named)))
}
