package controllers

import (
	"context"
	"errors"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	kstatus "sigs.k8s.io/cli-utils/pkg/kstatus/status"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/compiler"
	"github.com/servicegraph/servicegraph-operator/internal/outcome"
	"github.com/servicegraph/servicegraph-operator/internal/traffic"
)

// shopTraffic is the seed graph's namespace as an observation sees it: web, api and database, and
// the connections given.
func shopTraffic(flows ...traffic.Flow) traffic.Observation {
	wl := func(name string) traffic.Workload {
		return traffic.Workload{Namespace: "shop", Name: name, Labels: map[string]string{"app": name}, ServiceAccount: name,
			Ports: []corev1.ContainerPort{{ContainerPort: 8080}}, Meshed: true}
	}
	return traffic.Observation{Answered: true, Flows: flows, Window: time.Hour,
		Inventory: &traffic.Inventory{Workloads: []traffic.Workload{wl("web"), wl("api"), wl("database")}}}
}

func flow(from, to string) traffic.Flow {
	return traffic.Flow{From: traffic.Party{Namespace: "shop", Workload: from, Principal: "cluster.local/ns/shop/sa/" + from},
		To: traffic.Party{Namespace: "shop", Workload: to}, Port: 8080, Count: 12, Security: traffic.MutualTLS}
}

// TestTrafficStatus: TrafficCovered says what the observation says, and nothing else of the status
// moves: Ready, Reconciling and Stalled, and what kstatus computes, are those of the graph's own
// objects whatever the traffic. An event marks each change of the condition, and only a change.
func TestTrafficStatus(t *testing.T) {
	sg := &v1alpha1.ServiceGraph{TypeMeta: metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "ServiceGraph"},
		ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: "shop", Generation: 3},
		Spec: v1alpha1.ServiceGraphSpec{Services: []v1alpha1.Service{{Name: "web"}, {Name: "api"}, {Name: "database"}},
			Edges: []string{"web→api:8080", "api→database:5432/data"}}}
	d, err := compiler.Compile(sg, compiler.DefaultOptions(), compiler.Facts{})
	if err != nil {
		t.Fatal(err)
	}
	f := outcome.Findings{Outputs: compiler.Builtin(), Desired: d}
	outcome.SetStatus(sg, f, outcome.Classify(f))
	unreachable := traffic.Observation{Answered: true, Failures: 2, FailingSince: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC), Err: errors.New("connection refused")}

	for _, tc := range []struct {
		name   string
		obs    *traffic.Observation // nil: the namespace was never read
		off    bool                 // no --prometheus-url
		had    bool                 // True before
		status metav1.ConditionStatus
		reason string
		event  string
	}{
		{name: "covered", obs: new(shopTraffic(flow("web", "api"))), status: metav1.ConditionTrue, reason: v1alpha1.ReasonTrafficCovered, event: corev1.EventTypeNormal},
		{name: "refused", obs: new(shopTraffic(flow("web", "api"), flow("database", "web"))), status: metav1.ConditionFalse,
			reason: v1alpha1.ReasonObservedTrafficRefused, event: corev1.EventTypeWarning},
		{name: "no data", obs: new(shopTraffic()), status: metav1.ConditionUnknown, reason: v1alpha1.ReasonNoTrafficData, event: corev1.EventTypeNormal},
		{name: "Prometheus down", obs: &unreachable, status: metav1.ConditionUnknown, reason: v1alpha1.ReasonPrometheusUnreachable, event: corev1.EventTypeWarning},
		{name: "not read yet: absent until the first observation", obs: nil},
		{name: "the first query of a restarted operator failed: the last run's answer stands", had: true,
			obs: &traffic.Observation{Failures: 1, Err: errors.New("connection refused")}, status: metav1.ConditionTrue, reason: v1alpha1.ReasonTrafficCovered},
		{name: "without Prometheus: absent", off: true, had: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := events.NewFakeRecorder(10)
			r := &ServiceGraphReconciler{Recorder: rec}
			if !tc.off {
				r.Traffic = &trafficObserver{byNS: map[string]*observed{}, wanted: map[string]bool{}, kick: make(chan struct{}, 1)}
				if tc.obs != nil {
					r.Traffic.byNS["shop"] = &observed{obs: *tc.obs}
				}
			}
			before := sg.DeepCopy()
			if tc.had {
				meta.SetStatusCondition(&before.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionTrafficCovered,
					Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonTrafficCovered, ObservedGeneration: 3})
			}
			next := before.DeepCopy()
			r.trafficStatus(context.Background(), before, next, f)

			got := meta.FindStatusCondition(next.Status.Conditions, v1alpha1.ConditionTrafficCovered)
			switch {
			case tc.reason == "" && got != nil:
				t.Errorf("condition %+v, want none", got)
			case tc.reason != "" && (got == nil || got.Status != tc.status || got.Reason != tc.reason || got.ObservedGeneration != 3):
				t.Errorf("condition %+v, want %s %s at generation 3", got, tc.status, tc.reason)
			}
			for _, c := range sg.Status.Conditions {
				if now := meta.FindStatusCondition(next.Status.Conditions, c.Type); now == nil || *now != c {
					t.Errorf("%s moved: %+v -> %+v", c.Type, c, now)
				}
			}
			if s := kstatusOf(t, next); s != kstatus.CurrentStatus {
				t.Errorf("kstatus %s, want Current", s)
			}
			// The next reconcile's status computation keeps the condition and Ready as they are.
			again := next.DeepCopy()
			outcome.SetStatus(again, f, outcome.Classify(f))
			if !equalConditions(again.Status.Conditions, next.Status.Conditions) {
				t.Errorf("SetStatus changed the conditions: %+v", again.Status.Conditions)
			}
			switch {
			case tc.event == "" && len(rec.Events) > 0:
				t.Errorf("event %q, want none", <-rec.Events)
			case tc.event != "" && len(rec.Events) != 1:
				t.Errorf("%d events, want one", len(rec.Events))
			case tc.event != "":
				if e := <-rec.Events; e[:len(tc.event)] != tc.event {
					t.Errorf("event %q, want a %s one", e, tc.event)
				}
			}
			// Judged again with nothing new: no event.
			r.trafficStatus(context.Background(), next, next.DeepCopy(), f)
			if len(rec.Events) > 0 {
				t.Errorf("event %q on an unchanged condition", <-rec.Events)
			}
		})
	}
}

func equalConditions(a, b []metav1.Condition) bool {
	if len(a) != len(b) {
		return false
	}
	for _, c := range a {
		if other := meta.FindStatusCondition(b, c.Type); other == nil || *other != c {
			return false
		}
	}
	return true
}

func kstatusOf(t *testing.T, sg *v1alpha1.ServiceGraph) kstatus.Status {
	t.Helper()
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(sg)
	if err != nil {
		t.Fatal(err)
	}
	res, err := kstatus.Compute(&unstructured.Unstructured{Object: obj})
	if err != nil {
		t.Fatal(err)
	}
	return res.Status
}
