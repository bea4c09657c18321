package outcome

import (
	"fmt"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/compiler"
	"github.com/servicegraph/servicegraph-operator/internal/eval"
)

func widenings(n int) []eval.Widening {
	var out []eval.Widening
	for i := range n {
		out = append(out, eval.Widening{Object: fmt.Sprintf("NetworkPolicy shop/p%02d", i), Layer: "L4", Example: "another-namespace/any-pod -> shop/api TCP/8080"})
	}
	return out
}

func TestBypassedCondition(t *testing.T) {
	for _, tc := range []struct {
		n      int
		status metav1.ConditionStatus
		reason string
		msg    string
	}{
		{0, metav1.ConditionFalse, v1alpha1.ReasonNoWideningPolicies, "No policy of the namespace lets through what the graph refuses"},
		{1, metav1.ConditionTrue, v1alpha1.ReasonWideningPolicies,
			"1 policy the graph did not generate let through what it refuses: NetworkPolicy shop/p00 opens another-namespace/any-pod -> shop/api TCP/8080 at L4"},
		{12, metav1.ConditionTrue, v1alpha1.ReasonWideningPolicies, ""},
	} {
		status, reason, msg := BypassedCondition(widenings(tc.n))
		if status != tc.status || reason != tc.reason || (tc.msg != "" && msg != tc.msg) {
			t.Errorf("%d: got %s %s %q", tc.n, status, reason, msg)
		}
		if tc.n == 12 && (msg[:3] != "12 " || !strings.Contains(msg, "shop/p09 opens") || strings.Contains(msg, "shop/p10") || !strings.Contains(msg, " and 2 more")) {
			t.Errorf("12: %q", msg)
		}
	}
}

// The condition is set only when the foreign policies were judged; the event fires when what
// widens changes, not on every reconcile.
func TestBypassedStatusAndEvents(t *testing.T) {
	sg := seed()
	f := findings(t, seed(), compiler.Facts{})
	SetStatus(sg, f, Classify(f))
	if c := condition(sg, v1alpha1.ConditionBypassed); c != nil {
		t.Fatalf("not judged, yet %+v", c)
	}
	f.WideningsJudged, f.Widenings = true, widenings(1)
	if ev := Events(sg, f, Classify(f)); !hasEvent(ev, EventWidening) {
		t.Errorf("first finding: no event in %+v", ev)
	}
	SetStatus(sg, f, Classify(f))
	if c := condition(sg, v1alpha1.ConditionBypassed); c == nil || c.Status != metav1.ConditionTrue {
		t.Fatalf("judged: %+v", c)
	}
	if c := condition(sg, v1alpha1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("Ready changed: %+v", c)
	}
	if ev := Events(sg, f, Classify(f)); hasEvent(ev, EventWidening) {
		t.Errorf("same finding again: %+v", ev)
	}
	f.Widenings = widenings(2)
	if ev := Events(sg, f, Classify(f)); !hasEvent(ev, EventWidening) {
		t.Errorf("a new finding: no event")
	}
	f.Widenings = nil
	SetStatus(sg, f, Classify(f))
	if c := condition(sg, v1alpha1.ConditionBypassed); c.Status != metav1.ConditionFalse {
		t.Errorf("cleared: %+v", c)
	}
	if ev := Events(sg, f, Classify(f)); hasEvent(ev, EventWidening) {
		t.Errorf("nothing widens, yet %+v", ev)
	}
}

func hasEvent(events []Event, reason string) bool {
	for _, e := range events {
		if e.Reason == reason {
			return true
		}
	}
	return false
}

func condition(sg *v1alpha1.ServiceGraph, condType string) *metav1.Condition {
	return meta.FindStatusCondition(sg.Status.Conditions, condType)
}
