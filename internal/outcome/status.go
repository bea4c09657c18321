package outcome

import (
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/change"
	"github.com/servicegraph/servicegraph-operator/internal/compiler"
	"github.com/servicegraph/servicegraph-operator/internal/object"
)

// SetStatus writes into sg.Status what the findings and their class call for. Messages carry no
// volatile text (times, random names): a changing message would make every reconcile write.
// A failed reconcile keeps the summary fields of the last good one.
func SetStatus(sg *v1alpha1.ServiceGraph, f Findings, c Class) {
	sg.Status.ObservedGeneration = sg.Generation
	switch {
	case c.Retry == RetryBackoff:
		// A Ready graph stays Ready: its policies are still in force, and one failed request must
		// not flap Ready.
		if !meta.IsStatusConditionTrue(sg.Status.Conditions, v1alpha1.ConditionReady) {
			setCondition(sg, v1alpha1.ConditionReady, metav1.ConditionFalse, c.Reason, c.Message)
		}
		setCondition(sg, v1alpha1.ConditionReconciling, metav1.ConditionTrue, c.Reason, c.Message)
		meta.RemoveStatusCondition(&sg.Status.Conditions, v1alpha1.ConditionStalled)
	case c.Stalled && (f.Desired == nil || f.Rejected):
		// Nothing (or not everything) was applied: every condition says why.
		for _, t := range append([]string{v1alpha1.ConditionReady}, f.Outputs.Conditions()...) {
			if t == v1alpha1.ConditionWaypointReady && meta.FindStatusCondition(sg.Status.Conditions, t) == nil {
				continue // only graphs with services in ambient mode report their waypoint
			}
			setCondition(sg, t, metav1.ConditionFalse, c.Reason, c.Message)
		}
		setCondition(sg, v1alpha1.ConditionStalled, metav1.ConditionTrue, c.Reason, c.Message)
		meta.RemoveStatusCondition(&sg.Status.Conditions, v1alpha1.ConditionReconciling)
	default:
		converged(sg, f, c)
	}
}

// converged reports a graph whose spec compiled and whose objects were applied, but for what the
// class says holds it back.
func converged(sg *v1alpha1.ServiceGraph, f Findings, c Class) {
	d := f.Desired
	for _, t := range f.Outputs.Conditions() {
		status, reason, msg := outputCondition(d, f.Changes.Conflicts, t)
		setCondition(sg, t, status, reason, msg)
	}
	if len(d.Unmeshed) > 0 && !hasCondition(sg, v1alpha1.ConditionMTLSReady, v1alpha1.ReasonConflict) {
		setCondition(sg, v1alpha1.ConditionMTLSReady, metav1.ConditionFalse, v1alpha1.ReasonUnmeshedWorkloads, UnmeshedMessage(d))
	}
	if len(d.ProtocolMismatches) > 0 && !hasCondition(sg, v1alpha1.ConditionAuthorizationReady, v1alpha1.ReasonConflict) {
		setCondition(sg, v1alpha1.ConditionAuthorizationReady, metav1.ConditionFalse, v1alpha1.ReasonProtocolMismatch, MismatchMessage(d.ProtocolMismatches))
	}
	if len(d.UnresolvedPorts) > 0 && !hasCondition(sg, v1alpha1.ConditionAuthorizationReady, v1alpha1.ReasonConflict) {
		setCondition(sg, v1alpha1.ConditionAuthorizationReady, metav1.ConditionFalse, v1alpha1.ReasonNamedPortUnresolved, UnresolvedMessage(d))
	}
	waypointStatus(sg, d)
	sg.Status.Services = int32(d.Services)
	sg.Status.Edges = int32(d.Edges)
	sg.Status.Mesh = d.Graph.Mesh
	sg.Status.MTLS = d.MTLSMode
	sg.Status.Enforcement = d.Enforcement
	sg.Status.Coverage = f.Coverage
	SetDataplanes(sg, d.Dataplanes)
	sg.Status.Callers, sg.Status.CallersOmitted = Callers(d.Graph)
	if f.Coverage != nil {
		status, reason, msg := CoverageCondition(f.Coverage)
		setCondition(sg, v1alpha1.ConditionCoverage, status, reason, msg)
	}
	if f.WideningsJudged {
		status, reason, msg := BypassedCondition(f.Widenings)
		setCondition(sg, v1alpha1.ConditionBypassed, status, reason, msg)
	}
	setCondition(sg, v1alpha1.ConditionReady, c.Ready, c.Reason, c.Message)
	if c.Stalled {
		setCondition(sg, v1alpha1.ConditionStalled, metav1.ConditionTrue, c.Reason, c.Message)
		meta.RemoveStatusCondition(&sg.Status.Conditions, v1alpha1.ConditionReconciling)
	} else {
		meta.RemoveStatusCondition(&sg.Status.Conditions, v1alpha1.ConditionStalled)
	}
	if len(f.Changes.Conflicts) > 0 {
		return // objects in the way: the inventory stays the last complete one
	}
	if c.Reconciling {
		setCondition(sg, v1alpha1.ConditionReconciling, metav1.ConditionTrue, c.Reason, c.Message)
	} else {
		meta.RemoveStatusCondition(&sg.Status.Conditions, v1alpha1.ConditionReconciling)
	}
	sg.Status.Counts = d.Counts()
	sg.Status.GeneratedObjects = refs(d.Objects())
	sg.Status.Plan = plan(d)
}

