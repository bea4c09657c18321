package controllers

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/compiler"
)

// outcome is what one reconcile found and did; the status, the events and the metrics are all
// derived from it.
type outcome struct {
	// activeGraph is set when another graph is the active one of the namespace.
	activeGraph string
	istio       bool
	desired     *compiler.Result
	compileErr  error
	// drift is true when the generation was already applied, so any write corrects drift.
	drift     bool
	applied   []v1alpha1.ObjectReference
	pruned    []v1alpha1.ObjectReference
	conflicts []string
	// unmeshed names the pods that STRICT mutual TLS would cut off.
	unmeshed []string
	// coverage relates the namespace's pods to the services.
	coverage *v1alpha1.Coverage
	// plan is what Enforce would apply, for a graph in Audit mode.
	plan *compiler.Result
	// err is a transient failure (API server, network): retried with backoff.
	err error
}

// markReconciling records that a new generation is being worked on before any policy is touched,
// so no tool mistakes a fresh or changed object for a finished one.
func (r *ServiceGraphReconciler) markReconciling(ctx context.Context, sg *v1alpha1.ServiceGraph) error {
	if sg.Status.ObservedGeneration == sg.Generation && meta.FindStatusCondition(sg.Status.Conditions, v1alpha1.ConditionReady) != nil {
		return nil
	}
	patch := statusPatch(sg)
	msg := fmt.Sprintf("Reconciling generation %d", sg.Generation)
	if meta.FindStatusCondition(sg.Status.Conditions, v1alpha1.ConditionReady) == nil {
		setCondition(sg, v1alpha1.ConditionReady, metav1.ConditionUnknown, v1alpha1.ReasonReconciling, msg)
	}
	setCondition(sg, v1alpha1.ConditionReconciling, metav1.ConditionTrue, v1alpha1.ReasonReconciling, msg)
	return r.patchStatus(ctx, sg, patch)
}

// writeStatus writes the status the outcome calls for, and nothing when it is already there.
func (r *ServiceGraphReconciler) writeStatus(ctx context.Context, sg *v1alpha1.ServiceGraph, out outcome) error {
	next := sg.DeepCopy()
	computeStatus(next, out)
	if equality.Semantic.DeepEqual(next.Status, sg.Status) {
		return nil
	}
	return r.patchStatus(ctx, next, statusPatch(sg))
}

// patchStatus writes sg's status and remembers the version it replaced.
func (r *ServiceGraphReconciler) patchStatus(ctx context.Context, sg *v1alpha1.ServiceGraph, patch client.Patch) error {
	replaced := sg.ResourceVersion
	if err := r.Status().Patch(ctx, sg, patch); err != nil || sg.ResourceVersion == replaced {
		// A patch that changed nothing leaves the version as it was: the cache is not behind it.
		return err
	}
	key := client.ObjectKeyFromObject(sg)
	versions := []string{replaced}
	if earlier, ok := r.replaced.Load(key); ok {
		versions = append(versions, earlier.([]string)[0])
	}
	r.replaced.Store(key, versions)
	return nil
}

// statusPatch patches from the graph as read, on the condition that it is still the live version:
// a status computed from a stale cached copy (one that misses the operator's own last write) must
// not overwrite newer conditions, or Ready would flap.
func statusPatch(base *v1alpha1.ServiceGraph) client.Patch {
	return client.MergeFromWithOptions(base.DeepCopy(), client.MergeFromWithOptimisticLock{})
}

// computeStatus sets sg.Status from the outcome of a reconcile. Messages carry no volatile text
// (times, random names): a changing message would make every reconcile write.
func computeStatus(sg *v1alpha1.ServiceGraph, out outcome) {
	sg.Status.ObservedGeneration = sg.Generation
	switch {
	case out.activeGraph != "":
		stall(sg, v1alpha1.ReasonConflict, fmt.Sprintf(
			"ServiceGraph %q is the active graph of namespace %s (only one graph per namespace generates policies); this graph generates nothing",
			out.activeGraph, sg.Namespace))
	case out.compileErr != nil:
		stall(sg, v1alpha1.ReasonInvalidSpec,
			"The spec is invalid; the policies of the last valid spec stay in force: "+out.compileErr.Error())
	case errors.As(out.err, new(rejectedError)):
		stall(sg, v1alpha1.ReasonRejected,
			"The API server refused a generated object; fix the spec (the other objects are applied): "+out.err.Error())
	case out.err != nil:
		retrying(sg, out.err)
	default:
		converged(sg, out)
	}
}

