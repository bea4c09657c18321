package outcome

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
)

// Event reasons, one per category.
const (
	EventApplied        = "Applied"
	EventPruned         = "Pruned"
	EventDriftCorrected = "DriftCorrected"
	EventInvalidSpec    = "InvalidSpec"
	EventConflict       = "Conflict"
	EventApplyFailed    = "ApplyFailed"
	EventUnmeshed       = "UnmeshedWorkloads"
	EventEnforcement    = "EnforcementChanged"
	EventMismatch       = "ProtocolMismatch"
	EventWidening       = "WideningPolicies"
)

// Event is one event to record about the graph.
type Event struct {
	// Type is corev1.EventTypeNormal or corev1.EventTypeWarning.
	Type   string
	Reason string
	// Action is what the operator was doing (events.k8s.io's action).
	Action string
	Note   string
}

// Events lists the events of one reconcile, given the graph as it was before it. Events fire on
// changes only, never on a quiet reconcile; a problem already reported for this generation is not
// reported again.
func Events(before *v1alpha1.ServiceGraph, f Findings, c Class) []Event {
	reported := func(reason string) bool {
		return before.Status.ObservedGeneration == before.Generation && hasCondition(before, v1alpha1.ConditionReady, reason)
	}
	var out []Event
	warn := func(reason, action, note string) {
		out = append(out, Event{Type: corev1.EventTypeWarning, Reason: reason, Action: action, Note: note})
	}
	normal := func(reason, action, note string) {
		out = append(out, Event{Type: corev1.EventTypeNormal, Reason: reason, Action: action, Note: note})
	}
	switch {
	case f.ActiveGraph != "":
		if !reported(v1alpha1.ReasonConflict) {
			warn(EventConflict, "Compile", c.Message)
		}
	case f.CompileErr != nil:
		if !reported(v1alpha1.ReasonInvalidSpec) {
			warn(EventInvalidSpec, "Compile", "Invalid spec, last good policies kept: "+f.CompileErr.Error())
		}
	case len(f.Changes.Conflicts) > 0 && !reported(v1alpha1.ReasonConflict):
		warn(EventConflict, "Apply", "Left alone: "+conflictList(f.Changes.Conflicts))
	case f.Desired != nil && len(f.Desired.ProtocolMismatches) > 0 && !reported(v1alpha1.ReasonProtocolMismatch):
		warn(EventMismatch, "Compile", MismatchMessage(f.Desired.ProtocolMismatches))
	}
	if f.Err != nil && !(f.Rejected && reported(v1alpha1.ReasonRejected)) {
		warn(EventApplyFailed, "Apply", f.Err.Error())
	}
	d := f.Desired
	if d != nil && len(d.Unmeshed) > 0 && !hasCondition(before, v1alpha1.ConditionMTLSReady, v1alpha1.ReasonUnmeshedWorkloads) {
		warn(EventUnmeshed, "Preflight", UnmeshedMessage(d))
	}
	if f.WideningsJudged && len(f.Widenings) > 0 {
		_, _, msg := BypassedCondition(f.Widenings)
		if was := meta.FindStatusCondition(before.Status.Conditions, v1alpha1.ConditionBypassed); was == nil || was.Message != Shorten(msg, maxConditionMessage) {
			warn(EventWidening, "Check", msg)
		}
	}
	if d != nil && f.Err == nil && before.Status.Enforcement != "" && before.Status.Enforcement != d.Enforcement {
		normal(EventEnforcement, "Apply", enforcementNote[d.Enforcement])
	}
	// A graph's first rollout is told by its status alone: an event per new graph is a write per
	// graph that a fleet's cold start pays for nothing. Its changes afterwards are events.
	if written := f.Changes.Written(); len(written) > 0 {
		if f.Drift {
			normal(EventDriftCorrected, "Apply", "Restored "+joinRefs(written))
		} else if before.Status.ObservedGeneration > 0 {
			normal(EventApplied, "Apply", "Applied "+joinRefs(written))
		}
	}
	if pruned := f.Changes.Pruned(); len(pruned) > 0 {
		normal(EventPruned, "Delete", "Deleted "+joinRefs(pruned))
	}
	return out
}

var enforcementNote = map[v1alpha1.Enforcement]string{
	v1alpha1.EnforcementEnforce: "Switched to Enforce: allow rules applied first, then STRICT mutual TLS, then default-deny",
	v1alpha1.EnforcementAudit:   "Switched to Audit: default-deny removed first, then mutual TLS relaxed to PERMISSIVE, then AuthorizationPolicies set to dry-run",
}

// Settled tells whether the graph's current generation was already applied successfully; a write
// to a generated object is then a drift correction.
func Settled(sg *v1alpha1.ServiceGraph) bool {
	return sg.Status.ObservedGeneration == sg.Generation && meta.IsStatusConditionTrue(sg.Status.Conditions, v1alpha1.ConditionReady)
}

func joinRefs(refs []v1alpha1.ObjectReference) string {
	names := make([]string, len(refs))
	for i, ref := range refs {
		names[i] = ref.Kind + "/" + ref.Name
	}
	return strings.Join(names, ", ")
}
