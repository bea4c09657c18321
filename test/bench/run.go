package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/test/bench/graphgen"
	"github.com/servicegraph/servicegraph-operator/test/testenv"
)

// run takes every measurement in one run, so that the ratios compare figures taken side by side
// on the same machine at the same time. Progress goes to logTo.
func run(ctx context.Context, cfg config, logTo io.Writer) (*report, error) {
	progress := func(format string, args ...any) {
		fmt.Fprintf(logTo, "%s bench: %s\n", time.Now().Format(time.TimeOnly), fmt.Sprintf(format, args...))
	}
	rep := &report{cfg: cfg, machine: describeMachine()}
	var err error
	progress("compile benchmark: %v services", cfg.CompileSizes)
	if rep.compile, err = benchCompile(cfg.CompileSizes, cfg.CompileRounds, cfg.Seed); err != nil {
		return nil, err
	}
	if cfg.CLIRuns > 0 && slices.Contains(cfg.CompileSizes, compileBudgetN) {
		progress("servicegraph compile of %d services as a process: %d runs", compileBudgetN, cfg.CLIRuns)
		if rep.cli, err = benchCLI(ctx, compileBudgetN, cfg.CLIRuns, cfg.Seed); err != nil {
			return nil, err
		}
	}
	if cfg.TrafficServices > 0 {
		progress("discover and audit: %d services, %d series in a real Prometheus", cfg.TrafficServices, cfg.TrafficSeries)
		if rep.traffic, err = benchTraffic(ctx, cfg.TrafficServices, cfg.TrafficSeries, cfg.Seed); err != nil {
			return nil, err
		}
	}
	progress("starting the control plane and the manager")
	e, err := startEnv(ctx, cfg, progress)
	if err != nil {
		return nil, err
	}
	failed := true
	defer func() { e.stop(failed) }()
	if err := e.measureCluster(ctx, rep); err != nil {
		return nil, fmt.Errorf("%w (manager log: %s)", err, e.log.Name())
	}
	failed = false
	e.stop(false)
	if cfg.EnforcementChanges > 0 {
		progress("time to enforcement: %d edge changes on real packets (the dataplane suite)", cfg.EnforcementChanges)
		if rep.enforcement, err = timeToEnforcement(ctx, cfg.EnforcementChanges); err != nil {
			return nil, err
		}
	}
	rep.machine.finish()
	return rep, nil
}

// measureCluster runs the measurements that need the control plane, in an order where each one
// starts from the state the previous one left: the largest graph converged, then changed, then
// resynced, then held in memory while foreign objects pile up.
func (e *env) measureCluster(ctx context.Context, rep *report) error {
	if err := e.warmUp(ctx); err != nil {
		return err
	}
	var largest *v1alpha1.ServiceGraph
	for i, n := range e.cfg.GraphSizes {
		var series coldSeries
		for run := range e.cfg.Runs {
			keep := i == len(e.cfg.GraphSizes)-1 && run == e.cfg.Runs-1
			res, sg, err := e.cold(ctx, n, run, keep)
			if err != nil {
				return err
			}
			series = append(series, res)
			if keep {
				largest = sg
				continue
			}
			// Only the last graph stays, so the figures that follow are about it alone.
			if err := e.discard(ctx, sg.Namespace); err != nil {
				return err
			}
		}
		rep.cold = append(rep.cold, series)
	}
	var err error
	if rep.incremental, err = e.incremental(ctx, largest); err != nil {
		return err
	}
	if rep.quiet, err = e.quiet(ctx, largest, e.cfg.Resyncs); err != nil {
		return err
	}
	if rep.memory, err = e.memory(ctx); err != nil {
		return err
	}
	if e.cfg.PodsPerService > 0 {
		if rep.churn, err = e.churn(ctx, largest); err != nil {
			return err
		}
	}
	if e.cfg.FleetGraphs > 0 {
		rep.fleet, err = e.fleet(ctx)
	}
	return err
}

// warmUp converges and deletes a two-service graph, so that the manager's one-time work on its
// first graph (discovering Istio's API and starting the watches on its kinds) is not billed to the
// first measurement: a running operator has done it long before a new graph arrives.
func (e *env) warmUp(ctx context.Context) error {
	e.progress("warm-up: a two-service graph")
	sg := graphgen.Graph("bench", "warm-up", 2, e.cfg.Seed)
	want, err := testenv.Compiled(sg)
	if err != nil {
		return err
	}
	if err := e.createNamespace(ctx, sg.Namespace); err != nil {
		return err
	}
	if err := e.createAndWait(ctx, sg, want); err != nil {
		return err
	}
	return e.discard(ctx, sg.Namespace)
}
