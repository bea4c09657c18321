// Package outcome classifies what one reconcile found and did, once: the status, the events, the
// metrics and the requeue decision all read the same Class. It is pure: no client, no clock.
package outcome

import (
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/change"
	"github.com/servicegraph/servicegraph-operator/internal/compiler"
	"github.com/servicegraph/servicegraph-operator/internal/eval"
)

// Findings is what one reconcile found and did.
type Findings struct {
	// Outputs are the kinds the operator generates (their conditions are reported even when the
	// graph did not compile).
	Outputs compiler.Registry
	// ActiveGraph is set when another graph is the active one of the namespace.
	ActiveGraph string
	// Desired is the compiled graph; nil when it was not compiled.
	Desired *compiler.Result
	// CompileErr is why the spec did not compile.
	CompileErr error
	// Changes is what the writes did.
	Changes change.Set
	// Drift is set when the generation was already applied, so any write corrects drift.
	Drift bool
	// Coverage relates the namespace's pods to the services.
	Coverage *v1alpha1.Coverage
	// Widenings are the foreign policies of the namespace that let through what the graph refuses;
	// nil when they were not looked at (the graph was not applied).
	Widenings []eval.Widening
	// WideningsJudged is set when the foreign policies were looked at.
	WideningsJudged bool
	// Err is a failure to read or write; Rejected marks one the API server refused for what the
	// object is, which no retry fixes.
	Err      error
	Rejected bool
}

// Retry is what the work queue does next.
type Retry int

const (
	// RetryNone waits for the next watch event.
	RetryNone Retry = iota
	// RetryRecheck looks again after the recheck interval: the graph waits on something no watch
	// reports (an API being installed, a foreign object going away, a pod getting a sidecar).
	RetryRecheck
	// RetryBackoff retries with the work queue's backoff: a transient failure.
	RetryBackoff
	// RetryNever reports a terminal error: only a change to the spec can help.
	RetryNever
)

// Class is the one classification of a reconcile.
type Class struct {
	// Ready, Reason and Message are the Ready condition's.
	Ready   metav1.ConditionStatus
	Reason  string
	Message string
	// Stalled: the graph cannot progress without a change to its spec or its namespace.
	Stalled bool
	// Reconciling: work is in flight or waits on the cluster.
	Reconciling bool
	// Retry, and Err for RetryBackoff and RetryNever.
	Retry Retry
	Err   error
}

// Classify decides, in priority order: another graph is active; the spec does not compile; the
// API server refused an object; a transient failure; objects in the way; an edge a Service's
// protocol makes Istio skip; a layer the graph needs is missing; STRICT mutual TLS held back; a
// waypoint that layer-7 edges in ambient mode need is missing; converged.
func Classify(f Findings) Class {
	d := f.Desired
	switch {
	case f.ActiveGraph != "":
		// Deleting the active graph enqueues this one (the siblings watch): no recheck needed.
		return stalled(v1alpha1.ReasonConflict, fmt.Sprintf(
			"ServiceGraph %q is the active graph of this namespace (only one graph per namespace generates policies); this graph generates nothing",
			f.ActiveGraph), RetryNone, nil)
	case f.CompileErr != nil:
		return stalled(v1alpha1.ReasonInvalidSpec,
			"The spec is invalid; the policies of the last valid spec stay in force: "+f.CompileErr.Error(), RetryNever, f.CompileErr)
	case f.Err != nil && f.Rejected:
		return stalled(v1alpha1.ReasonRejected,
			"The API server refused a generated object; fix the spec (the other objects are applied): "+f.Err.Error(), RetryNever, f.Err)
	case f.Err != nil:
		return Class{Ready: metav1.ConditionFalse, Reason: v1alpha1.ReasonApplyFailed, Message: "Retrying after an error: " + f.Err.Error(),
			Reconciling: true, Retry: RetryBackoff, Err: f.Err}
	case len(f.Changes.Conflicts) > 0:
		// Foreign objects are not watched: look again for them going away.
		return stalled(v1alpha1.ReasonConflict,
			"Objects in the way (delete or rename them, or give them to this graph): "+conflictList(f.Changes.Conflicts), RetryRecheck, nil)
	case len(d.ProtocolMismatches) > 0:
		// The policies are applied as declared; a change to the Service or to the edge fixes it.
		return stalled(v1alpha1.ReasonProtocolMismatch, MismatchMessage(d.ProtocolMismatches), RetryNone, nil)
	}
	if l := d.Waiting(); l != nil {
		return waiting(l.Reason, l.Waiting)
	}
	if d.MTLSHeldBack {
		return waiting(v1alpha1.ReasonUnmeshedWorkloads, UnmeshedMessage(d))
	}
	if len(d.UnresolvedPorts) > 0 {
		// Pods declaring the port, started later, open the edges.
		return waiting(v1alpha1.ReasonNamedPortUnresolved, UnresolvedMessage(d))
	}
	if len(d.WaypointProblems) > 0 {
		// A waypoint created or labelled later, or getting ready, opens the layer-7 edges.
		_, _, msg := compiler.WaypointCondition(d)
		return waiting(v1alpha1.ReasonWaypointMissing, msg)
	}
	c := Class{Ready: metav1.ConditionTrue, Reason: v1alpha1.ReasonReconciled, Message: readyMessage(d)}
	if len(d.Missing()) > 0 || len(d.Unmeshed) > 0 {
		// An API installed later, or a pod meshed later, changes what is enforced.
		c.Retry = RetryRecheck
	}
	return c
}

