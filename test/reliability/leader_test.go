package reliability

import (
	"fmt"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	coordinationv1 "k8s.io/api/coordination/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// Leader election timing for the scenario, passed with the flags this issue added to the manager
// (the defaults are client-go's 15 s / 10 s / 2 s, which would make the scenario 10 s longer): a
// follower takes over a lease duration after the leader's last renewal, give or take retry periods.
const (
	leaseDuration = 4 * time.Second
	renewDeadline = 3 * time.Second
	retryPeriod   = 500 * time.Millisecond
	leaseName     = "servicegraph-operator.policy.servicegraph.io"
	// What client-go's leader election logs (through the manager's logger) once it leads.
	acquiredLease = `"msg":"Successfully acquired lease","lock":"default/` + leaseName
)

var _ = Describe("Leader election", func() {
	It("lets only the leader write, and a follower takes over within the lease duration when the leader dies", func() {
		ns := newNamespace("leader")
		cleanupGraphs(ns)
		// Each replica runs under its own identity, so the API server's audit log tells who wrote.
		args := func(user string) []string {
			kubeconfig, err := cluster.KubeconfigFor(envtest.User{Name: user, Groups: []string{"system:masters"}})
			Expect(err).NotTo(HaveOccurred())
			return []string{"--kubeconfig=" + kubeconfig, "--leader-elect", "--leader-election-namespace=default",
				"--leader-election-lease-duration=" + leaseDuration.String(),
				"--leader-election-renew-deadline=" + renewDeadline.String(),
				"--leader-election-retry-period=" + retryPeriod.String()}
		}
		logA, logB := newProcessLog(), newProcessLog()
		a := startProcess(logA, args("manager-a")...)
		Eventually(logA.String, timeout, poll).Should(ContainSubstring(acquiredLease))
		b := startProcess(logB, args("manager-b")...)
		waitHealthy(b.ProbePort)
		Eventually(logB.String, timeout, poll).Should(ContainSubstring(`"msg":"Attempting to acquire leader lease..."`))

		sg := seedGraph(ns)
		Expect(k8s.Create(ctx, sg)).To(Succeed())
		waitExactly(sg, timeout)
		Expect(logB.String()).NotTo(ContainSubstring(acquiredLease))
		Expect(writesIn(auditWrites("manager-a"), ns)).NotTo(BeEmpty(), "the leader applied the graph")
		Expect(auditWrites("manager-b")).To(BeEmpty(), "the follower must write nothing, not even the lease")

		// The leader dies without releasing its lease; a change made meanwhile waits for the follower.
		var lease coordinationv1.Lease
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: "default", Name: leaseName}, &lease)).To(Succeed())
		lastRenewal := lease.Spec.RenewTime.Time
		a.Kill()
		killed := time.Now()
		sg.Spec.Edges = append(sg.Spec.Edges, "web->database:5432")
		sg = updateSpec(sg, sg.Spec)
		Eventually(logB.String, 2*leaseDuration+timeout, 50*time.Millisecond).Should(ContainSubstring(acquiredLease))
		tookOver := time.Since(killed)
		waitExactly(sg, timeout)
		converged := time.Since(killed)

		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: "default", Name: leaseName}, &lease)).To(Succeed())
		gap := lease.Spec.AcquireTime.Sub(lastRenewal)
		AddReportEntry("leader election", fmt.Sprintf("lease %v: follower took over %v after the kill (%v after the leader's last renewal), converged the change %v after the kill",
			leaseDuration, tookOver.Round(time.Millisecond), gap.Round(time.Millisecond), converged.Round(time.Millisecond)))
		// The follower sees the last renewal within a retry period, counts the lease duration from
		// then, and tries again every retry period; the leader may have renewed once more after the
		// lease was read. Hence lease + 3 retry periods, plus a second for a busy machine.
		Expect(gap).To(BeNumerically("<=", leaseDuration+3*retryPeriod+time.Second), "takeover within the lease duration")
		Expect(gap).To(BeNumerically(">=", leaseDuration-time.Second), "the follower must wait for the lease to expire")

		// The new leader did the work; the old one wrote nothing after it died.
		Expect(writesIn(auditWrites("manager-b"), ns)).NotTo(BeEmpty())
		for _, ev := range auditWrites("manager-a") {
			Expect(ev.StageTimestamp).To(BeTemporally("<", killed), "a write by the dead leader")
		}
		Expect(b.Exited()).To(BeFalse(), "the new leader must still run:\n%s", logB)
	})
})

// writesIn keeps the audited writes to objects of a namespace, described as "verb resource/name".
func writesIn(events []auditEvent, ns string) []string {
	var out []string
	for _, ev := range events {
		if ev.ObjectRef != nil && ev.ObjectRef.Namespace == ns {
			out = append(out, strings.TrimSuffix(ev.Verb+" "+ev.ObjectRef.Resource+"/"+ev.ObjectRef.Subresource, "/")+" "+ev.ObjectRef.Name)
		}
	}
	return out
}
