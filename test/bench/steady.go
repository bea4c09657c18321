package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/test/bench/graphgen"
	"github.com/servicegraph/servicegraph-operator/test/testenv"
)

// incrementalResult is one edge added to a converged graph.
type incrementalResult struct {
	Edge    string
	Elapsed time.Duration
	// Written are the objects whose resourceVersion changed (or that appeared or vanished).
	Written []string
	// Writes are the manager's write requests, status writes and events included.
	Writes requestCounts
}

// incremental adds one edge to the converged graph and waits for Ready at the new generation
// with every object present.
func (e *env) incremental(ctx context.Context, sg *v1alpha1.ServiceGraph) (incrementalResult, error) {
	var res incrementalResult
	var err error
	if res.Edge, err = graphgen.NewEdge(sg); err != nil {
		return res, err
	}
	e.progress("incremental change: %s", res.Edge)
	key := client.ObjectKeyFromObject(sg)
	if err := e.k8s.Get(ctx, key, sg); err != nil { // its status moved on since it was created
		return res, err
	}
	sg.Spec.Edges = append(sg.Spec.Edges, res.Edge)
	want, err := testenv.Compiled(sg)
	if err != nil {
		return res, err
	}
	versions, err := e.versions(ctx, sg.Namespace)
	if err != nil {
		return res, err
	}
	before, err := e.scrape(ctx)
	if err != nil {
		return res, err
	}
	start := time.Now()
	if err := e.k8s.Update(ctx, sg); err != nil {
		return res, err
	}
	if err := e.waitReady(ctx, key, sg.Generation); err != nil {
		return res, err
	}
	if err := e.waitObjects(ctx, sg.Namespace, want); err != nil {
		return res, err
	}
	res.Elapsed = time.Since(start)
	requests, err := e.requestsAfterSettling(ctx, before)
	if err != nil {
		return res, err
	}
	res.Writes = requests.writes()
	after, err := e.versions(ctx, sg.Namespace)
	res.Written = changed(versions, after)
	return res, err
}

// quietResult is the cost of reconciles that find nothing to do.
type quietResult struct {
	Resyncs    int
	Reconciles int
	Writes     requestCounts
	CPUSeconds float64
}

// quiet forces reconciles of the converged graph by annotating one of its NetworkPolicies (an
// event on an owned object), waiting for each reconcile to finish before the next.
func (e *env) quiet(ctx context.Context, sg *v1alpha1.ServiceGraph, resyncs int) (quietResult, error) {
	res := quietResult{Resyncs: resyncs}
	e.progress("quiet steady state: %d forced resyncs", resyncs)
	policies, err := e.networkPolicies(ctx, sg.Namespace)
	if err != nil {
		return res, err
	}
	before, err := e.settled(ctx)
	if err != nil {
		return res, err
	}
	for i := range resyncs {
		if err := e.resync(ctx, sg.Namespace, policies[i%len(policies)], i); err != nil {
			return res, err
		}
	}
	after, err := e.settled(ctx)
	if err != nil {
		return res, err
	}
	res.Writes = after.requests().since(before.requests()).writes()
	res.Reconciles = int(after.reconciles() - before.reconciles())
	res.CPUSeconds = after.value(metricCPU, "", "") - before.value(metricCPU, "", "")
	return res, nil
}

// networkPolicies names the namespace's NetworkPolicies, sorted.
func (e *env) networkPolicies(ctx context.Context, ns string) ([]string, error) {
	versions, err := e.versions(ctx, ns)
	if err != nil {
		return nil, err
	}
	var names []string
	for r := range versions {
		if r.Kind == "NetworkPolicy" {
			names = append(names, r.Name)
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("no NetworkPolicy in %s", ns)
	}
	slices.Sort(names)
	return names, nil
}

// resync annotates a NetworkPolicy and waits until the manager has finished a reconcile after it.
// An extra annotation is not drift (the operator owns only the annotations it sets), so the
// reconcile must write nothing.
func (e *env) resync(ctx context.Context, ns, name string, i int) error {
	s, err := e.scrape(ctx)
	if err != nil {
		return err
	}
	done := s.reconciles()
	np := &metav1.PartialObjectMetadata{}
	np.SetGroupVersionKind(generatedKinds[0])
	np.Namespace, np.Name = ns, name
	patch := fmt.Sprintf(`{"metadata":{"annotations":{"bench.servicegraph.io/resync":%q}}}`, strconv.Itoa(i))
	if err := e.k8s.Patch(ctx, np, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
		return err
	}
	return poll(ctx, time.Minute, 100*time.Millisecond, func(ctx context.Context) (bool, error) {
		s, err := e.scrape(ctx)
		return err == nil && s.reconciles() > done && !s.busy(), err
	})
}
