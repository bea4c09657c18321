package main

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// The manager's metrics the benchmark reads: client-go's request counter (client side, by verb),
// the process and Go runtime collectors, and the controller's work queue.
const (
	metricRequests   = "rest_client_requests_total"
	metricCPU        = "process_cpu_seconds_total"
	metricRSS        = "process_resident_memory_bytes"
	metricHeap       = "go_memstats_heap_inuse_bytes"
	metricLive       = "go_gc_heap_live_bytes"
	metricGCCycles   = "go_gc_cycles_total_gc_cycles_total"
	metricQueueDepth = "workqueue_depth"
	metricActive     = "controller_runtime_active_workers"
	metricReconciles = "controller_runtime_reconcile_total"
	metricSynced     = "servicegraph_summary_cache_synced_seconds"
	controllerName   = "servicegraph"
)

// snapshot is one scrape of the manager's metrics.
type snapshot map[string]*dto.MetricFamily

func (e *env) scrape(ctx context.Context) (snapshot, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.metrics, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scraping the manager's metrics: %w", err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("parsing the manager's metrics: %w", err)
	}
	return fams, nil
}

// value sums the samples of a counter or gauge that carry the label name=value (any sample when
// name is empty).
func (s snapshot) value(metric, name, value string) float64 {
	fam, ok := s[metric]
	if !ok {
		return 0
	}
	var sum float64
	for _, m := range fam.GetMetric() {
		if name == "" || label(m, name) == value {
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue() + m.GetUntyped().GetValue()
		}
	}
	return sum
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// requests counts the manager's API requests so far by HTTP verb.
func (s snapshot) requests() requestCounts {
	out := requestCounts{}
	for _, m := range s[metricRequests].GetMetric() {
		out[label(m, "method")] += int(m.GetCounter().GetValue())
	}
	return out
}

// reconciles is how many reconciles of the ServiceGraph controller have finished.
func (s snapshot) reconciles() float64 {
	return s.value(metricReconciles, "controller", controllerName)
}

// synced is when the last kind's generated objects were first cached, in seconds from the
// manager's start.
func (s snapshot) synced() float64 {
	var last float64
	for _, m := range s[metricSynced].GetMetric() {
		last = max(last, m.GetGauge().GetValue())
	}
	return last
}

// busy tells whether the controller has work queued or in flight.
func (s snapshot) busy() bool {
	return s.value(metricQueueDepth, "name", controllerName)+s.value(metricActive, "controller", controllerName) > 0
}

// requestCounts are API requests by HTTP verb.
type requestCounts map[string]int

// since returns the requests made between an earlier count and this one.
func (c requestCounts) since(earlier requestCounts) requestCounts { return delta(c, earlier, 1) }

// delta returns later minus earlier by key, keeping the keys that grew by at least least.
func delta[M ~map[string]V, V int | float64](later, earlier M, least V) M {
	out := M{}
	for k, v := range later {
		if d := v - earlier[k]; d >= least {
			out[k] = d
		}
	}
	return out
}

// writes drops the reads (GET, which also carries LIST and WATCH).
func (c requestCounts) writes() requestCounts {
	out := maps.Clone(c)
	delete(out, http.MethodGet)
	return out
}

func (c requestCounts) total() int {
	sum := 0
	for _, n := range c {
		sum += n
	}
	return sum
}

// String reads "0" or "2012 (PATCH 2010, POST 2)".
func (c requestCounts) String() string {
	if c.total() == 0 {
		return "0"
	}
	var parts []string
	for _, verb := range slices.Sorted(maps.Keys(c)) {
		parts = append(parts, fmt.Sprintf("%s %d", verb, c[verb]))
	}
	return fmt.Sprintf("%d (%s)", c.total(), strings.Join(parts, ", "))
}

// settled waits for the manager to settle and then scrapes its metrics.
func (e *env) settled(ctx context.Context) (snapshot, error) {
	if err := e.settle(ctx); err != nil {
		return nil, err
	}
	return e.scrape(ctx)
}

// settle waits until the controller has had nothing queued or in flight, and finished no
// reconcile, for cfg.Settle: the watch events its own writes caused have then been handled, so the
// next figure is not polluted by the previous step.
func (e *env) settle(ctx context.Context) error {
	last, since := -1.0, time.Now()
	return poll(ctx, 5*time.Minute, 100*time.Millisecond, func(ctx context.Context) (bool, error) {
		s, err := e.scrape(ctx)
		if err != nil {
			return false, err
		}
		if n := s.reconciles(); s.busy() || n != last {
			last, since = n, time.Now()
			return false, nil
		}
		return time.Since(since) >= e.cfg.Settle, nil
	})
}
