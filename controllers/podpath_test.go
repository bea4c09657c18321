package controllers

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/change"
	"github.com/servicegraph/servicegraph-operator/internal/compiler"
	"github.com/servicegraph/servicegraph-operator/internal/graph"
	"github.com/servicegraph/servicegraph-operator/internal/object"
	"github.com/servicegraph/servicegraph-operator/internal/outcome"
	"github.com/servicegraph/servicegraph-operator/internal/semantics"
)

func TestPodsOnlyAllowed(t *testing.T) {
	now := time.Now()
	sg := &v1alpha1.ServiceGraph{ObjectMeta: metav1.ObjectMeta{UID: "u1", Generation: 3}}
	memo := &podMemo{uid: "u1", generation: 3}
	for _, tc := range []struct {
		name   string
		wired  bool
		due    time.Time
		marked bool
		memo   *podMemo
		want   bool
	}{
		{"pod events alone since a clean full reconcile", true, time.Time{}, false, memo, true},
		{"a recheck pending for later", true, now.Add(time.Minute), true, memo, true},
		{"an event, a retry or a recheck come due", true, now, true, memo, false},
		{"one come due earlier", true, now.Add(-time.Second), true, memo, false},
		{"no clean full reconcile yet", true, time.Time{}, false, nil, false},
		{"another generation", true, time.Time{}, false, &podMemo{uid: "u1", generation: 2}, false},
		{"a graph deleted and created again under the name", true, time.Time{}, false, &podMemo{uid: "u0", generation: 3}, false},
		{"a queue that marks nothing", false, time.Time{}, false, memo, false},
	} {
		if got := podsOnlyAllowed(tc.wired, tc.due, tc.marked, now, tc.memo, sg); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestMemorable(t *testing.T) {
	d := &compiler.Result{}
	for _, tc := range []struct {
		name string
		f    outcome.Findings
		want bool
	}{
		{"applied", outcome.Findings{Desired: d}, true},
		{"applied with changes", outcome.Findings{Desired: d, Changes: change.Set{Entries: []change.Entry{{Ref: v1alpha1.ObjectReference{Kind: "NetworkPolicy", Name: "x"}}}}}, true},
		{"not compiled", outcome.Findings{CompileErr: errors.New("invalid")}, false},
		{"another graph active", outcome.Findings{ActiveGraph: "other"}, false},
		{"a failed write", outcome.Findings{Desired: d, Err: errors.New("boom")}, false},
		{"objects in the way", outcome.Findings{Desired: d, Changes: change.Set{Conflicts: []change.Conflict{{}}}}, false},
	} {
		if got := memorable(tc.f); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// randomPods are pods of the services app-0…app-n (some with a second label, some of two
// services, some of none, some on a waypoint), sorted by name as podsOf returns them.
func randomPods(rng *rand.Rand, n, services int) []metav1.PartialObjectMetadata {
	pods := make([]metav1.PartialObjectMetadata, n)
	for i := range pods {
		p := metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("pod-%04d", i), Namespace: "shop",
			Labels: map[string]string{"app": fmt.Sprintf("app-%d", rng.IntN(services+2))}, Annotations: map[string]string{}}}
		if rng.IntN(3) == 0 {
			p.Labels["tier"] = []string{"front", "back"}[rng.IntN(2)]
		}
		if rng.IntN(10) == 0 {
			p.Labels[semantics.LabelGatewayName] = "wp"
		}
		if rng.IntN(2) == 0 {
			p.Annotations[object.AnnotationSidecarStatus] = "{}"
		}
		if rng.IntN(8) == 0 {
			p.OwnerReferences = []metav1.OwnerReference{{Kind: "ReplicaSet", Name: "rs", Controller: ptr.To(true)}}
		}
		pods[i] = p
	}
	return pods
}

func randomGraph(rng *rand.Rand, services int) *graph.Graph {
	g := &graph.Graph{Namespace: "shop"}
	for i := range services {
		s := graph.Service{Name: fmt.Sprintf("svc-%03d", i), Namespace: "shop", Labels: map[string]string{"app": fmt.Sprintf("app-%d", i)}}
		switch rng.IntN(5) {
		case 0:
			s.Labels["tier"] = "front" // a narrower selector
		case 1:
			s.Labels = map[string]string{"tier": "back"} // overlaps the others
		case 2:
			s.Namespace = "elsewhere" // a peer, not local
		}
		g.Services = append(g.Services, s)
	}
	return g
}

// The pods-only path's coverage, matching and data planes are the full path's, computed through
// the index from the services as the memo keeps them: compared on random graphs and pods with the
// brute-force functions.
func TestMatchPodsAgreesWithTryingEveryPair(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		g := randomGraph(rng, 1+rng.IntN(12))
		pods := randomPods(rng, rng.IntN(40), len(g.Services))
		waypoints := []string{"wp"}[:rng.IntN(2)]
		services := unflatten("shop", flatten(localServices(g))) // as the memo keeps them
		if !equality.Semantic.DeepEqual(services, localServices(g)) {
			t.Fatalf("round %d: the memo's services %v, want %v", round, services, localServices(g))
		}
		m := matchPods(services, pods)

		if got, want := coverageOf("shop", services, m, waypoints, len(pods)), outcome.Coverage(g, pods, waypoints); !equality.Semantic.DeepEqual(got, want) {
			t.Fatalf("round %d: coverage\n got %+v\nwant %+v", round, got, want)
		}
		var strays []metav1.PartialObjectMetadata
		for _, p := range pods {
			if !slices.ContainsFunc(services, func(s graph.Service) bool { return compiler.Selects(s.Labels, p.Labels) }) {
				strays = append(strays, p)
			}
		}
		if !equality.Semantic.DeepEqual(m.strays, strays) {
			t.Fatalf("round %d: strays %v, want %v", round, names(m.strays), names(strays))
		}
		for i := range services {
			var selected []metav1.PartialObjectMetadata
			for _, p := range pods {
				if compiler.Selects(services[i].Labels, p.Labels) {
					selected = append(selected, p)
				}
			}
			if !equality.Semantic.DeepEqual(m.byService[i], selected) {
				t.Fatalf("round %d: pods of %s %v, want %v", round, services[i].Name, names(m.byService[i]), names(selected))
			}
		}
	}
}

func names(pods []metav1.PartialObjectMetadata) []string {
	var out []string
	for _, p := range pods {
		out = append(out, p.Name)
	}
	return out
}

func TestPodSum(t *testing.T) {
	pod := func(name string, labels map[string]string, meshed bool) metav1.PartialObjectMetadata {
		p := metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
		if meshed {
			p.Annotations = map[string]string{object.AnnotationSidecarStatus: "{}"}
		}
		return p
	}
	sidecars := map[string]semantics.Dataplane{"api": semantics.DataplaneSidecar, "web": semantics.DataplaneSidecar}
	strays := []metav1.PartialObjectMetadata{pod("debug", map[string]string{"app": "debug"}, true)}
	base := podSum(sidecars, nil, strays)
	if podSum(map[string]semantics.Dataplane{"web": semantics.DataplaneSidecar, "api": semantics.DataplaneSidecar}, []string{}, slices.Clone(strays)) != base {
		t.Error("the same facts, built anew, digest differently")
	}
	for _, tc := range []struct {
		name       string
		dataplanes map[string]semantics.Dataplane
		unmeshed   []string
		strays     []metav1.PartialObjectMetadata
	}{
		{"a service's pods leave the mesh", map[string]semantics.Dataplane{"api": semantics.DataplaneNone, "web": semantics.DataplaneSidecar}, nil, strays},
		{"a service loses its last pod", map[string]semantics.Dataplane{"web": semantics.DataplaneSidecar}, nil, strays},
		{"a pod without a sidecar (the mTLS preflight)", sidecars, []string{"api-1 (ReplicaSet/api-7d4b9)"}, strays},
		{"another stray pod", sidecars, nil, append(slices.Clone(strays), pod("shell", nil, false))},
		{"a stray pod's labels", sidecars, nil, []metav1.PartialObjectMetadata{pod("debug", map[string]string{"app": "debug", "v": "2"}, true)}},
		{"a stray pod's sidecar", sidecars, nil, []metav1.PartialObjectMetadata{pod("debug", map[string]string{"app": "debug"}, false)}},
		{"a stray pod replaced", sidecars, nil, []metav1.PartialObjectMetadata{pod("debug-2", map[string]string{"app": "debug"}, true)}},
	} {
		if podSum(tc.dataplanes, tc.unmeshed, tc.strays) == base {
			t.Errorf("%s: the digest did not change", tc.name)
		}
	}
}

func TestMarkingQueue(t *testing.T) {
	var p podPath
	q := p.newQueue(logr.Discard())("test", workqueue.DefaultTypedControllerRateLimiter[reconcile.Request]()).(markingQueue)
	defer q.ShutDown()
	if p.queue.Load() == nil {
		t.Fatal("the queue is not kept")
	}
	req := func(name string) reconcile.Request {
		return reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "shop", Name: name}}
	}
	q.addQuietly(req("pods"), time.Millisecond, nil)
	q.Add(req("event"))
	q.AddRateLimited(req("retry"))
	q.AddWithOpts(priorityqueue.AddOpts{Priority: ptr.To(-100)}, req("resync"))
	q.AddAfter(req("recheck"), time.Minute)
	q.AddWithOpts(priorityqueue.AddOpts{After: time.Hour}, req("recheck"), req("later"))
	q.AddWithOpts(priorityqueue.AddOpts{After: time.Hour, RateLimited: true}, req("backoff"))
	now := time.Now()
	for name, due := range map[string]time.Duration{"event": 0, "retry": 0, "resync": 0, "recheck": time.Minute, "later": time.Hour, "backoff": 0} {
		got, marked := p.take(client.ObjectKey(req(name).NamespacedName))
		if !marked || got.Before(now.Add(due-time.Second)) || got.After(now.Add(due)) {
			t.Errorf("%s: marked %v due in %v, want due in %v", name, marked, got.Sub(now), due)
		}
	}
	if !p.requeueQuietly(client.ObjectKey(req("stale").NamespacedName), time.Millisecond) {
		t.Error("no queue to look again through")
	}
	for _, name := range []string{"pods", "stale"} {
		if _, marked := p.take(client.ObjectKey(req(name).NamespacedName)); marked {
			t.Errorf("%s: marked", name)
		}
	}
}

