package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/render"
	"github.com/servicegraph/servicegraph-operator/test/bench/graphgen"
)

// fleetResult is many small graphs, one per namespace, as one team per namespace has them.
type fleetResult struct {
	Graphs, Services, Objects int
	// Operator is the time from the first create to every graph Ready, in two halves.
	Operator    time.Duration
	OperatorCPU cpuUse
	// Kubectl is `kubectl apply --server-side` of the same objects in other namespaces.
	Kubectl    time.Duration
	KubectlCPU cpuUse
	// Base, Half and Full are the manager's memory before the fleet and with half and all of its
	// graphs converged.
	Base, Half, Full memSample
	// Restart is a new manager process's time from start to every graph reconciled, and the
	// writes it made meanwhile.
	Restart       time.Duration
	RestartWrites requestCounts
	// Synced is the time from the restarted manager's start until it had read every generated
	// object into its cache (the rest of Restart is the graphs' reconciles).
	Synced     time.Duration
	Reconciled int
	AllGraphs  int // in the cluster at the restart
}

// Ratio is operator / kubectl.
func (f fleetResult) Ratio() float64 { return f.Operator.Seconds() / f.Kubectl.Seconds() }

// PerGraph is the live heap each graph of the first and of the second half added: equal when
// memory grows linearly with the graphs.
func (f fleetResult) PerGraph() (first, second float64) {
	return (f.Half.Live - f.Base.Live) / float64(f.Graphs/2), (f.Full.Live - f.Half.Live) / float64(f.Graphs-f.Graphs/2)
}

// fleet converges cfg.FleetGraphs graphs of cfg.FleetServices services, one per namespace, in two
// halves with the memory sampled after each, restarts the manager and times the re-verification,
// then applies the same objects with kubectl in namespaces of their own.
func (e *env) fleet(ctx context.Context) (fleetResult, error) {
	res := fleetResult{Graphs: e.cfg.FleetGraphs, Services: e.cfg.FleetServices}
	e.progress("fleet: %d graphs of %d services, one per namespace", res.Graphs, res.Services)
	graphs := make([]*v1alpha1.ServiceGraph, res.Graphs)
	var manifests []byte
	for i := range graphs {
		graphs[i] = graphgen.Graph("team", fmt.Sprintf("team-%04d", i), res.Services, e.cfg.Seed+uint64(i))
		moved := graphs[i].DeepCopy()
		moved.Namespace = fmt.Sprintf("kubectl-team-%04d", i)
		compiled, err := compile(moved)
		if err != nil {
			return res, err
		}
		res.Objects += len(compiled.Objects())
		// Without the operator's label: the manager's cache would hold them (and its label would
		// make them the operator's to the foreign-policy watch).
		for _, obj := range compiled.Objects() {
			obj.SetLabels(nil)
		}
		yaml, err := render.YAML(compiled.Objects())
		if err != nil {
			return res, err
		}
		manifests = append(append(manifests, yaml...), "---\n"...)
	}
	for _, prefix := range []string{"team", "kubectl-team"} {
		names := make([]string, res.Graphs)
		for i := range names {
			names[i] = fmt.Sprintf("%s-%04d", prefix, i)
		}
		if err := forEach(ctx, names, 16, e.createNamespace); err != nil {
			return res, err
		}
	}
	var err error
	if res.Base, err = e.sampleAfterSettling(ctx); err != nil {
		return res, err
	}
	var busy cpuUse
	for i, half := range [][]*v1alpha1.ServiceGraph{graphs[:res.Graphs/2], graphs[res.Graphs/2:]} {
		cpu, start := cpuNow(), time.Now()
		if err := forEach(ctx, half, 16, func(ctx context.Context, sg *v1alpha1.ServiceGraph) error { return e.k8s.Create(ctx, sg) }); err != nil {
			return res, err
		}
		if err := e.waitAllReady(ctx, half); err != nil {
			return res, err
		}
		res.Operator += time.Since(start)
		busy = add(busy, cpuNow().since(cpu))
		sample, err := e.sampleAfterSettling(ctx)
		if err != nil {
			return res, err
		}
		if i == 0 {
			res.Half = sample
		} else {
			res.Full = sample
		}
	}
	res.OperatorCPU = busy
	if err := e.restart(ctx, &res); err != nil {
		return res, err
	}
	file := filepath.Join(e.dir, "fleet.yaml")
	if err := os.WriteFile(file, manifests, 0o600); err != nil {
		return res, err
	}
	e.progress("fleet: the same %d objects through kubectl apply --server-side", res.Objects)
	cpu, start := cpuNow(), time.Now()
	if _, err := e.cluster.Kubectl(ctx, "apply", "--server-side", "-f", file); err != nil {
		return res, err
	}
	res.Kubectl, res.KubectlCPU = time.Since(start), cpuNow().since(cpu)
	return res, nil
}

