package main

import (
	"fmt"
	"testing"

	"github.com/servicegraph/servicegraph-operator/test/bench/graphgen"
)

// compileResult is testing.Benchmark's figure for compiling one graph size.
type compileResult struct {
	Services, Edges int
	NsPerOp         int64
	BytesPerOp      int64
	AllocsPerOp     int64
}

// benchCompile times compiler.Compile with testing.Benchmark (the loop of go test -bench, about a
// second per round) on the generated graphs, the shape of internal/compiler's BenchmarkCompile:
// about ten edges per service, a third of them with an HTTP path. The fastest of the rounds is
// kept: the one least disturbed by other work on a shared machine.
func benchCompile(sizes []int, rounds int, seed uint64) ([]compileResult, error) {
	var out []compileResult
	for _, n := range sizes {
		sg := graphgen.Graph("bench", "bench", n, seed)
		if _, err := compile(sg); err != nil {
			return nil, fmt.Errorf("compiling %d services: %w", n, err)
		}
		best := compileResult{Services: n, Edges: len(sg.Spec.Edges)}
		for range max(rounds, 1) {
			r := testing.Benchmark(func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					_, _ = compile(sg)
				}
			})
			if r.N == 0 {
				return nil, fmt.Errorf("the compile benchmark of %d services did not run", n)
			}
			if best.NsPerOp == 0 || r.NsPerOp() < best.NsPerOp {
				best.NsPerOp, best.BytesPerOp, best.AllocsPerOp = r.NsPerOp(), r.AllocedBytesPerOp(), r.AllocsPerOp()
			}
		}
		out = append(out, best)
	}
	return out, nil
}