// stall reports a graph that cannot progress without a change to its spec or its namespace.
func stall(sg *v1alpha1.ServiceGraph, reason, msg string) {
	for _, t := range []string{v1alpha1.ConditionReady, v1alpha1.ConditionNetworkPoliciesReady, v1alpha1.ConditionMTLSReady, v1alpha1.ConditionAuthorizationReady} {
		setCondition(sg, t, metav1.ConditionFalse, reason, msg)
	}
	setCondition(sg, v1alpha1.ConditionStalled, metav1.ConditionTrue, reason, msg)
	meta.RemoveStatusCondition(&sg.Status.Conditions, v1alpha1.ConditionReconciling)
}

// retrying reports a transient failure. A Ready graph stays Ready (its policies are still in
// force), so one failed request does not flap Ready.
func retrying(sg *v1alpha1.ServiceGraph, err error) {
	msg := "Retrying after an error: " + err.Error()
	if !meta.IsStatusConditionTrue(sg.Status.Conditions, v1alpha1.ConditionReady) {
		setCondition(sg, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonApplyFailed, msg)
	}
	setCondition(sg, v1alpha1.ConditionReconciling, metav1.ConditionTrue, v1alpha1.ReasonApplyFailed, msg)
	meta.RemoveStatusCondition(&sg.Status.Conditions, v1alpha1.ConditionStalled)
}

// converged reports a graph whose spec compiled and whose objects were applied, except for any
// conflicts, what needs Istio when Istio is not installed, and STRICT mTLS held back by the
// preflight.
func converged(sg *v1alpha1.ServiceGraph, out outcome) {
	d := out.desired
	conflicts := map[string][]string{}
	for _, c := range out.conflicts {
		kind, _, _ := strings.Cut(c, "/")
		conflicts[kind] = append(conflicts[kind], c)
	}
	counts := countKinds(d)
	audit := d.Enforcement == v1alpha1.EnforcementAudit
	applied := map[string]string{
		"NetworkPolicy":       fmt.Sprintf("%d NetworkPolicies applied, default-deny included", counts.NetworkPolicies),
		"PeerAuthentication":  fmt.Sprintf("PeerAuthentication applied with mode %s", d.MTLSMode),
		"AuthorizationPolicy": fmt.Sprintf("%d AuthorizationPolicies applied, allow-nothing included", counts.AuthorizationPolicies),
	}
	if audit {
		planned := countKinds(out.plan)
		applied["NetworkPolicy"] = fmt.Sprintf("Audit mode: no NetworkPolicy applied (Enforce would apply %d)", planned.NetworkPolicies)
		applied["PeerAuthentication"] = "Audit mode: PeerAuthentication applied with mode PERMISSIVE"
		applied["AuthorizationPolicy"] = fmt.Sprintf("Audit mode: %d AuthorizationPolicies applied in dry-run (evaluated and reported, not enforced)", counts.AuthorizationPolicies)
	}
	reason := v1alpha1.ReasonApplied
	if audit {
		reason = v1alpha1.ReasonAudit
	}
	kindCondition(sg, v1alpha1.ConditionNetworkPoliciesReady, conflicts["NetworkPolicy"], true, reason, applied["NetworkPolicy"])
	kindCondition(sg, v1alpha1.ConditionMTLSReady, conflicts["PeerAuthentication"], out.istio, reason, applied["PeerAuthentication"])
	kindCondition(sg, v1alpha1.ConditionAuthorizationReady, conflicts["AuthorizationPolicy"], out.istio, reason, applied["AuthorizationPolicy"])
	blocked := len(out.unmeshed) > 0 && sg.Spec.MTLSPreflight != v1alpha1.MTLSPreflightWarn
	if len(out.unmeshed) > 0 && len(conflicts["PeerAuthentication"]) == 0 {
		setCondition(sg, v1alpha1.ConditionMTLSReady, metav1.ConditionFalse, v1alpha1.ReasonUnmeshedWorkloads, unmeshedMessage(out.unmeshed, blocked, d.MTLSMode))
	}

	sg.Status.Services = int32(d.Services)
	sg.Status.Edges = int32(d.Edges)
	sg.Status.MTLS = d.MTLSMode
	sg.Status.Enforcement = d.Enforcement
	sg.Status.Coverage = out.coverage
	if out.coverage != nil {
		status, reason, msg := coverageCondition(out.coverage)
		setCondition(sg, v1alpha1.ConditionCoverage, status, reason, msg)
	}
	switch {
	case len(out.conflicts) > 0:
		msg := "Objects in the way (delete or rename them, or give them to this graph): " + strings.Join(out.conflicts, "; ")
		setCondition(sg, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonConflict, msg)
		setCondition(sg, v1alpha1.ConditionStalled, metav1.ConditionTrue, v1alpha1.ReasonConflict, msg)
		meta.RemoveStatusCondition(&sg.Status.Conditions, v1alpha1.ConditionReconciling)
		return
	case !out.istio && d.MTLSMode == v1alpha1.MTLSStrict:
		waiting(sg, v1alpha1.ReasonIstioNotInstalled,
			"NetworkPolicies applied; waiting for Istio (security.istio.io/v1) to be installed to enforce STRICT mutual TLS and authorization")
	case blocked:
		waiting(sg, v1alpha1.ReasonUnmeshedWorkloads, unmeshedMessage(out.unmeshed, true, d.MTLSMode))
	default:
		msg := fmt.Sprintf("%d objects applied for %d services and %d edges", len(d.Objects()), d.Services, d.Edges)
		if audit {
			msg = "Audit mode: " + msg + "; nothing is enforced (status.plan lists what Enforce would apply)"
		}
		if !out.istio {
			msg += "; Istio is not installed, so mutual TLS and authorization policies are not enforced"
		}
		setCondition(sg, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonReconciled, msg)
		meta.RemoveStatusCondition(&sg.Status.Conditions, v1alpha1.ConditionReconciling)
	}
	meta.RemoveStatusCondition(&sg.Status.Conditions, v1alpha1.ConditionStalled)
	sg.Status.ObjectCounts = counts
	sg.Status.GeneratedObjects = refsOf(d.Objects())
	sg.Status.Plan = plan(out)
}

