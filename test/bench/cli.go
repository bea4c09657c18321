package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/servicegraph/servicegraph-operator/test/bench/graphgen"
	"github.com/servicegraph/servicegraph-operator/test/testenv"
)

// cliBudget is the goal for `servicegraph compile` of compileBudgetN services as a whole
// process: reading the YAML and writing it must cost about what compiling does.
const cliBudget = 200 * time.Millisecond

// cliResult is the servicegraph binary run as a process: compile of a generated graph, and --help,
// which does nothing but start (its package initialisation is the floor of any command).
type cliResult struct {
	Services, Edges, Objects int
	// InputBytes and OutputBytes are the graph file's size and what compile printed.
	InputBytes, OutputBytes int
	// Compile and Help are each run's wall time; CompileCPU each compile's user and system time.
	Compile, CompileCPU, Help []time.Duration
	// PeakRSS is the compile's peak resident memory, read in a run of its own.
	PeakRSS float64
	// Load is /proc/loadavg when the runs ended: the machine is shared.
	Load string
}

// benchCLI builds the servicegraph binary, writes a generated graph of the given size to a file
// and runs `servicegraph compile -f FILE` (stdout to /dev/null: what a file system does with the
// output is not the command's cost; the run not counted keeps it, to count it) and `servicegraph
// --help` in turn, runs times each after one run of each that is not counted (it fills the page
// cache and reads the peak memory).
func benchCLI(ctx context.Context, services, runs int, seed uint64) (cliResult, error) {
	dir, err := os.MkdirTemp("", "bench-cli-")
	if err != nil {
		return cliResult{}, err
	}
	defer os.RemoveAll(dir)
	cli, graphFile := filepath.Join(dir, "servicegraph"), filepath.Join(dir, "graph.yaml")
	build := exec.CommandContext(ctx, "go", "build", "-o", cli, "./cmd/servicegraph")
	build.Dir = testenv.Root()
	if out, err := build.CombinedOutput(); err != nil {
		return cliResult{}, fmt.Errorf("building the CLI: %w\n%s", err, out)
	}
	sg := graphgen.Graph("bench", "bench", services, seed)
	if err := writeYAML(graphFile, sg); err != nil {
		return cliResult{}, err
	}
	res := cliResult{Services: services, Edges: len(sg.Spec.Edges)}
	// The runs not counted: the compile's peak memory, read while it runs, and its output.
	cmd := exec.CommandContext(ctx, cli, "compile", "-f", graphFile)
	var out, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Start(); err != nil {
		return res, err
	}
	peak := watchPeakRSS(cmd.Process.Pid)
	if err := cmd.Wait(); err != nil {
		return res, fmt.Errorf("servicegraph compile: %w: %s", err, stderr.String())
	}
	if _, _, err := runCLI(ctx, cli, "--help"); err != nil {
		return res, err
	}
	res.PeakRSS, res.OutputBytes, res.Objects = <-peak, out.Len(), strings.Count(out.String(), "---\n")
	if info, err := os.Stat(graphFile); err == nil {
		res.InputBytes = int(info.Size())
	}
	for range runs {
		wall, cpu, err := runCLI(ctx, cli, "compile", "-f", graphFile)
		if err != nil {
			return res, err
		}
		floor, _, err := runCLI(ctx, cli, "--help")
		if err != nil {
			return res, err
		}
		res.Compile, res.CompileCPU, res.Help = append(res.Compile, wall), append(res.CompileCPU, cpu), append(res.Help, floor)
	}
	res.Load = loadAverage()
	return res, nil
}

// runCLI runs the binary with stdout to /dev/null and returns its wall and CPU time.
func runCLI(ctx context.Context, cli string, args ...string) (wall, cpu time.Duration, err error) {
	f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	cmd := exec.CommandContext(ctx, cli, args...)
	var stderr strings.Builder
	cmd.Stdout, cmd.Stderr = f, &stderr
	start := time.Now()
	err = cmd.Run()
	wall = time.Since(start)
	if err != nil {
		return 0, 0, fmt.Errorf("servicegraph %v: %w: %s", args, err, stderr.String())
	}
	return wall, cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), nil
}

// runCLIOnly is `go run ./test/bench -only cli`: the CLI's row alone, printed; no file written.
func runCLIOnly(ctx context.Context, cfg config) error {
	rep := &report{cfg: cfg}
	var err error
	if rep.cli, err = benchCLI(ctx, compileBudgetN, cfg.CLIRuns, cfg.Seed); err != nil {
		return err
	}
	fmt.Print(markdownTable(rep.cliRows()))
	return nil
}

func (r *report) cliRows() []row {
	c := r.cli
	if len(c.Compile) == 0 {
		return nil
	}
	return []row{{
		measurement: fmt.Sprintf("`servicegraph compile -f FILE` of %s services, %s edges (%s of YAML in, %s objects and %s out to /dev/null): the whole process",
			count(c.Services), count(c.Edges), bytes(float64(c.InputBytes)), count(c.Objects), bytes(float64(c.OutputBytes))),
		result: fmt.Sprintf("median %s wall (%s), %s CPU, peak RSS %s; `servicegraph --help`, the process's start alone: median %s (%s); load average %s",
			duration(medianDuration(c.Compile)), spread(c.Compile), duration(medianDuration(c.CompileCPU)), bytes(c.PeakRSS),
			duration(medianDuration(c.Help)), spread(c.Help), c.Load),
		goal: "≤ " + duration(cliBudget),
		met:  yes(medianDuration(c.Compile) <= cliBudget),
	}}
}

func medianDuration(d []time.Duration) time.Duration {
	return slices.Sorted(slices.Values(d))[len(d)/2]
}

// spread says "N runs: MIN–MAX".
func spread(d []time.Duration) string {
	return fmt.Sprintf("%d runs: %s–%s", len(d), duration(slices.Min(d)), duration(slices.Max(d)))
}
