package dataplane_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/servicegraph/servicegraph-operator/internal/cli"
	"github.com/servicegraph/servicegraph-operator/test/dataplane"
	"github.com/servicegraph/servicegraph-operator/test/testenv"
)

// The suite runs inside a node network namespace of its own: TestMain sets the namespaces up,
// runs the test binary again in there, and tears everything down when it ends. It needs root and
// a kernel that can queue packets to user space from nftables; without them it fails, saying which.
func TestMain(m *testing.M) {
	if dataplane.InNode() == nil {
		code, err := dataplane.RunInNode()
		if err != nil {
			fmt.Fprintln(os.Stderr, "dataplane:", err)
			os.Exit(1)
		}
		os.Exit(code)
	}
	os.Exit(m.Run())
}

func TestDataplane(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Dataplane Suite")
}

var (
	ctx     = context.Background()
	cluster *dataplane.Cluster
	bins    dataplane.Binaries
	kernel  dataplane.Kernel
	// prober and canary tell a live enforcer from a dead one.
	prober, canary *dataplane.Pod
	// system are kube-dns and istiod, shared by every spec.
	system []*dataplane.Pod
)

var _ = BeforeSuite(func() {
	var err error
	bins, err = dataplane.FindBinaries()
	Expect(err).NotTo(HaveOccurred())
	kernel, err = dataplane.ProbeKernel(bins.Probe)
	Expect(err).NotTo(HaveOccurred())
	fmt.Fprintln(GinkgoWriter, kernel.Describe())
	manager, err := testenv.BuildManager(GinkgoT().TempDir())
	Expect(err).NotTo(HaveOccurred())
	cluster, err = dataplane.StartCluster(dataplane.InNode(), manager, GinkgoWriter)
	Expect(err).NotTo(HaveOccurred())
	prober, canary, err = cluster.Canary(ctx)
	Expect(err).NotTo(HaveOccurred())
	system = dataplane.SystemPods()
	Expect(cluster.AddPods(ctx, system...)).To(Succeed())
	startEnforcer(bins.Enforcer)
})

var _ = AfterSuite(func() {
	if cluster != nil {
		Expect(cluster.Stop()).To(Succeed())
	}
})

// startEnforcer runs an enforcer build and waits until it refuses the canary's forbidden
// connection.
func startEnforcer(binary string) {
	GinkgoHelper()
	_, err := cluster.StartEnforcer(ctx, binary, 0, nil)
	Expect(err).NotTo(HaveOccurred())
	Expect(cluster.WaitEnforcing(prober, canary, 20*time.Second)).To(Succeed())
}

// enforcerSettle bounds how long a probe's verdict may lag the policies the cluster holds.
const enforcerSettle = 10 * time.Second

// expectVerdicts runs the probes and fails listing every one whose verdict is not the wanted one.
func expectVerdicts(probes []dataplane.Probe) []dataplane.Result {
	GinkgoHelper()
	results := dataplane.Run(probes)
	// The enforcer applies a graph's policies a moment after the graph reports Ready (its watch, then
	// nftables; ~0.1 s, seconds on a loaded machine): a probe with the wrong verdict is tried again
	// until enforcerSettle has passed, and only a verdict still wrong then fails.
	for start := time.Now(); len(dataplane.Mismatches(results)) > 0 && time.Since(start) < enforcerSettle; time.Sleep(200 * time.Millisecond) {
		var again []int
		var probes []dataplane.Probe
		for i, r := range results {
			if r.Connected != r.Want {
				again, probes = append(again, i), append(probes, r.Probe)
			}
		}
		for j, r := range dataplane.Run(probes) {
			results[again[j]] = r
		}
	}
	connected, refused := dataplane.Count(results)
	fmt.Fprintf(GinkgoWriter, "%d probes: %d connected, %d refused\n", len(results), connected, refused)
	Expect(dataplane.Mismatches(results)).To(BeEmpty())
	return results
}

// expectCheckAgrees asks `servicegraph check`'s evaluator, on what the cluster holds in the
// probes' namespaces, about every probe, and fails on any probe where its NetworkPolicy layers
// (the source's egress and the destination's ingress) and the packets disagree.
func expectCheckAgrees(results []dataplane.Result) {
	GinkgoHelper()
	var namespaces []string
	for _, r := range results {
		namespaces = append(namespaces, r.From.Namespace, r.To.Namespace)
	}
	slices.Sort(namespaces)
	w, err := cli.ReadWorld(ctx, cluster.Client, slices.Compact(namespaces))
	Expect(err).NotTo(HaveOccurred())
	var disagree []string
	for _, r := range results {
		v, err := w.Check(r.From.Key(), r.To.Key(), r.Port.Number, r.Port.Protocol)
		Expect(err).NotTo(HaveOccurred(), r.Probe.String())
		if l4 := v.Steps[0].Allowed && v.Steps[1].Allowed; l4 != r.Connected {
			disagree = append(disagree, fmt.Sprintf("%s: dataplane %v, check %v (%s; %s)", r.Probe, r.Connected, l4, v.Steps[0].By, v.Steps[1].By))
		}
	}
	fmt.Fprintf(GinkgoWriter, "servicegraph check agrees with the dataplane on %d of %d probes\n", len(results)-len(disagree), len(results))
	Expect(disagree).To(BeEmpty())
}
