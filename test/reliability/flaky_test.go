package reliability

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
)

// readyWatch records how a graph's Ready condition moves, from a watch on the graph.
type readyWatch struct {
	mu sync.Mutex
	// transitions lists each change of Ready's status, with its reason: "Unknown/Reconciling".
	transitions []string
	// retrying is set once the status reported a transient error (Reconciling, ApplyFailed).
	retrying bool
}

func watchReady(ns, name string) *readyWatch {
	GinkgoHelper()
	w, err := k8s.Watch(ctx, &v1alpha1.ServiceGraphList{}, client.InNamespace(ns))
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(w.Stop)
	rw := &readyWatch{}
	go func() {
		last := metav1.ConditionStatus("")
		for ev := range w.ResultChan() {
			sg, ok := ev.Object.(*v1alpha1.ServiceGraph)
			if !ok || sg.Name != name {
				continue
			}
			ready := condition(sg, v1alpha1.ConditionReady)
			rw.mu.Lock()
			if ready.Status != last && ready.Status != "" {
				rw.transitions = append(rw.transitions, string(ready.Status)+"/"+ready.Reason)
				last = ready.Status
			}
			if condition(sg, v1alpha1.ConditionReconciling).Reason == v1alpha1.ReasonApplyFailed {
				rw.retrying = true
			}
			rw.mu.Unlock()
		}
	}()
	return rw
}

// seen returns Ready's transitions so far, and whether a transient error was reported.
func (rw *readyWatch) seen() ([]string, bool) {
	rw.mu.Lock()
	defer rw.mu.Unlock()
	return append([]string(nil), rw.transitions...), rw.retrying
}

// sinceFirstTrue returns the transitions from the first Ready=True on.
func sinceFirstTrue(transitions []string) []string {
	for i, t := range transitions {
		if strings.HasPrefix(t, string(metav1.ConditionTrue)+"/") {
			return transitions[i:]
		}
	}
	return nil
}

var _ = Describe("A flaky API server", func() {
	It("converges through 20% injected failures without crashing, hot-looping or flapping Ready", func() {
		ns := newNamespace("flaky")
		cleanupGraphs(ns)
		rng := rand.New(rand.NewPCG(20, 20))
		// Faults start once the manager is built: building it reads the API's discovery document
		// once, and a failure there ends the process before it runs (Kubernetes restarts it).
		proxy := newFaultProxy(cfg, 20, 0, 20*time.Millisecond)
		before := reconciles()
		mgr := startManager(managerOptions{config: proxy.config(), namespaces: []string{ns}})
		proxy.setRate(0.20)
		ready := watchReady(ns, "shop")

		// The seed graph (10 objects). A larger one converges too, but more slowly than the budget
		// allows: a reconcile that fails part-way doubles the graph's backoff even when it made
		// progress, so the time to converge grows with the number of requests a rollout needs.
		sg := seedGraph(ns)
		start := time.Now()
		Expect(k8s.Create(ctx, sg)).To(Succeed())
		waitExactly(sg, 2*time.Minute)
		converged := time.Since(start)
		afterConverge := reconciles()

		// Steady state under faults: the graph is Ready; drift (deleting a generated object) makes
		// the manager work through the faults again. Ready must stay True all along: the policies
		// in force are still the right ones while a retry is pending.
		const drifts = 8
		for range drifts {
			objs := generated(Default, ns)
			victim := objs[refs(objs)[rng.IntN(len(objs))]]
			Expect(k8s.Delete(ctx, victim)).To(Succeed())
			waitExactly(sg, time.Minute)
			mgr.running()
		}
		// Then a quiet period: once the echoes of the manager's own writes have passed, a manager
		// with nothing to do writes nothing and reconciles at most twice more: a retry of an earlier
		// failure may still be waiting in the work queue (it keeps one per graph), and so may a
		// second look after a status write that found the cached graph stale; both find nothing to
		// do. A hot loop never settles, and a retry loop without backoff would not stay quiet for 3 s.
		settled := reconciles()
		Eventually(func() bool {
			now := reconciles()
			quiet := total(now) == total(settled)
			settled = now
			return quiet
		}, 20*time.Second, time.Second).Should(BeTrue(), "the manager never settled")
		quietWrites := proxy.writes.Load()
		Consistently(func(g Gomega) {
			now := reconciles()
			g.Expect(total(now)-total(settled)).To(BeNumerically("<=", 2), "reconciles while nothing changed")
			g.Expect(now["error"]).To(Equal(settled["error"]), "failed reconciles while nothing changed")
			g.Expect(proxy.writes.Load()).To(Equal(quietWrites), "writes while nothing changed")
		}, 3*time.Second, 200*time.Millisecond).Should(Succeed())
		mgr.running()

		after := reconciles()
		transitions, retrying := ready.seen()
		runs := total(after) - total(before)
		errs := after["error"] - before["error"]
		faults := proxy.count("")
		AddReportEntry("flaky: 20% faults", fmt.Sprintf(
			"converged in %v; %d requests through the proxy (%d writes passed on), %d faults injected (500: %d, 429: %d, 409: %d, reset: %d); %.0f reconciles (%.0f to converge, %.0f failed) for 1 create and %d drifts; Ready: %v",
			converged.Round(time.Millisecond), proxy.requests.Load(), proxy.writes.Load(), faults, proxy.count(faultInternal), proxy.count(faultThrottle),
			proxy.count(faultConflict), proxy.count(faultReset), runs, total(afterConverge)-total(before), errs, drifts, transitions))

		// Ready never went back after it first became True, and the status did report errors.
		Expect(sinceFirstTrue(transitions)).To(HaveLen(1), "Ready flapped: %v", transitions)
		Expect(retrying).To(BeTrue(), "no status ever reported a transient error (Reconciling, ApplyFailed)")
		// No hot loop. The API server itself never fails here, so every failed reconcile consumed at
		// least one injected fault. And every reconcile has a cause that put the graph in the work
		// queue: its creation, a drift, the watch event of one of the manager's own writes, or the
		// retry of a failed reconcile; the queue merges causes, so their sum is an upper bound.
		Expect(errs).To(BeNumerically("<=", faults), "failed reconciles without a fault to cause them")
		Expect(runs).To(BeNumerically("<=", 1+drifts+float64(proxy.writes.Load())+errs), "reconciles without a cause")
	})
})
