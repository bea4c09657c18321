package main

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/render"
	"github.com/servicegraph/servicegraph-operator/test/bench/graphgen"
	"github.com/servicegraph/servicegraph-operator/test/testenv"
)

// coldResult compares the operator converging a new graph with kubectl applying the same objects.
type coldResult struct {
	Services, Edges, Objects int
	// Operator is from creating the graph to Ready=True with every object present.
	Operator time.Duration
	// Requests are the manager's requests, by verb, until it settled again.
	Requests requestCounts
	// Kubectl is the run of `kubectl apply --server-side -f` on the compiled objects.
	Kubectl time.Duration
	// OperatorCPU and KubectlCPU are the CPU each side's run took, by process.
	OperatorCPU, KubectlCPU cpuUse
	// Profile is kube-apiserver's CPU profile during the operator's run (largest graph only).
	Profile string
}

// Ratio is operator time over kubectl time.
func (c coldResult) Ratio() float64 { return c.Operator.Seconds() / c.Kubectl.Seconds() }

// coldSeries are the runs of one graph size. The machine is shared, so one run can be unlucky;
// each run pairs the operator with kubectl moments apart, and the median pair is reported.
type coldSeries []coldResult

// median is the run with the median ratio.
func (s coldSeries) median() coldResult {
	sorted := slices.SortedFunc(slices.Values(s), func(a, b coldResult) int { return cmp.Compare(a.Ratio(), b.Ratio()) })
	return sorted[len(sorted)/2]
}

// spread is the range of a figure over the runs.
func (s coldSeries) spread(figure func(coldResult) float64) (lo, hi float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, c := range s {
		lo, hi = min(lo, figure(c)), max(hi, figure(c))
	}
	return lo, hi
}

// profile is the kube-apiserver profile taken in one of the runs, if any.
func (s coldSeries) profile() string {
	for _, c := range s {
		if c.Profile != "" {
			return c.Profile
		}
	}
	return ""
}

// cold creates an n-service graph in an empty namespace and waits for the operator, then applies
// the same compiled objects with kubectl into another empty namespace; run numbers the
// namespaces. With profile set, kube-apiserver is profiled while the operator converges. It
// returns the graph, live.
func (e *env) cold(ctx context.Context, n, run int, profile bool) (coldResult, *v1alpha1.ServiceGraph, error) {
	sg := graphgen.Graph("bench", fmt.Sprintf("operator-%d-%d", n, run), n, e.cfg.Seed)
	res := coldResult{Services: n, Edges: len(sg.Spec.Edges)}
	want, err := testenv.Compiled(sg)
	if err != nil {
		return res, nil, err
	}
	res.Objects = len(want)
	e.progress("cold convergence of %d services (%d objects), run %d: operator", n, res.Objects, run+1)
	if err := e.createNamespace(ctx, sg.Namespace); err != nil {
		return res, nil, err
	}
	var profiled func() (string, error)
	if profile {
		profiled = e.profileAPIServer(ctx, e.cfg.Profile)
	}
	if err := e.operatorCold(ctx, sg, want, &res); err != nil {
		return res, nil, err
	}
	if profiled != nil {
		if res.Profile, err = topOf(ctx, profiled); err != nil {
			return res, nil, err
		}
	}
	e.progress("cold convergence of %d services, run %d: kubectl apply --server-side", n, run+1)
	err = e.kubectlCold(ctx, sg, fmt.Sprintf("kubectl-%d-%d", n, run), &res)
	return res, sg, err
}

// topOf waits for a profile and renders its top entries.
func topOf(ctx context.Context, profiled func() (string, error)) (string, error) {
	file, err := profiled()
	if err != nil {
		return "", err
	}
	return pprofTop(ctx, file, 25)
}

func (e *env) operatorCold(ctx context.Context, sg *v1alpha1.ServiceGraph, want objects, res *coldResult) error {
	before, err := e.scrape(ctx)
	if err != nil {
		return err
	}
	cpu, start := cpuNow(), time.Now()
	if err := e.createAndWait(ctx, sg, want); err != nil {
		return err
	}
	res.Operator, res.OperatorCPU = time.Since(start), cpuNow().since(cpu)
	res.Requests, err = e.requestsAfterSettling(ctx, before)
	return err
}

// createAndWait creates a graph and waits until it is Ready with every wanted object present.
func (e *env) createAndWait(ctx context.Context, sg *v1alpha1.ServiceGraph, want objects) error {
	if err := e.k8s.Create(ctx, sg); err != nil {
		return err
	}
	if err := e.waitReady(ctx, client.ObjectKeyFromObject(sg), sg.Generation); err != nil {
		return err
	}
	return e.waitObjects(ctx, sg.Namespace, want)
}

// requestsAfterSettling waits for the manager to settle and returns its requests since before.
func (e *env) requestsAfterSettling(ctx context.Context, before snapshot) (requestCounts, error) {
	after, err := e.settled(ctx)
	if err != nil {
		return nil, err
	}
	return after.requests().since(before.requests()), nil
}

// kubectlCold renders the graph's compiled objects for namespace ns, as a user without the
// operator would keep them, and times kubectl applying them. The objects are deleted afterwards:
// they carry the operator's label, so the manager's cache holds them too.
func (e *env) kubectlCold(ctx context.Context, sg *v1alpha1.ServiceGraph, ns string, res *coldResult) error {
	moved := sg.DeepCopy()
	moved.Namespace = ns
	compiled, err := compile(moved)
	if err != nil {
		return err
	}
	manifest, err := render.YAML(compiled.Objects())
	if err != nil {
		return err
	}
	file := filepath.Join(e.dir, ns+".yaml")
	if err := os.WriteFile(file, manifest, 0o600); err != nil {
		return err
	}
	if err := e.createNamespace(ctx, ns); err != nil {
		return err
	}
	cpu, start := cpuNow(), time.Now()
	if _, err := e.cluster.Kubectl(ctx, "apply", "--server-side", "-f", file); err != nil {
		return err
	}
	res.Kubectl, res.KubectlCPU = time.Since(start), cpuNow().since(cpu)
	want, err := testenv.Compiled(moved)
	if err == nil {
		err = e.waitObjects(ctx, ns, want)
	}
	if err == nil {
		err = e.discard(ctx, ns)
	}
	return err
}

// discard deletes what a measurement left in a namespace and waits for the manager to settle.
func (e *env) discard(ctx context.Context, ns string) error {
	if err := e.deleteGenerated(ctx, ns); err != nil {
		return err
	}
	return e.settle(ctx)
}
