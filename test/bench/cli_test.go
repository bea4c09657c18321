package main

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestCLI runs the CLI measurement at a small size (TestSmoke's compile sizes leave it out): the
// binary builds, compile prints every object of the graph, and the row carries the figures and a
// verdict on the goal.
func TestCLI(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := benchCLI(ctx, 20, 2, 1)
	if err != nil {
		t.Fatal(err)
	}
	if res.Objects < 20 || res.OutputBytes == 0 || res.InputBytes == 0 || res.PeakRSS == 0 || len(res.Compile) != 2 || len(res.Help) != 2 {
		t.Fatalf("figures missing: %+v", res)
	}
	rows := (&report{cli: res}).cliRows()
	t.Log("\n" + markdownTable(rows))
	if len(rows) != 1 || !strings.HasPrefix(rows[0].measurement, "`servicegraph compile -f FILE` of 20 services") ||
		!strings.Contains(rows[0].result, "`servicegraph --help`") || rows[0].met == "" {
		t.Errorf("row %+v", rows)
	}
}
