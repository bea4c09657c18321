package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/test/bench/graphgen"
	"github.com/servicegraph/servicegraph-operator/test/testenv"
)

// churnResult is a rolling restart of every pod of the largest graph's namespace.
type churnResult struct {
	Pods     int
	Duration time.Duration
	// PodEvents are the pod writes of the rollout: a create, two status updates and a delete per
	// pod, as a ReplicaSet and a kubelet make them.
	PodEvents  int
	Reconciles int
	ManagerCPU float64
	Writes     requestCounts // the manager's: status writes and events, no policy should change
	CPU        cpuUse
	// Edits are the times to Ready of edge edits made to the big graph mid-rollout; Small the
	// times to Ready of a 10-service graph of another namespace edited mid-rollout (fairness).
	Edits, Small []time.Duration
}

// churn fills the big graph's namespace with pods (as many per service as cfg.PodsPerService, each
// with Istio's sidecar mark), then replaces every one at cfg.ChurnRate pods a second: a new pod is
// created, its status goes Pending then Running and Ready, the old one is deleted. Meanwhile the
// big graph gets an edge now and then, and so does a small graph in another namespace.
func (e *env) churn(ctx context.Context, big *v1alpha1.ServiceGraph) (churnResult, error) {
	n := len(big.Spec.Services) * e.cfg.PodsPerService
	res := churnResult{Pods: n}
	e.progress("churn: %d pods, then a rolling restart at %d pods/s", n, e.cfg.ChurnRate)
	small := graphgen.Graph("small", "bench-small", 10, e.cfg.Seed)
	if err := e.createNamespace(ctx, small.Namespace); err != nil {
		return res, err
	}
	want, err := testenv.Compiled(small)
	if err != nil {
		return res, err
	}
	if err := e.createAndWait(ctx, small, want); err != nil {
		return res, err
	}
	pods := make([]*corev1.Pod, n)
	for i := range pods {
		pods[i] = benchPod(big.Namespace, fmt.Sprintf("%s-%d", graphgen.ServiceName(i%len(big.Spec.Services)), i), i%len(big.Spec.Services))
	}
	if err := forEach(ctx, pods, 16, func(ctx context.Context, p *corev1.Pod) error { return e.k8s.Create(ctx, p) }); err != nil {
		return res, err
	}
	before, err := e.settled(ctx)
	if err != nil {
		return res, err
	}
	cpu, start := cpuNow(), time.Now()
	var edits sync.WaitGroup
	var editErr error
	var mu sync.Mutex
	rollout := make(chan struct{})
	edits.Go(func() {
		// Three edits of each graph, spread over the rollout, one at a time.
		every := time.Duration(n/e.cfg.ChurnRate) * time.Second / 4
		for range 3 {
			select {
			case <-rollout:
				return
			case <-time.After(every):
			}
			for _, g := range []*v1alpha1.ServiceGraph{big, small} {
				d, err := e.addEdge(ctx, g)
				mu.Lock()
				if err != nil && editErr == nil {
					editErr = err
				}
				if g == big {
					res.Edits = append(res.Edits, d)
				} else {
					res.Small = append(res.Small, d)
				}
				mu.Unlock()
			}
		}
	})
	err = e.rollingRestart(ctx, pods)
	close(rollout)
	edits.Wait()
	res.Duration = time.Since(start)
	if err == nil {
		err = editErr
	}
	if err != nil {
		return res, err
	}
	res.PodEvents = 4 * n
	after, err := e.settled(ctx)
	if err != nil {
		return res, err
	}
	res.CPU = cpuNow().since(cpu)
	res.Reconciles = int(after.reconciles() - before.reconciles())
	res.ManagerCPU = after.value(metricCPU, "", "") - before.value(metricCPU, "", "")
	res.Writes = after.requests().since(before.requests()).writes()
	return res, nil
}

// rollingRestart replaces the pods at cfg.ChurnRate a second.
func (e *env) rollingRestart(ctx context.Context, pods []*corev1.Pod) error {
	tick := time.NewTicker(time.Second / time.Duration(e.cfg.ChurnRate))
	defer tick.Stop()
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(64)
	for _, old := range pods {
		select {
		case <-ctx.Done():
			return g.Wait()
		case <-tick.C:
		}
		g.Go(func() error {
			p := old.DeepCopy()
			p.Name += "-r"
			p.ResourceVersion = ""
			if err := e.k8s.Create(ctx, p); err != nil {
				return err
			}
			p.Status = corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionTrue}}}
			if err := e.k8s.Status().Update(ctx, p); err != nil {
				return err
			}
			p.Status.Phase, p.Status.PodIP = corev1.PodRunning, "10.244.0.1"
			p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()})
			if err := e.k8s.Status().Update(ctx, p); err != nil {
				return err
			}
			return e.k8s.Delete(ctx, old)
		})
	}
	return g.Wait()
}

// addEdge adds an edge to a graph (or drops one when it cannot) and returns the time to Ready at
// the new generation.
func (e *env) addEdge(ctx context.Context, sg *v1alpha1.ServiceGraph) (time.Duration, error) {
	live := &v1alpha1.ServiceGraph{}
	if err := e.k8s.Get(ctx, client.ObjectKeyFromObject(sg), live); err != nil {
		return 0, err
	}
	before := live.DeepCopy()
	if edge, err := graphgen.NewEdge(live); err == nil {
		live.Spec.Edges = append(live.Spec.Edges, edge)
	} else {
		live.Spec.Edges = live.Spec.Edges[:len(live.Spec.Edges)-1] // a graph where everyone calls everyone: drop an edge instead
	}
	// A merge patch without the resourceVersion: the operator writes the graph's status meanwhile
	// (the rollout changes its coverage), and only this program writes its spec.
	start := time.Now()
	if err := e.k8s.Patch(ctx, live, client.MergeFrom(before)); err != nil {
		return 0, err
	}
	err := e.waitReady(ctx, client.ObjectKeyFromObject(live), live.Generation)
	return time.Since(start), err
}

// benchPod is a pod of the i-th service, marked as injected by Istio, as a meshed namespace's pods
// are (the preflight then needs no read of the pod).
func benchPod(ns, name string, service int) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns,
			Labels:      map[string]string{"app": graphgen.ServiceName(service), "pod-template-hash": "7d4b9"},
			Annotations: map[string]string{"sidecar.istio.io/status": `{"containers":["istio-proxy"]}`}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example/app"}, {Name: "istio-proxy", Image: "registry.example/proxyv2"}}},
	}
}

// forEach runs do on every item, workers at a time.
func forEach[T any](ctx context.Context, items []T, workers int, do func(context.Context, T) error) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(workers)
	for _, item := range items {
		g.Go(func() error { return do(ctx, item) })
	}
	return g.Wait()
}