// Pod events reach the queue unmarked; any other watch's events, which controller-runtime's
// handlers add through a wrapper of the queue, are marked.
func TestPodEventsLeaveNoMark(t *testing.T) {
	var p podPath
	q := p.newQueue(logr.Discard())("test", workqueue.DefaultTypedControllerRateLimiter[reconcile.Request]())
	defer q.ShutDown()
	key := client.ObjectKey{Namespace: "shop", Name: "shop"}
	graphs := func(context.Context, client.Object) []reconcile.Request {
		return []reconcile.Request{{NamespacedName: key}}
	}
	pod := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Name: "api-1", Namespace: "shop", ResourceVersion: "1"}}
	newer := pod.DeepCopy()
	newer.ResourceVersion = "2"
	ctx := context.Background()

	pods := delayedEnqueue(graphs)
	pods.Create(ctx, event.CreateEvent{Object: pod, IsInInitialList: true}, q)
	pods.Update(ctx, event.UpdateEvent{ObjectOld: pod, ObjectNew: newer}, q)
	pods.Delete(ctx, event.DeleteEvent{Object: pod}, q)
	if _, marked := p.take(key); marked {
		t.Fatal("pod events marked the graph")
	}
	handler.EnqueueRequestsFromMapFunc(graphs).Update(ctx, event.UpdateEvent{ObjectOld: pod, ObjectNew: newer}, q)
	if _, marked := p.take(key); !marked {
		t.Fatal("another watch's event left no mark")
	}
}
