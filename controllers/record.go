package controllers

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

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
)

var (
	edgesGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "servicegraph_edges",
		Help: "Edges of each ServiceGraph's last valid spec.",
	}, []string{"namespace", "name"})
	objectsGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "servicegraph_generated_objects",
		Help: "Objects generated for each ServiceGraph, by kind.",
	}, []string{"namespace", "name", "kind"})
	conflictsGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "servicegraph_conflicts",
		Help: "Conflicts blocking each ServiceGraph: another active graph or foreign objects under generated names.",
	}, []string{"namespace", "name"})
	driftCorrections = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "servicegraph_drift_corrections_total",
		Help: "Generated objects restored after they were changed or deleted by someone else.",
	}, []string{"kind"})
	compileErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "servicegraph_compile_errors_total",
		Help: "ServiceGraph generations whose spec did not compile.",
	})
)

func init() {
	metrics.Registry.MustRegister(edgesGauge, objectsGauge, conflictsGauge, driftCorrections, compileErrors)
}

// record emits the events, logs and metrics of one reconcile. Events fire on changes only, never
// on a quiet reconcile; a problem already reported for this generation is not reported again.
func (r *ServiceGraphReconciler) record(ctx context.Context, sg *v1alpha1.ServiceGraph, out outcome) {
	log := logf.FromContext(ctx) // carries the graph's namespace and name
	reported := func(reason string) bool {
		ready := meta.FindStatusCondition(sg.Status.Conditions, v1alpha1.ConditionReady)
		return sg.Status.ObservedGeneration == sg.Generation && ready != nil && ready.Reason == reason
	}
	emit := func(eventType string) func(reason, action, note string) {
		return func(reason, action, note string) {
			log.Info(note, "reason", reason)
			r.Recorder.Eventf(sg, nil, eventType, reason, action, "%s", shorten(note, maxEventNote))
		}
	}
	warn, normal := emit(corev1.EventTypeWarning), emit(corev1.EventTypeNormal)
	conflicts := len(out.conflicts)
	switch {
	case out.activeGraph != "":
		conflicts = 1
		if !reported(v1alpha1.ReasonConflict) {
			warn(EventConflict, "Compile", fmt.Sprintf("ServiceGraph %q is already active in this namespace; this graph generates nothing", out.activeGraph))
		}
	case out.compileErr != nil:
		if !reported(v1alpha1.ReasonInvalidSpec) {
			compileErrors.Inc()
			warn(EventInvalidSpec, "Compile", "Invalid spec, last good policies kept: "+out.compileErr.Error())
		}
	case len(out.conflicts) > 0 && !reported(v1alpha1.ReasonConflict):
		warn(EventConflict, "Apply", "Left alone: "+strings.Join(out.conflicts, "; "))
	}
	if out.err != nil && !(errors.As(out.err, new(rejectedError)) && reported(v1alpha1.ReasonRejected)) {
		warn(EventApplyFailed, "Apply", out.err.Error())
	}
	if mtls := meta.FindStatusCondition(sg.Status.Conditions, v1alpha1.ConditionMTLSReady); out.desired != nil && len(out.unmeshed) > 0 &&
		(mtls == nil || mtls.Reason != v1alpha1.ReasonUnmeshedWorkloads) {
		warn(EventUnmeshed, "Preflight", unmeshedMessage(out.unmeshed, sg.Spec.MTLSPreflight != v1alpha1.MTLSPreflightWarn, out.desired.MTLSMode))
	}
	if out.desired != nil && out.err == nil && sg.Status.Enforcement != "" && sg.Status.Enforcement != out.desired.Enforcement {
		normal(EventEnforcement, "Apply", enforcementNote[out.desired.Enforcement])
	}
	if len(out.applied) > 0 {
		if out.drift {
			for _, ref := range out.applied {
				driftCorrections.WithLabelValues(ref.Kind).Inc()
			}
			normal(EventDriftCorrected, "Apply", "Restored "+joinRefs(out.applied))
		} else {
			normal(EventApplied, "Apply", "Applied "+joinRefs(out.applied))
		}
	}
	if len(out.pruned) > 0 {
		normal(EventPruned, "Delete", "Deleted "+joinRefs(out.pruned))
	}
	conflictsGauge.WithLabelValues(sg.Namespace, sg.Name).Set(float64(conflicts))
	if out.desired != nil {
		edgesGauge.WithLabelValues(sg.Namespace, sg.Name).Set(float64(out.desired.Edges))
		counts := countKinds(out.desired)
		objectsGauge.WithLabelValues(sg.Namespace, sg.Name, "NetworkPolicy").Set(float64(counts.NetworkPolicies))
		objectsGauge.WithLabelValues(sg.Namespace, sg.Name, "PeerAuthentication").Set(float64(counts.PeerAuthentications))
		objectsGauge.WithLabelValues(sg.Namespace, sg.Name, "AuthorizationPolicy").Set(float64(counts.AuthorizationPolicies))
	}
}

var enforcementNote = map[v1alpha1.Enforcement]string{
	v1alpha1.EnforcementEnforce: "Switched to Enforce: allow rules applied first, then STRICT mutual TLS, then default-deny",
	v1alpha1.EnforcementAudit:   "Switched to Audit: default-deny removed first, then mutual TLS relaxed to PERMISSIVE, then AuthorizationPolicies set to dry-run",
}

// forget drops the metrics of a deleted graph.
func forget(namespace, name string) {
	labels := map[string]string{"namespace": namespace, "name": name}
	edgesGauge.DeletePartialMatch(labels)
	objectsGauge.DeletePartialMatch(labels)
	conflictsGauge.DeletePartialMatch(labels)
}

// maxEventNote is the longest note events.k8s.io accepts; a longer one loses the whole event.
const maxEventNote = 1024

func joinRefs(refs []v1alpha1.ObjectReference) string {
	names := make([]string, len(refs))
	for i, ref := range refs {
		names[i] = ref.Kind + "/" + ref.Name
	}
	return strings.Join(names, ", ")
}