func stalled(reason, msg string, retry Retry, err error) Class {
	return Class{Ready: metav1.ConditionFalse, Reason: reason, Message: msg, Stalled: true, Retry: retry, Err: err}
}

func waiting(reason, msg string) Class {
	return Class{Ready: metav1.ConditionFalse, Reason: reason, Message: msg, Reconciling: true, Retry: RetryRecheck}
}

func readyMessage(d *compiler.Result) string {
	msg := fmt.Sprintf("%d objects applied for %d services and %d edges", len(d.Objects()), d.Services, d.Edges)
	if d.Enforcement == v1alpha1.EnforcementAudit {
		msg = "Audit mode: " + msg + "; nothing is enforced (status.plan lists what Enforce would apply)"
	}
	for _, l := range d.Missing() {
		if l.Unenforced != "" {
			msg += "; " + l.Unenforced
		}
	}
	if d.Graph.Mesh == v1alpha1.MeshNone {
		msg += "; " + meshNoneNote(d)
	}
	return msg
}

// meshNoneNote says what a graph without a mesh leaves unenforced: with CiliumNetworkPolicies,
// Cilium still enforces the callers' identities (their ServiceAccounts) and HTTP rules.
func meshNoneNote(d *compiler.Result) string {
	if d.Generated(compiler.CiliumNetworkPolicies) {
		return "spec.mesh is None: CiliumNetworkPolicies only (paths and methods as Cilium's HTTP rules), no mutual TLS"
	}
	return "spec.mesh is None: NetworkPolicies only, no mutual TLS, identities or HTTP-level rules"
}

// UnmeshedMessage names the pods STRICT mutual TLS cuts off, and what the preflight did about it.
func UnmeshedMessage(d *compiler.Result) string {
	named := d.Unmeshed[:min(len(d.Unmeshed), NamedLimit)]
	list := strings.Join(named, ", ") + More(len(d.Unmeshed), len(named))
	switch {
	case d.MTLSHeldBack && d.MTLSMode == v1alpha1.MTLSStrict:
		// Already in force: the preflight never loosens what protects the namespace.
		return "STRICT mTLS is in force and stays (mtlsPreflight: Block never loosens it); these pods have no Istio sidecar and get no inbound traffic: " + list
	case d.MTLSHeldBack:
		return fmt.Sprintf("STRICT mTLS held back (mtlsPreflight: Block), mode stays %s until these pods have an Istio sidecar: %s", d.MTLSMode, list)
	}
	return "STRICT mTLS applied (mtlsPreflight: Warn) although these pods have no Istio sidecar and lose all inbound traffic: " + list
}

// UnresolvedMessage lists the edges into ambient services closed for want of their named port.
func UnresolvedMessage(d *compiler.Result) string {
	return "Edges closed: " + strings.Join(d.UnresolvedPorts, "; ")
}

// MismatchMessage lists the protocol mismatches.
func MismatchMessage(mismatches []compiler.ProtocolMismatch) string {
	texts := make([]string, len(mismatches))
	for i, m := range mismatches {
		texts[i] = m.String()
	}
	return "Callers refused by Istio: " + strings.Join(texts, "; ")
}

// NamedLimit bounds the pods a message names.
const NamedLimit = 10

// More says how many items a truncated list left out.
func More(total, shown int) string {
	if total <= shown {
		return ""
	}
	return fmt.Sprintf(" and %d more", total-shown)
}

func conflictList(conflicts []change.Conflict) string {
	texts := make([]string, len(conflicts))
	for i, c := range conflicts {
		texts[i] = c.String()
	}
	return strings.Join(texts, "; ")
}
