package dataplane_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/servicegraph/servicegraph-operator/test/dataplane"
)

// deploySeed creates the seed scenario's pods in a namespace of the spec's own, and removes them
// when the spec ends.
func deploySeed(namespace string) (*dataplane.Seed, []*dataplane.Pod) {
	GinkgoHelper()
	seed := dataplane.NewSeed(namespace)
	Expect(cluster.AddPods(ctx, seed.Pods()...)).To(Succeed())
	DeferCleanup(func() { Expect(cluster.RemovePods(ctx, seed.Pods()...)).To(Succeed()) })
	return seed, append(seed.Pods(), system[0]) // the matrix includes kube-dns
}

// applySeed applies the seed graph with kubectl and waits for Ready with kubectl, as a user would.
func applySeed(seed *dataplane.Seed) {
	GinkgoHelper()
	file := filepath.Join(GinkgoT().TempDir(), "shop.yaml")
	Expect(os.WriteFile(file, []byte(seed.Graph()), 0o600)).To(Succeed())
	kubectl("apply", "-f", file)
	kubectl("wait", "--for=condition=Ready", "servicegraph/shop", "-n", seed.Namespace, "--timeout=60s")
}

func kubectl(args ...string) string {
	GinkgoHelper()
	out, err := cluster.Kubectl(ctx, args...)
	Expect(err).NotTo(HaveOccurred())
	return out
}

var _ = Describe("The seed scenario on real packets", func() {
	It("connects everything before the graph, then exactly the edges and DNS", func() {
		seed, pods := deploySeed("shop")
		before := expectVerdicts(dataplane.MatrixProbes(pods, func(_, _ *dataplane.Pod, _ dataplane.Port) bool { return true }))

		applySeed(seed)
		oracle := dataplane.NewOracle(seed.World(true))
		after := expectVerdicts(dataplane.MatrixProbes(pods, oracle.Allows))
		expectCheckAgrees(after)

		// The cases, spelled out, so a change to the oracle cannot hide them.
		named := map[string]bool{}
		for _, r := range after {
			named[fmt.Sprintf("%s->%s:%d/%s", r.From.Name, r.To.Name, r.Port.Number, r.Port.Protocol)] = r.Connected
		}
		for probe, want := range map[string]bool{
			"web->api:8080/TCP": true, "api->database:5432/TCP": true,
			"web->database:5432/TCP": false, "api->web:8080/TCP": false, "database->api:8080/TCP": false,
			"web->api:5432/TCP": false, "api->database:8080/TCP": false,
			"intruder->web:8080/TCP": false, "intruder->api:8080/TCP": false, "intruder->database:5432/TCP": false,
			"web->intruder:8080/TCP": false, "database->intruder:8080/TCP": false,
			"web->kube-dns:53/UDP": true, "web->kube-dns:53/TCP": true, "api->kube-dns:53/UDP": true,
			"api->kube-dns:53/TCP": true, "database->kube-dns:53/UDP": true, "database->kube-dns:53/TCP": true,
		} {
			Expect(named).To(HaveKeyWithValue(probe, want), probe)
		}
		matrix, err := cluster.Matrix(ctx, after)
		Expect(err).NotTo(HaveOccurred())
		fmt.Fprintf(GinkgoWriter, "before the graph: %d probes, all connected\nafter:\n%s", len(before), matrix)
	})
})

func portIndex(p *dataplane.Pod, number int32) int {
	for i, port := range p.Ports {
		if port.Number == number {
			return i
		}
	}
	return -1
}

var _ = Describe("The enforcer as released", func() {
	It("enforces nothing on a kernel without NFT_QUEUE, which the harness detects; the adapted build enforces", func() {
		seed, pods := deploySeed("released")
		applySeed(seed)
		forbidden := dataplane.Probe{From: seed.Web, To: seed.Database, Port: seed.Database.Ports[portIndex(seed.Database, 5432)]}
		Expect(dataplane.Run([]dataplane.Probe{forbidden})[0].Connected).To(BeFalse(), "the adapted build refuses %s", forbidden)

		DeferCleanup(startEnforcer, bins.Enforcer)
		e, err := cluster.StartEnforcer(ctx, bins.Upstream, 0, nil)
		Expect(err).NotTo(HaveOccurred())
		err = cluster.WaitEnforcing(prober, canary, 6*time.Second)
		if kernel.NativeQueue {
			Expect(err).NotTo(HaveOccurred(), "with NFT_QUEUE the release enforces")
			expectVerdicts(dataplane.MatrixProbes(pods, dataplane.NewOracle(seed.World(true)).Allows))
			return
		}
		Expect(err).To(MatchError(ContainSubstring("a dead enforcer")), "without NFT_QUEUE the release must fail open, and the harness must say so")
		Expect(dataplane.Run([]dataplane.Probe{forbidden})[0].Connected).To(BeTrue(), "the release lets %s through", forbidden)
		Expect(strings.Contains(e.Log(), "no such file or directory")).To(BeTrue(), "the release logs the refused queue rule:\n%s", e.Log())
	})
})