// waiting reports a graph that waits on something outside its spec.
func waiting(sg *v1alpha1.ServiceGraph, reason, msg string) {
	setCondition(sg, v1alpha1.ConditionReady, metav1.ConditionFalse, reason, msg)
	setCondition(sg, v1alpha1.ConditionReconciling, metav1.ConditionTrue, reason, msg)
}

func unmeshedMessage(pods []string, blocked bool, mode v1alpha1.MTLSMode) string {
	named := pods[:min(len(pods), namedPodsLimit)]
	list := strings.Join(named, ", ") + more(len(pods), len(named))
	if blocked {
		return fmt.Sprintf("STRICT mTLS held back (mtlsPreflight: Block), mode stays %s until these pods have an Istio sidecar: %s", mode, list)
	}
	return "STRICT mTLS applied (mtlsPreflight: Warn) although these pods have no Istio sidecar and lose all inbound traffic: " + list
}

// plan lists, in Audit mode, what Enforce would apply and whether it exists now: the objects
// applied in their audit form exist, the NetworkPolicies do not.
func plan(out outcome) []v1alpha1.PlannedObject {
	if out.plan == nil {
		return nil
	}
	exists := map[v1alpha1.ObjectReference]bool{}
	for _, ref := range refsOf(out.desired.Objects()) {
		exists[ref] = true
	}
	var planned []v1alpha1.PlannedObject
	for _, ref := range refsOf(out.plan.Objects()) {
		planned = append(planned, v1alpha1.PlannedObject{Kind: ref.Kind, Name: ref.Name, Exists: exists[ref]})
	}
	return planned
}

func refsOf(objs []client.Object) []v1alpha1.ObjectReference {
	refs := make([]v1alpha1.ObjectReference, len(objs))
	for i, obj := range objs {
		refs[i] = refTo(obj)
	}
	return refs
}

// kindCondition sets the condition of one kind of generated object.
func kindCondition(sg *v1alpha1.ServiceGraph, condType string, conflicts []string, istioServed bool, reason, appliedMsg string) {
	switch {
	case len(conflicts) > 0:
		setCondition(sg, condType, metav1.ConditionFalse, v1alpha1.ReasonConflict, strings.Join(conflicts, "; "))
	case !istioServed:
		setCondition(sg, condType, metav1.ConditionFalse, v1alpha1.ReasonIstioNotInstalled,
			"Istio's security.istio.io/v1 API is not served in this cluster")
	default:
		setCondition(sg, condType, metav1.ConditionTrue, reason, appliedMsg)
	}
}

func countKinds(d *compiler.Result) v1alpha1.ObjectCounts {
	if d == nil {
		return v1alpha1.ObjectCounts{}
	}
	var c v1alpha1.ObjectCounts
	for _, obj := range d.Objects() {
		switch refTo(obj).Kind {
		case "NetworkPolicy":
			c.NetworkPolicies++
		case "PeerAuthentication":
			c.PeerAuthentications++
		case "AuthorizationPolicy":
			c.AuthorizationPolicies++
		}
	}
	return c
}

func setCondition(sg *v1alpha1.ServiceGraph, condType string, status metav1.ConditionStatus, reason, msg string) {
	meta.SetStatusCondition(&sg.Status.Conditions, metav1.Condition{
		Type: condType, Status: status, Reason: reason, Message: shorten(msg, maxConditionMessage), ObservedGeneration: sg.Generation,
	})
}

// maxConditionMessage is the API's limit on condition messages.
const maxConditionMessage = 32768

// shorten cuts a message to at most limit bytes, marking the cut.
func shorten(msg string, limit int) string {
	if len(msg) <= limit {
		return msg
	}
	return strings.ToValidUTF8(msg[:limit-len(" …")], "") + " …"
}
