// Command bench measures the operator on the test control plane, side by side with kubectl, and
// prints the results as a markdown table that it also writes to docs/performance.md:
//
//	make bench            # or: go run ./test/bench [-out FILE] [-graphs 100,1000] ...
//	go run ./test/bench -only cli   # `servicegraph compile` of 1,000 services as a process, alone
//
// It compiles graphs in process and times `servicegraph compile` as a whole process, then starts
// kube-apiserver and etcd (with Istio's CRDs), runs the manager binary as a process and reads
// everything it reports about itself (write requests by verb, CPU, heap, RSS) from the manager's
// own metrics endpoint, so no figure depends on server logs.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/servicegraph/servicegraph-operator/test/testenv"
)

// config sizes one run. The defaults are the issue's; the smoke test shrinks them.
type config struct {
	// CompileSizes are the service counts of the compile benchmark, each run CompileRounds times.
	CompileSizes  []int
	CompileRounds int
	// CLIRuns is how many times `servicegraph compile` of the compile benchmark's 1,000-service
	// graph runs as a process (when 1,000 is one of CompileSizes); 0 skips it.
	CLIRuns int
	// GraphSizes are the graphs converged cold, each Runs times; the incremental, quiet and memory
	// measurements use the last (largest) one.
	GraphSizes []int
	Runs       int
	// Foreign is how many foreign NetworkPolicies, and as many ConfigMaps, the memory measurement
	// creates in other namespaces.
	Foreign int
	// PodsPerService and ChurnRate size the rolling restart of the largest graph's namespace (pods
	// per service, pods replaced a second); FleetGraphs graphs of FleetServices services, one per
	// namespace, make the fleet. 0 skips either.
	PodsPerService, ChurnRate  int
	FleetGraphs, FleetServices int
	// Resyncs is how many reconciles the quiet steady state forces.
	Resyncs int
	// Samples is how many memory samples, Every apart, make one memory figure.
	Samples int
	Every   time.Duration
	// Settle is how long the manager must stay idle to count as settled.
	Settle time.Duration
	// Profile is how long kube-apiserver is profiled while the operator converges the largest graph.
	Profile time.Duration
	// EnforcementChanges is how many edge changes the time-to-enforcement measurement makes on
	// real packets (the dataplane suite, which needs root); 0 skips it.
	EnforcementChanges int
	// TrafficServices services and TrafficSeries Istio series in a real Prometheus size the
	// discover and audit measurement; 0 services skips it.
	TrafficServices, TrafficSeries int
	// Manager is a manager binary to run; empty builds ./cmd/manager from the working tree.
	Manager string
	// Workers is the manager's --apply-workers.
	Workers int
	Seed    uint64
	// Out is the markdown file to write; empty writes none.
	Out string
	// Command is how the run was started, for the report.
	Command string
}

func defaultConfig() config {
	return config{
		CompileSizes:   []int{10, 100, 1000, 5000},
		CompileRounds:  3,
		CLIRuns:        15,
		GraphSizes:     []int{100, 1000},
		Runs:           3,
		Foreign:        10000,
		PodsPerService: 3,
		ChurnRate:      50,
		FleetGraphs:    2000,
		FleetServices:  10,
		Resyncs:        10,
		Samples:        5,
		Every:          time.Second,
		Settle:         time.Second,
		Profile:        10 * time.Second,
		Workers:        8,

		EnforcementChanges: 24,
		TrafficServices:    1000,
		TrafficSeries:      100000,
		Seed:               1,
		Out:                filepath.Join(testenv.Root(), "docs", "performance.md"),
		Command:            "make bench",
	}
}

func main() {
	cfg := defaultConfig()
	flag.Var((*intList)(&cfg.CompileSizes), "compile", "service counts of the compile benchmark")
	flag.Var((*intList)(&cfg.GraphSizes), "graphs", "service counts of the graphs converged cold; the last one is also changed, resynced and held in memory")
	flag.IntVar(&cfg.CLIRuns, "cli-runs", cfg.CLIRuns, "runs of servicegraph compile of 1,000 services as a process (0 skips it)")
	only := flag.String("only", "", "cli: time servicegraph compile as a process alone and print its row, writing no file")
	flag.IntVar(&cfg.Runs, "runs", cfg.Runs, "cold convergences of each graph size (the median is reported)")
	flag.IntVar(&cfg.Foreign, "foreign", cfg.Foreign, "foreign NetworkPolicies (and as many ConfigMaps) created for the memory measurement")
	flag.IntVar(&cfg.PodsPerService, "pods-per-service", cfg.PodsPerService, "pods per service of the largest graph for the rolling restart (0 skips it)")
	flag.IntVar(&cfg.ChurnRate, "churn-rate", cfg.ChurnRate, "pods replaced a second in the rolling restart")
	flag.IntVar(&cfg.FleetGraphs, "fleet", cfg.FleetGraphs, "graphs of the fleet, one per namespace (0 skips it)")
	flag.IntVar(&cfg.FleetServices, "fleet-services", cfg.FleetServices, "services of each fleet graph")
	flag.IntVar(&cfg.Resyncs, "resyncs", cfg.Resyncs, "forced reconciles of the quiet steady state")
	flag.StringVar(&cfg.Manager, "manager", cfg.Manager, "manager binary to measure (default: build ./cmd/manager)")
	flag.IntVar(&cfg.EnforcementChanges, "enforcement-changes", cfg.EnforcementChanges, "edge changes timed on real packets (needs root; 0 skips)")
	flag.IntVar(&cfg.TrafficServices, "traffic-services", cfg.TrafficServices, "services of the discover and audit measurement (0 skips it; needs `make prometheus`)")
	flag.IntVar(&cfg.TrafficSeries, "traffic-series", cfg.TrafficSeries, "Istio series in Prometheus for the discover and audit measurement")
	flag.IntVar(&cfg.Workers, "apply-workers", cfg.Workers, "the manager's --apply-workers")
	flag.StringVar(&cfg.Out, "out", cfg.Out, "markdown file to write (empty: none)")
	timeout := flag.Duration("timeout", 30*time.Minute, "give up after this long")
	flag.Parse()
	if flag.NFlag() > 0 {
		cfg.Command = "go run ./test/bench " + strings.Join(os.Args[1:], " ")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	measure := runAndWrite
	switch *only {
	case "":
	case "cli":
		measure = runCLIOnly
	default:
		fmt.Fprintf(os.Stderr, "bench: -only %q: cli is the one measurement that runs alone\n", *only)
		os.Exit(2)
	}
	if err := measure(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// runAndWrite runs the measurements, prints the table and writes the markdown file.
func runAndWrite(ctx context.Context, cfg config) error {
	rep, err := run(ctx, cfg, os.Stderr)
	if err != nil {
		return err
	}
	fmt.Print(rep.table())
	if cfg.Out == "" {
		return nil
	}
	if err := os.WriteFile(cfg.Out, []byte(rep.markdown()), 0o644); err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "wrote", cfg.Out)
	return nil
}

// intList is a comma-separated list of positive integers on the command line.
type intList []int

func (l *intList) String() string {
	parts := make([]string, len(*l))
	for i, n := range *l {
		parts[i] = strconv.Itoa(n)
	}
	return strings.Join(parts, ",")
}

func (l *intList) Set(s string) error {
	var out []int
	for part := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(part))
		if err != nil || n < 2 {
			return fmt.Errorf("%q is not a service count of at least 2", part)
		}
		out = append(out, n)
	}
	*l = out
	return nil
}
