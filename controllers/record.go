package controllers

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/runtime/schema"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/audit"
	"github.com/servicegraph/servicegraph-operator/internal/outcome"
)

var (
	edgesGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "servicegraph_edges",
		Help: "Edges of each ServiceGraph's last valid spec.",
	}, []string{"namespace", "name"})
	objectsGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "servicegraph_generated_objects",
		Help: "Objects generated for each ServiceGraph, by group and kind.",
	}, []string{"namespace", "name", "group", "kind"})
	conflictsGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "servicegraph_conflicts",
		Help: "Conflicts blocking each ServiceGraph: another active graph or foreign objects under generated names.",
	}, []string{"namespace", "name"})
	wideningGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "servicegraph_widening_policies",
		Help: "Policies of each ServiceGraph's namespace that it did not generate and that let through what it refuses (the Bypassed condition).",
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
	metrics.Registry.MustRegister(edgesGauge, objectsGauge, conflictsGauge, wideningGauge, driftCorrections, compileErrors)
}

// record emits the events, logs and metrics of one reconcile, all derived from the findings and
// their classification.
func (r *ServiceGraphReconciler) record(ctx context.Context, sg *v1alpha1.ServiceGraph, f outcome.Findings, c outcome.Class) {
	log := logf.FromContext(ctx) // carries the graph's namespace and name
	events := outcome.Events(sg, f, c)
	r.audit(ctx, sg, f, events)
	for _, ev := range events {
		log.Info(ev.Note, "reason", ev.Reason)
		r.Recorder.Eventf(sg, nil, ev.Type, ev.Reason, ev.Action, "%s", outcome.Shorten(ev.Note, maxEventNote))
		switch ev.Reason {
		case outcome.EventInvalidSpec:
			compileErrors.Inc()
		case outcome.EventDriftCorrected:
			for _, ref := range f.Changes.Written() {
				driftCorrections.WithLabelValues(ref.Kind).Inc()
			}
		}
	}
	conflicts := len(f.Changes.Conflicts)
	if f.ActiveGraph != "" {
		conflicts = 1
	}
	conflictsGauge.WithLabelValues(sg.Namespace, sg.Name).Set(float64(conflicts))
	if f.WideningsJudged {
		wideningGauge.WithLabelValues(sg.Namespace, sg.Name).Set(float64(len(f.Widenings)))
	}
	if f.Desired == nil {
		return
	}
	edgesGauge.WithLabelValues(sg.Namespace, sg.Name).Set(float64(f.Desired.Edges))
	counts := map[[2]string]int32{}
	for _, kc := range f.Desired.Counts() {
		counts[[2]string{kc.Group, kc.Kind}] = kc.Count
	}
	for _, o := range f.Outputs {
		objectsGauge.WithLabelValues(sg.Namespace, sg.Name, o.GVK.Group, o.GVK.Kind).Set(float64(counts[[2]string{o.GVK.Group, o.GVK.Kind}]))
	}
}

// audit writes one record per change the reconcile made to the cluster, and one when it held
// STRICT mutual TLS back (when that is news, as its event is).
func (r *ServiceGraphReconciler) audit(ctx context.Context, sg *v1alpha1.ServiceGraph, f outcome.Findings, events []outcome.Event) {
	if r.Audit == nil {
		return
	}
	g, revision, now := audit.GraphOf(sg), audit.Revision(sg.Annotations), time.Now()
	var gvks []schema.GroupVersionKind
	for _, o := range f.Outputs {
		gvks = append(gvks, o.GVK)
	}
	records := audit.FromChanges(g, revision, f.Changes, audit.VersionsFor(gvks...), now)
	if f.Drift {
		records = audit.MarkDrift(records)
	}
	if d := f.Desired; d != nil && d.MTLSHeldBack && slices.ContainsFunc(events, func(e outcome.Event) bool { return e.Reason == outcome.EventUnmeshed }) {
		pa := audit.Object{Group: "security.istio.io", Version: "v1", Kind: "PeerAuthentication", Namespace: sg.Namespace, Name: sg.Name}
		records = append(records, audit.HoldBack(g, revision, pa, fmt.Sprintf("STRICT mTLS held back: %d pods have no sidecar", len(d.Unmeshed)), now))
	}
	for _, rec := range records {
		r.Audit.Emit(ctx, rec)
	}
}

// forget drops the metrics of a deleted graph.
func forget(namespace, name string) {
	labels := map[string]string{"namespace": namespace, "name": name}
	edgesGauge.DeletePartialMatch(labels)
	objectsGauge.DeletePartialMatch(labels)
	conflictsGauge.DeletePartialMatch(labels)
	wideningGauge.DeletePartialMatch(labels)
	forgetTraffic(namespace, name)
}

// maxEventNote is the longest note events.k8s.io accepts; a longer one loses the whole event.
const maxEventNote = 1024