// outputCondition is the condition of the outputs that report under condType: a conflict on one
// of their objects, their layer missing, or what was applied.
func outputCondition(d *compiler.Result, conflicts []change.Conflict, condType string) (metav1.ConditionStatus, string, string) {
	var applied, inTheWay []string
	disabled := false
	for _, o := range d.Outputs {
		if o.Condition != condType {
			continue
		}
		for _, c := range conflicts {
			if c.Ref.Group == o.GVK.Group && c.Ref.Kind == o.GVK.Kind {
				inTheWay = append(inTheWay, c.String())
			}
		}
		if slices.Contains(d.Disabled, o.Layer) {
			// Another output of the condition may stand for it (CiliumNetworkPolicies for
			// NetworkPolicies); only a mesh turned off leaves the condition with nothing generated.
			disabled = true
			continue
		}
		if !d.Served(o) {
			return metav1.ConditionFalse, o.Layer.Reason, o.Layer.Missing
		}
		applied = append(applied, o.Describe(d.Summary(o)))
	}
	if len(inTheWay) > 0 {
		return metav1.ConditionFalse, v1alpha1.ReasonConflict, strings.Join(inTheWay, "; ")
	}
	if disabled && len(applied) == 0 {
		return metav1.ConditionTrue, v1alpha1.ReasonMeshNone, meshNoneNote(d) + ": not generated"
	}
	reason := v1alpha1.ReasonApplied
	if d.Enforcement == v1alpha1.EnforcementAudit {
		reason = v1alpha1.ReasonAudit
	}
	return metav1.ConditionTrue, reason, strings.Join(applied, "; ")
}

// waypointStatus reports WaypointReady for a graph with services in ambient mode (or a waypoint
// in its spec), unless its Gateway API is missing or in the way (the output's condition says so);
// other graphs carry no such condition.
func waypointStatus(sg *v1alpha1.ServiceGraph, d *compiler.Result) {
	if !d.Ambient() {
		meta.RemoveStatusCondition(&sg.Status.Conditions, v1alpha1.ConditionWaypointReady)
		return
	}
	if c := meta.FindStatusCondition(sg.Status.Conditions, v1alpha1.ConditionWaypointReady); c != nil && c.Status == metav1.ConditionFalse && d.WaypointName != "" {
		return
	}
	ready, reason, msg := compiler.WaypointCondition(d)
	status := metav1.ConditionTrue
	if !ready {
		status = metav1.ConditionFalse
	}
	setCondition(sg, v1alpha1.ConditionWaypointReady, status, reason, msg)
}

func hasCondition(sg *v1alpha1.ServiceGraph, condType, reason string) bool {
	c := meta.FindStatusCondition(sg.Status.Conditions, condType)
	return c != nil && c.Reason == reason
}

// plan lists, in Audit mode, what Enforce would apply and whether it exists now: the objects
// applied in their audit form exist, the NetworkPolicies do not.
func plan(d *compiler.Result) []v1alpha1.PlannedObject {
	if d.Enforce == nil {
		return nil
	}
	exists := map[v1alpha1.ObjectReference]bool{}
	for _, obj := range d.Objects() {
		exists[object.Ref(obj)] = true
	}
	var planned []v1alpha1.PlannedObject
	for _, obj := range d.Enforce.Objects() {
		ref := object.Ref(obj)
		planned = append(planned, v1alpha1.PlannedObject{Group: ref.Group, Kind: ref.Kind, Name: ref.Name, Exists: exists[ref]})
	}
	return planned
}

func refs(objs []compiler.Object) []v1alpha1.ObjectReference {
	out := make([]v1alpha1.ObjectReference, len(objs))
	for i, obj := range objs {
		out[i] = object.Ref(obj)
	}
	return out
}

// MarkReconciling records that a large new graph is being worked on before any policy is touched,
// so no tool mistakes it for a finished one: a graph without status reads as current to kstatus.
// It reports whether anything changed. Other graphs get no such mark, for a write that says
// nothing new: a change's generation, ahead of status.observedGeneration, already tells kstatus,
// Argo CD and kubectl that the work is in progress (and a 1,000-service graph's status write takes
// seconds of a busy API server); a new graph of up to QuickGraphServices services converges in
// about one round of writes and its final status follows at once.
func MarkReconciling(sg *v1alpha1.ServiceGraph) bool {
	if meta.FindStatusCondition(sg.Status.Conditions, v1alpha1.ConditionReady) != nil || len(sg.Spec.Services) <= QuickGraphServices {
		return false
	}
	msg := "Reconciling generation " + strconv.FormatInt(sg.Generation, 10)
	setCondition(sg, v1alpha1.ConditionReady, metav1.ConditionUnknown, v1alpha1.ReasonReconciling, msg)
	setCondition(sg, v1alpha1.ConditionReconciling, metav1.ConditionTrue, v1alpha1.ReasonReconciling, msg)
	return true
}

// QuickGraphServices is the largest new graph whose first status is written only when it
// converges.
const QuickGraphServices = 64

func setCondition(sg *v1alpha1.ServiceGraph, condType string, status metav1.ConditionStatus, reason, msg string) {
	meta.SetStatusCondition(&sg.Status.Conditions, metav1.Condition{
		Type: condType, Status: status, Reason: reason, Message: Shorten(msg, maxConditionMessage), ObservedGeneration: sg.Generation,
	})
}

// maxConditionMessage is the API's limit on condition messages.
const maxConditionMessage = 32768

// Shorten cuts a message to at most limit bytes, marking the cut.
func Shorten(msg string, limit int) string {
	if len(msg) <= limit {
		return msg
	}
	return strings.ToValidUTF8(msg[:limit-len(" …")], "") + " …"
}
