package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/servicegraph/servicegraph-operator/test/testenv"
)

// enforcementResult is how long new connections took to get a changed verdict on real packets.
type enforcementResult struct {
	// Added and Removed are the milliseconds from `kubectl patch` to the first new connection
	// with the new verdict, for an edge added and an edge removed.
	Added   []float64 `json:"added"`
	Removed []float64 `json:"removed"`
}

// timeToEnforcement runs the dataplane suite's time-to-enforcement spec with the given number of
// changes (it needs root, like the suite) and reads its figures.
func timeToEnforcement(ctx context.Context, changes int) (enforcementResult, error) {
	var res enforcementResult
	dir, err := os.MkdirTemp("", "bench-enforcement-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	report := filepath.Join(dir, "report.json")
	cmd := exec.CommandContext(ctx, "go", "test", "./test/dataplane", "-count=1", "-run", "TestDataplane",
		"-args", "-ginkgo.focus", "Time to enforcement")
	cmd.Dir = testenv.Root()
	cmd.Env = append(os.Environ(), "SERVICEGRAPH_DATAPLANE_CHANGES="+strconv.Itoa(changes), "SERVICEGRAPH_DATAPLANE_REPORT="+report)
	if out, err := cmd.CombinedOutput(); err != nil {
		return res, fmt.Errorf("the dataplane suite: %w\n%s", err, out)
	}
	data, err := os.ReadFile(report)
	if err != nil {
		return res, err
	}
	return res, json.Unmarshal(data, &res)
}

func (r *report) enforcementRows() []row {
	e := r.enforcement
	if len(e.Added)+len(e.Removed) == 0 {
		return nil
	}
	describe := func(ms []float64) string {
		return fmt.Sprintf("p50 %s, p95 %s (%d changes: %s–%s)", millis(percentile(ms, 50)), millis(percentile(ms, 95)),
			len(ms), millis(slices.Min(ms)), millis(slices.Max(ms)))
	}
	all := append(slices.Clone(e.Added), e.Removed...)
	return []row{
		{measurement: "time to enforcement on real packets: an edge added (kubectl patch to the first new connection that connects)", result: describe(e.Added)},
		{measurement: "time to enforcement on real packets: an edge removed (kubectl patch to the first new connection refused)", result: describe(e.Removed)},
		{measurement: "time to enforcement on real packets: every change", result: describe(all)},
	}
}

// percentile is the p-th percentile of the figures, nearest rank.
func percentile(ms []float64, p int) float64 {
	sorted := slices.Sorted(slices.Values(ms))
	rank := max((p*len(sorted)+99)/100, 1)
	return sorted[rank-1]
}

func millis(ms float64) string { return duration(time.Duration(ms * float64(time.Millisecond))) }
