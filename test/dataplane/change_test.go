package dataplane_test

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/test/dataplane"
	"github.com/servicegraph/servicegraph-operator/test/testenv"
)

// patchSeed merge-patches the seed graph with kubectl and waits until it is Ready at its new
// generation (or, with want "", until its status describes that generation).
func patchSeed(seed *dataplane.Seed, patch, reason string) *v1alpha1.ServiceGraph {
	GinkgoHelper()
	kubectl("patch", "servicegraph/shop", "-n", seed.Namespace, "--type=merge", "-p", patch)
	return waitSeed(seed, reason)
}

// waitSeed waits until the seed graph's Ready condition has the reason at its current generation.
func waitSeed(seed *dataplane.Seed, reason string) *v1alpha1.ServiceGraph {
	GinkgoHelper()
	var sg v1alpha1.ServiceGraph
	Eventually(func() string {
		Expect(cluster.Client.Get(ctx, client.ObjectKey{Namespace: seed.Namespace, Name: "shop"}, &sg)).To(Succeed())
		ready := testenv.Condition(&sg, v1alpha1.ConditionReady)
		if sg.Status.ObservedGeneration != sg.Generation || ready.ObservedGeneration != sg.Generation {
			return "stale"
		}
		return ready.Reason
	}, 60*time.Second, 50*time.Millisecond).Should(Equal(reason))
	return &sg
}

func probeOf(from, to *dataplane.Pod, port int32) dataplane.Probe {
	return dataplane.Probe{From: from, To: to, Port: to.Ports[portIndex(to, port)]}
}

var _ = Describe("Changes and drift on real packets", func() {
	It("refuses a removed edge and connects it again, restores default-deny, audits, enforces, and ignores an invalid spec", func() {
		seed, pods := deploySeed("changes")
		applySeed(seed)
		full, cut := dataplane.NewOracle(seed.World(true)), dataplane.NewOracle(seed.World(false))
		edge := probeOf(seed.API, seed.Database, 5432)

		By("removing the edge api→database")
		patchSeed(seed, `{"spec":{"edges":["web→api:8080"]}}`, v1alpha1.ReasonReconciled)
		expectVerdicts(dataplane.MatrixProbes(pods, cut.Allows))

		By("adding it back")
		patchSeed(seed, `{"spec":{"edges":["web→api:8080","api→database:5432/data"]}}`, v1alpha1.ReasonReconciled)
		expectVerdicts(dataplane.MatrixProbes(pods, full.Allows))

		By("deleting default-deny by hand while the operator is paused, then letting it restore it")
		// web is called by nobody, so only default-deny closes its ingress (every pod's egress is
		// closed by the allow-dns and allow-istiod policies too).
		escape := probeOf(seed.Intruder, seed.Web, 8080)
		Expect(cluster.PauseOperator()).To(Succeed())
		DeferCleanup(cluster.ResumeOperator)
		var deny networkingv1.NetworkPolicy
		key := client.ObjectKey{Namespace: seed.Namespace, Name: "shop-default-deny"}
		Expect(cluster.Client.Get(ctx, key, &deny)).To(Succeed())
		Expect(cluster.Client.Delete(ctx, &deny)).To(Succeed())
		Eventually(func() bool { return dataplane.Run([]dataplane.Probe{escape})[0].Connected }, 10*time.Second, 100*time.Millisecond).
			Should(BeTrue(), "without default-deny %s connects", escape)
		Expect(cluster.ResumeOperator()).To(Succeed())
		var restored networkingv1.NetworkPolicy
		Eventually(func() error { return cluster.Client.Get(ctx, key, &restored) }, 30*time.Second, 50*time.Millisecond).Should(Succeed())
		Expect(restored.UID).NotTo(Equal(deny.UID))
		Eventually(func() bool { return dataplane.Run([]dataplane.Probe{escape})[0].Connected }, 10*time.Second, 100*time.Millisecond).
			Should(BeFalse(), "restored default-deny refuses %s again", escape)
		expectVerdicts(dataplane.MatrixProbes(pods, full.Allows))

		By("switching to Audit: nothing is refused")
		patchSeed(seed, `{"spec":{"enforcement":"Audit"}}`, v1alpha1.ReasonReconciled)
		expectVerdicts(dataplane.MatrixProbes(pods, func(_, _ *dataplane.Pod, _ dataplane.Port) bool { return true }))

		By("switching back to Enforce")
		patchSeed(seed, `{"spec":{"enforcement":"Enforce"}}`, v1alpha1.ReasonReconciled)
		expectVerdicts(dataplane.MatrixProbes(pods, full.Allows))

		By("an invalid spec changes no verdict")
		patchSeed(seed, `{"spec":{"edges":["web→api:8080","api→database:5432/data","api→ghost:80"]}}`, v1alpha1.ReasonInvalidSpec)
		expectVerdicts(dataplane.MatrixProbes(pods, full.Allows))
		Expect(dataplane.Run([]dataplane.Probe{edge})[0].Connected).To(BeTrue())
	})
})

// timingChanges is how many edge removals and additions the time-to-enforcement spec makes; make
// bench asks for more through SERVICEGRAPH_DATAPLANE_CHANGES, and for the figures in a file
// through SERVICEGRAPH_DATAPLANE_REPORT.
func timingChanges() int {
	if n, err := strconv.Atoi(os.Getenv("SERVICEGRAPH_DATAPLANE_CHANGES")); err == nil && n > 0 {
		return n
	}
	return 4
}

var _ = Describe("Time to enforcement", func() {
	It("is measured from kubectl patch to the first new connection with the new verdict", func() {
		seed, _ := deploySeed("timing")
		applySeed(seed)
		edge := probeOf(seed.API, seed.Database, 5432)
		var removed, added []time.Duration
		for i := range timingChanges() {
			patch, want := `{"spec":{"edges":["web→api:8080"]}}`, false
			if i%2 == 1 {
				patch, want = `{"spec":{"edges":["web→api:8080","api→database:5432/data"]}}`, true
			}
			edge.Want = want
			took, err := dataplane.TimeToVerdict(edge, func() error {
				_, err := cluster.Kubectl(ctx, "patch", "servicegraph/shop", "-n", seed.Namespace, "--type=merge", "-p", patch)
				return err
			}, 30*time.Second)
			Expect(err).NotTo(HaveOccurred())
			if want {
				added = append(added, took)
			} else {
				removed = append(removed, took)
			}
			waitSeed(seed, v1alpha1.ReasonReconciled)
		}
		report := fmt.Sprintf(`{"added":%s,"removed":%s}`, millis(added), millis(removed))
		fmt.Fprintf(GinkgoWriter, "time to enforcement (ms): %s\n", report)
		if path := os.Getenv("SERVICEGRAPH_DATAPLANE_REPORT"); path != "" {
			Expect(os.WriteFile(path, []byte(report+"\n"), 0o644)).To(Succeed())
		}
	})
})

func millis(ds []time.Duration) string {
	out := make([]string, len(ds))
	for i, d := range slices.Sorted(slices.Values(ds)) {
		out[i] = strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', 1, 64)
	}
	return "[" + strings.Join(out, ",") + "]"
}