// restart replaces the manager process and times its re-verification of every graph.
func (e *env) restart(ctx context.Context, res *fleetResult) error {
	e.progress("fleet: restarting the manager")
	e.cluster.StopManagers()
	start := time.Now()
	if err := e.startManager(ctx, e.binary); err != nil {
		return err
	}
	var all v1alpha1.ServiceGraphList
	if err := e.k8s.List(ctx, &all); err != nil {
		return err
	}
	graphs := len(all.Items)
	res.AllGraphs = graphs
	err := poll(ctx, 10*time.Minute, 100*time.Millisecond, func(ctx context.Context) (bool, error) {
		s, err := e.scrape(ctx)
		if err != nil {
			return false, err
		}
		res.Reconciled = int(s.reconciles())
		return res.Reconciled >= graphs && !s.busy(), nil
	})
	if err != nil {
		return err
	}
	res.Restart = time.Since(start)
	s, err := e.settled(ctx)
	if err != nil {
		return err
	}
	res.RestartWrites = s.requests().writes() // the new process's: events included
	res.Synced = time.Duration(s.synced() * float64(time.Second))
	return nil
}

// waitAllReady waits until every graph is Ready at its generation, from one list and then a watch
// of every namespace (listing thousands of graphs over and over would load the API server the
// operator is being measured on).
func (e *env) waitAllReady(ctx context.Context, graphs []*v1alpha1.ServiceGraph) error {
	pending := map[client.ObjectKey]bool{}
	for _, sg := range graphs {
		pending[client.ObjectKeyFromObject(sg)] = true
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Minute)
	defer cancel()
	for ctx.Err() == nil {
		var list v1alpha1.ServiceGraphList
		if err := e.k8s.List(ctx, &list); err != nil {
			return err
		}
		for i := range list.Items {
			if sg := &list.Items[i]; ready(sg, sg.Generation) {
				delete(pending, client.ObjectKeyFromObject(sg))
			}
		}
		if len(pending) == 0 {
			return nil
		}
		w, err := e.k8s.Watch(ctx, &v1alpha1.ServiceGraphList{}, &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: list.ResourceVersion}})
		if err != nil {
			return err
		}
		done := watchUntil(w, func(sg *v1alpha1.ServiceGraph) bool {
			if ready(sg, sg.Generation) {
				delete(pending, client.ObjectKeyFromObject(sg))
			}
			return len(pending) == 0
		})
		w.Stop()
		if done {
			return nil
		}
	}
	return fmt.Errorf("%d graphs not Ready: %w", len(pending), ctx.Err())
}

// sampleAfterSettling waits for the manager to settle and samples its memory.
func (e *env) sampleAfterSettling(ctx context.Context) (memSample, error) {
	if err := e.settle(ctx); err != nil {
		return memSample{}, err
	}
	return e.sampleMemory(ctx)
}

// add sums CPU uses by process.
func add(a, b cpuUse) cpuUse {
	out := cpuUse{}
	for k, v := range a {
		out[k] += v
	}
	for k, v := range b {
		out[k] += v
	}
	return out
}
