package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

const (
	// foreignNamespaces spread the foreign objects, as other teams' namespaces would.
	foreignNamespaces = 20
	// createWorkers bounds the concurrent creates of foreign objects.
	createWorkers = 16
)

// memSample summarises the manager's memory, in bytes, after a garbage collection.
type memSample struct {
	Live          float64 // go_gc_heap_live_bytes: the heap the collection found live
	Heap, HeapMax float64 // go_memstats_heap_inuse_bytes: median and max of the samples
	RSS, RSSMax   float64 // process_resident_memory_bytes: median and max of the samples
	// GCWait is how long the collection took to come.
	GCWait time.Duration
}

// memoryResult is the manager's memory before and after foreign objects appear in the cluster.
type memoryResult struct {
	Before, After memSample
	Foreign       int // NetworkPolicies, and as many ConfigMaps
	Load          time.Duration
	// Requests are every request the manager made while the foreign objects were created.
	Requests requestCounts
}

// LiveGrowth and RSSGrowth are the relative changes of the live heap and of the median RSS.
func (m memoryResult) LiveGrowth() float64 { return m.After.Live/m.Before.Live - 1 }
func (m memoryResult) RSSGrowth() float64  { return m.After.RSS/m.Before.RSS - 1 }

// ForeignBytes is the live heap each foreign NetworkPolicy added.
func (m memoryResult) ForeignBytes() float64 {
	return (m.After.Live - m.Before.Live) / float64(m.Foreign)
}

// memory samples the settled manager, creates the foreign objects and samples it again.
func (e *env) memory(ctx context.Context) (memoryResult, error) {
	res := memoryResult{Foreign: e.cfg.Foreign}
	before, err := e.settled(ctx)
	if err == nil {
		res.Before, err = e.sampleMemory(ctx)
	}
	if err != nil {
		return res, err
	}
	e.progress("memory: creating %d foreign NetworkPolicies and %d ConfigMaps", e.cfg.Foreign, e.cfg.Foreign)
	start := time.Now()
	if err := e.createForeign(ctx, e.cfg.Foreign); err != nil {
		return res, err
	}
	res.Load = time.Since(start)
	if res.Requests, err = e.requestsAfterSettling(ctx, before); err != nil {
		return res, err
	}
	res.After, err = e.sampleMemory(ctx)
	return res, err
}

// sampleMemory waits for a garbage collection of the idle manager, then takes cfg.Samples samples
// cfg.Every apart. A collection cannot be forced from outside the process, and heap-in-use
// between two collections is mostly the garbage of the last burst of work; the live heap the
// collection measured is the figure that tracks what the manager keeps.
func (e *env) sampleMemory(ctx context.Context) (memSample, error) {
	var m memSample
	start := time.Now()
	if err := e.waitGC(ctx); err != nil {
		return m, err
	}
	m.GCWait = time.Since(start)
	var heap, rss []float64
	tick := time.NewTicker(e.cfg.Every)
	defer tick.Stop()
	for range e.cfg.Samples {
		s, err := e.scrape(ctx)
		if err != nil {
			return memSample{}, err
		}
		heap = append(heap, s.value(metricHeap, "", ""))
		rss = append(rss, s.value(metricRSS, "", ""))
		m.Live = s.value(metricLive, "", "")
		if len(heap) < e.cfg.Samples {
			select {
			case <-ctx.Done():
				return memSample{}, ctx.Err()
			case <-tick.C:
			}
		}
	}
	m.Heap, m.HeapMax, m.RSS, m.RSSMax = median(heap), slices.Max(heap), median(rss), slices.Max(rss)
	if m.Live == 0 {
		return m, fmt.Errorf("the manager reports no %s", metricLive)
	}
	return m, nil
}

// waitGC waits until the manager has finished a garbage collection that started after the call.
// Go forces one every two minutes in an idle process; the metrics read while waiting allocate a
// little in the manager and bring it sooner.
func (e *env) waitGC(ctx context.Context) error {
	s, err := e.scrape(ctx)
	if err != nil {
		return err
	}
	// A collection under way now may have started before the call: wait for the one after it.
	cycles := s.value(metricGCCycles, "", "") + 2
	return poll(ctx, 3*time.Minute, 100*time.Millisecond, func(ctx context.Context) (bool, error) {
		s, err := e.scrape(ctx)
		return err == nil && s.value(metricGCCycles, "", "") >= cycles, err
	})
}

func median(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	return s[len(s)/2]
}

// createForeign creates n NetworkPolicies and n ConfigMaps that are none of the operator's
// business, spread over other namespaces, with a bounded pool of concurrent creates.
func (e *env) createForeign(ctx context.Context, n int) error {
	for i := range foreignNamespaces {
		if err := e.createNamespace(ctx, foreignNamespace(i)); err != nil {
			return err
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(createWorkers)
	for i := range n {
		for _, obj := range []client.Object{foreignPolicy(i), foreignConfigMap(i)} {
			g.Go(func() error { return e.k8s.Create(gctx, obj) })
		}
	}
	return g.Wait()
}

func foreignNamespace(i int) string { return fmt.Sprintf("foreign-%02d", i%foreignNamespaces) }

// foreignLabels mark the objects as another tool's: the same label key as the operator's cache
// filter, another value.
func foreignLabels(i int) map[string]string {
	return map[string]string{"app.kubernetes.io/managed-by": "helm", "app": fmt.Sprintf("app-%03d", i%500)}
}

// foreignPolicy is a typical hand-written policy: ingress to an app from its frontend on one port.
func foreignPolicy(i int) *networkingv1.NetworkPolicy {
	port := intstr.FromInt32(8080)
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("np-%05d", i), Namespace: foreignNamespace(i), Labels: foreignLabels(i)},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": fmt.Sprintf("app-%03d", i%500)}},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From:  []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"role": "frontend"}}}},
				Ports: []networkingv1.NetworkPolicyPort{{Port: &port}},
			}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
		},
	}
}

// foreignConfigMap carries about a kilobyte of configuration.
func foreignConfigMap(i int) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%05d", i), Namespace: foreignNamespace(i), Labels: foreignLabels(i)},
		Data:       map[string]string{"config.yaml": strings.Repeat(fmt.Sprintf("key-%05d: value\n", i), 64)},
	}
}
