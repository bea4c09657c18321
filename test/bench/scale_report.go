package main

import (
	"fmt"
	"math"
	"time"

	"github.com/servicegraph/servicegraph-operator/controllers"
)

// Goals of the churn and fleet measurements.
const (
	maxEditDelay   = 2 * time.Second // p95 time to Ready of an edit made during a rollout
	fleetRatioGoal = 0.5
	maxRestart     = 30 * time.Second // re-verification of every graph after a manager restart
	// maxPerGraph is the live heap a 10-service graph may cost: 2,000 namespaces in well under 1 GiB.
	maxPerGraph = 64 << 10
	// maxPerGraphSpread is how far the two halves' per-graph memory may differ and still count as
	// linear.
	maxPerGraphSpread = 0.5
)

func durationsMs(d []time.Duration) []float64 {
	out := make([]float64, len(d))
	for i, x := range d {
		out[i] = float64(x) / float64(time.Millisecond)
	}
	return out
}

// p95 describes time-to-Ready figures.
func describeTimes(d []time.Duration) string {
	ms := durationsMs(d)
	if len(ms) == 0 {
		return "none"
	}
	return fmt.Sprintf("p50 %s, p95 %s (%d edits)", millis(percentile(ms, 50)), millis(percentile(ms, 95)), len(ms))
}

func (r *report) churnRows() []row {
	c := r.churn
	if c.Pods == 0 {
		return nil
	}
	// Each pod event waits controllers.PodEventDelay and joins the wait of the others: a graph
	// reconciles at most once per delay from pod events, plus twice per edit (the edit, then the
	// events of the objects it wrote).
	fromPods := int(math.Ceil(c.Duration.Seconds() / controllers.PodEventDelay.Seconds()))
	edits := len(c.Edits) + len(c.Small)
	bound := fromPods + 2*edits + 2
	// A pod-driven reconcile writes the status at most once; an edit writes its objects (3 for one
	// edge), its status and an event.
	writeBound := fromPods + 5*edits + 2
	p95 := func(d []time.Duration) bool {
		return len(d) > 0 && percentile(durationsMs(d), 95) <= float64(maxEditDelay/time.Millisecond)
	}
	return []row{
		{
			measurement: fmt.Sprintf("rolling restart of %s pods of the %s-service graph at %d pods/s (%s pod writes: create, 2 status updates, delete each)",
				count(c.Pods), count(c.Pods/max(r.cfg.PodsPerService, 1)), r.cfg.ChurnRate, count(c.PodEvents)),
			result: fmt.Sprintf("%s; %d reconciles, %.2f s manager CPU, manager writes %s; %s",
				duration(c.Duration), c.Reconciles, c.ManagerCPU, c.Writes, c.CPU.describe(c.Duration, 2)),
			goal: fmt.Sprintf("≤ %d reconciles and %d writes (one of each per %s of rollout; two reconciles and five writes per edit)",
				bound, writeBound, duration(controllers.PodEventDelay)),
			met: yes(c.Reconciles <= bound && c.Writes.total() <= writeBound),
		},
		{
			measurement: fmt.Sprintf("an edge added to the %s-service graph during the rollout", count(c.Pods/max(r.cfg.PodsPerService, 1))),
			result:      describeTimes(c.Edits) + " to Ready",
			goal:        "p95 ≤ " + duration(maxEditDelay),
			met:         yes(p95(c.Edits)),
		},
		{
			measurement: "an edge changed in a 10-service graph of another namespace during the rollout (fairness)",
			result:      describeTimes(c.Small) + " to Ready",
			goal:        "p95 ≤ " + duration(maxEditDelay),
			met:         yes(p95(c.Small)),
		},
	}
}

func (r *report) fleetRows() []row {
	f := r.fleet
	if f.Graphs == 0 {
		return nil
	}
	what := fmt.Sprintf("%s graphs of %d services, one per namespace (%s objects)", count(f.Graphs), f.Services, count(f.Objects))
	first, second := f.PerGraph()
	spread := math.Abs(second-first) / math.Max(first, second)
	return []row{
		{measurement: "cold convergence, " + what + ": operator", result: fmt.Sprintf("%s to every graph Ready; %s", duration(f.Operator), f.OperatorCPU.describe(f.Operator, 2))},
		{measurement: "cold convergence, " + what + ": `kubectl apply --server-side`", result: fmt.Sprintf("%s; %s", duration(f.Kubectl), f.KubectlCPU.describe(f.Kubectl, 2))},
		{measurement: "cold convergence, " + what + ": ratio operator / kubectl", result: fmt.Sprintf("%.2f", f.Ratio()),
			goal: fmt.Sprintf("≤ %.1f", fleetRatioGoal), met: yes(f.Ratio() <= fleetRatioGoal)},
		{
			measurement: "manager memory per graph of the fleet",
			result: fmt.Sprintf("live heap %s before, %s with half, %s with all: %s per graph for the first half, %s for the second",
				bytes(f.Base.Live), bytes(f.Half.Live), bytes(f.Full.Live), bytes(first), bytes(second)),
			goal: fmt.Sprintf("≤ %s per graph, linear (halves within %.0f%%)", bytes(maxPerGraph), 100*maxPerGraphSpread),
			met:  yes(spread <= maxPerGraphSpread && max(first, second) <= maxPerGraph),
		},
		{
			measurement: fmt.Sprintf("manager restart with %s graphs", count(f.AllGraphs)),
			result: fmt.Sprintf("%s from process start to every graph reconciled (%d reconciles), of which %s to read every generated object into the cache; writes %s",
				duration(f.Restart), f.Reconciled, duration(f.Synced), f.RestartWrites),
			goal: fmt.Sprintf("< %s, 0 writes", duration(maxRestart)),
			met:  yes(f.Restart < maxRestart && f.RestartWrites.total() == 0),
		},
	}
}
