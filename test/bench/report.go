package main

import (
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"
)

// The goals.
const (
	compileBudget  = 50 * time.Millisecond // 1,000 services
	compileBudgetN = 1000
	// linearLimit is how much compile time may grow per 10× services and still count as near
	// linear: n log n from 1,000 to 10,000 would be ×13.3, and the garbage collector's share
	// grows with the heap.
	linearLimit     = 15.0
	ratioGoal       = 0.5 // operator / kubectl, cold, largest graph
	maxEdgeWrites   = 3   // objects written for one added edge
	maxMemoryGrowth = 0.10
	// maxForeignBytes is the live heap one foreign policy may cost: the operator watches the
	// names of the policies it did not generate, cluster-wide, for the Bypassed condition.
	maxForeignBytes = 1024
)

// report holds every figure of one run.
type report struct {
	cfg         config
	machine     machine
	compile     []compileResult
	cli         cliResult
	cold        []coldSeries
	incremental incrementalResult
	quiet       quietResult
	memory      memoryResult
	enforcement enforcementResult
	churn       churnResult
	fleet       fleetResult
	traffic     trafficResult
}

// row is one line of the results table; met is "yes", "NO" or empty when no goal applies.
type row struct{ measurement, result, goal, met string }

func (r *report) rows() []row {
	var rows []row
	rows = append(rows, r.compileRows()...)
	rows = append(rows, r.cliRows()...)
	rows = append(rows, r.trafficRows()...)
	rows = append(rows, r.coldRows()...)
	rows = append(rows, r.incrementalRow(), r.quietRow(), r.memoryBeforeRow(), r.memoryAfterRow())
	rows = append(rows, r.churnRows()...)
	rows = append(rows, r.fleetRows()...)
	return append(rows, r.enforcementRows()...)
}

func (r *report) compileRows() []row {
	var rows []row
	for i, c := range r.compile {
		x := row{
			measurement: fmt.Sprintf("compile %s services, %s edges", count(c.Services), count(c.Edges)),
			result: fmt.Sprintf("%s/op, %s/op, %s allocs/op", duration(time.Duration(c.NsPerOp)),
				bytes(float64(c.BytesPerOp)), count(int(c.AllocsPerOp))),
		}
		if i > 0 {
			x.result += fmt.Sprintf("; ×%.1f per 10× services", growthPer10x(r.compile[i-1], c))
		}
		if c.Services == compileBudgetN {
			x.goal, x.met = "< "+duration(compileBudget), yes(time.Duration(c.NsPerOp) < compileBudget)
		}
		rows = append(rows, x)
	}
	if len(r.compile) > 1 {
		exponent := growthExponent(r.compile)
		growth := math.Pow(10, exponent)
		rows = append(rows, row{
			measurement: fmt.Sprintf("compile growth, %s to %s services", count(r.compile[0].Services), count(r.compile[len(r.compile)-1].Services)),
			result:      fmt.Sprintf("×%.1f per 10× services (time ∝ services^%.2f, least-squares fit over the sizes)", growth, exponent),
			goal:        fmt.Sprintf("≤ ×%.0f per 10× (near linear)", linearLimit),
			met:         yes(growth <= linearLimit),
		})
	}
	return rows
}

// growthPer10x scales the time ratio of two sizes to a 10× step in services: 5,000 after 1,000
// is a 5× step, so its ratio r counts as r^(1/log10 5).
func growthPer10x(a, b compileResult) float64 {
	ratio := float64(b.NsPerOp) / float64(a.NsPerOp)
	return math.Pow(ratio, 1/math.Log10(float64(b.Services)/float64(a.Services)))
}

// growthExponent is the slope of log(time) over log(services), fitted by least squares: one
// noisy size moves it less than it moves the step next to it.
func growthExponent(results []compileResult) float64 {
	var sx, sy, sxx, sxy float64
	for _, c := range results {
		x, y := math.Log10(float64(c.Services)), math.Log10(float64(c.NsPerOp))
		sx, sy, sxx, sxy = sx+x, sy+y, sxx+x*x, sxy+x*y
	}
	n := float64(len(results))
	return (n*sxy - sx*sy) / (n*sxx - sx*sx)
}

func (r *report) coldRows() []row {
	var rows []row
	cores := r.machine.CPUs
	for i, series := range r.cold {
		c := series.median()
		name := fmt.Sprintf("cold convergence, %s services (%s edges, %s objects)", count(c.Services), count(c.Edges), count(c.Objects))
		ratio := row{measurement: name + ": ratio operator / kubectl", result: fmt.Sprintf("%.2f%s", c.Ratio(), series.ratioSpread())}
		if i == len(r.cold)-1 {
			ratio.goal, ratio.met = fmt.Sprintf("≤ %.1f", ratioGoal), yes(c.Ratio() <= ratioGoal)
		}
		rows = append(rows,
			row{measurement: name + ": operator", result: fmt.Sprintf("%s%s to Ready; %s write requests, %d reads; %s",
				duration(c.Operator), series.timeSpread(func(c coldResult) time.Duration { return c.Operator }),
				c.Requests.writes(), c.Requests[http.MethodGet], c.OperatorCPU.describe(c.Operator, cores))},
			row{measurement: name + ": `kubectl apply --server-side`", result: fmt.Sprintf("%s%s; %s",
				duration(c.Kubectl), series.timeSpread(func(c coldResult) time.Duration { return c.Kubectl }),
				c.KubectlCPU.describe(c.Kubectl, cores))},
			ratio)
	}
	return rows
}

// timeSpread and ratioSpread say " (runs: LO–HI)" when there was more than one run.
func (s coldSeries) timeSpread(figure func(coldResult) time.Duration) string {
	if len(s) < 2 {
		return ""
	}
	lo, hi := s.spread(func(c coldResult) float64 { return float64(figure(c)) })
	return fmt.Sprintf(" (%d runs: %s–%s)", len(s), duration(time.Duration(lo)), duration(time.Duration(hi)))
}

func (s coldSeries) ratioSpread() string {
	if len(s) < 2 {
		return ""
	}
	lo, hi := s.spread(coldResult.Ratio)
	return fmt.Sprintf(" (%d runs: %.2f–%.2f)", len(s), lo, hi)
}

func (r *report) incrementalRow() row {
	in := r.incremental
	return row{
		measurement: fmt.Sprintf("add one edge (`%s`) to the %s-service graph", in.Edge, count(r.largest())),
		result: fmt.Sprintf("%s to Ready; %d objects written (%s); %s write requests", duration(in.Elapsed),
			len(in.Written), strings.Join(in.Written, ", "), in.Writes),
		goal: fmt.Sprintf("≤ %d objects written", maxEdgeWrites),
		met:  yes(len(in.Written) <= maxEdgeWrites),
	}
}

func (r *report) quietRow() row {
	q := r.quiet
	return row{
		measurement: fmt.Sprintf("quiet steady state: %d forced resyncs of the %s-service graph", q.Resyncs, count(r.largest())),
		result: fmt.Sprintf("%d reconciles; %s write requests; %.2f s manager CPU (%.3f s per reconcile)",
			q.Reconciles, q.Writes, q.CPUSeconds, q.CPUSeconds/float64(max(q.Reconciles, 1))),
		goal: "0 writes",
		met:  yes(q.Writes.total() == 0 && q.Reconciles >= q.Resyncs),
	}
}

func (r *report) memoryBeforeRow() row {
	return row{
		measurement: fmt.Sprintf("manager memory, %s-service graph converged", count(r.largest())),
		result:      r.memory.Before.describe(),
	}
}

func (r *report) memoryAfterRow() row {
	m := r.memory
	return row{
		measurement: fmt.Sprintf("manager memory after %s foreign NetworkPolicies and %s ConfigMaps", count(m.Foreign), count(m.Foreign)),
		result: fmt.Sprintf("%s; live heap %+.1f%% (%.0f bytes per foreign NetworkPolicy), RSS %+.1f%%; created in %s, manager requests meanwhile: %s",
			m.After.describe(), 100*m.LiveGrowth(), m.ForeignBytes(), 100*m.RSSGrowth(), duration(m.Load), m.Requests),
		goal: fmt.Sprintf("≤ %d bytes of live heap per foreign policy, RSS < %.0f%% growth", maxForeignBytes, 100*maxMemoryGrowth),
		met:  yes(m.ForeignBytes() <= maxForeignBytes && m.RSSGrowth() < maxMemoryGrowth),
	}
}

func (m memSample) describe() string {
	return fmt.Sprintf("live heap %s (after a GC that came in %s), heap in use %s (max %s), RSS %s (max %s)",
		bytes(m.Live), duration(m.GCWait), bytes(m.Heap), bytes(m.HeapMax), bytes(m.RSS), bytes(m.RSSMax))
}

func (r *report) largest() int { return r.cfg.GraphSizes[len(r.cfg.GraphSizes)-1] }

// table renders the rows as a markdown table.
func (r *report) table() string { return markdownTable(r.rows()) }

func markdownTable(rows []row) string {
	var b strings.Builder
	b.WriteString("| measurement | result | goal | met |\n| --- | --- | --- | --- |\n")
	for _, x := range rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", x.measurement, x.result, x.goal, x.met)
	}
	return b.String()
}

// unmet lists the measurements whose goal was missed.
func (r *report) unmet() []string {
	var out []string
	for _, x := range r.rows() {
		if x.met == yes(false) {
			out = append(out, x.measurement)
		}
	}
	return out
}

func yes(ok bool) string {
	if ok {
		return "yes"
	}
	return "NO"
}

// count prints an integer with thousands separators: 10,000.
func count(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func duration(d time.Duration) string {
	switch {
	case d >= 10*time.Second:
		return fmt.Sprintf("%.1f s", d.Seconds())
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.1f µs", float64(d)/float64(time.Microsecond))
	}
}

func bytes(n float64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", n/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", n/(1<<10))
	default:
		return fmt.Sprintf("%.0f B", n)
	}
}
