package reliability

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/test/testenv"
)

// Sizes of the crash scenario: the 500 services and 10 rounds. After the first round, which
// creates all 1,005 objects, a round changes a tenth of the graph (about 220 writes) rather than all
// of it: a full rewrite takes 6-8 s on 2 cores, which ten times over would not fit the package's
// budget, and a crash lands in the middle of a partial rollout just as well.
const (
	crashServices = 500
	crashEdgesPer = 4 // each service calls the next 4: 2,000 edges, 1,005 generated objects
	crashRounds   = 10
	crashSeed     = 8
)

// policyWatch watches a namespace's generated policies from before the graph exists. It counts
// every change (the progress that decides when to crash the manager) and remembers whether the
// graph's default-deny policy was ever deleted after it first appeared.
type policyWatch struct {
	deny    string
	changes atomic.Int64
	mu      sync.Mutex
	created bool
	broken  []string // deletions of default-deny and watch failures
	open    atomic.Int32
}

func watchPolicies(ns, graph string) *policyWatch {
	GinkgoHelper()
	pw := &policyWatch{deny: graph + "-default-deny"}
	for _, list := range []client.ObjectList{&networkingv1.NetworkPolicyList{}, &securityv1.AuthorizationPolicyList{}} {
		w, err := k8s.Watch(ctx, list, client.InNamespace(ns))
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(w.Stop)
		pw.open.Add(1)
		go pw.consume(w)
	}
	return pw
}

func (pw *policyWatch) consume(w watch.Interface) {
	defer pw.open.Add(-1)
	for ev := range w.ResultChan() {
		pw.changes.Add(1)
		np, ok := ev.Object.(*networkingv1.NetworkPolicy)
		pw.mu.Lock()
		switch {
		case ev.Type == watch.Error:
			pw.broken = append(pw.broken, fmt.Sprintf("watch error: %v", ev.Object))
		case !ok || np.Name != pw.deny:
		case ev.Type == watch.Added:
			pw.created = true
		case ev.Type == watch.Deleted:
			pw.broken = append(pw.broken, "DELETED at resourceVersion "+np.ResourceVersion)
		}
		pw.mu.Unlock()
	}
}

// check asserts that default-deny was created and never deleted, with both watches open all along
// (a closed watch could have missed a deletion).
func (pw *policyWatch) check() {
	GinkgoHelper()
	pw.mu.Lock()
	defer pw.mu.Unlock()
	Expect(pw.created).To(BeTrue(), "%s was never created", pw.deny)
	Expect(pw.broken).To(BeEmpty(), "%s must be present throughout", pw.deny)
	Expect(pw.open.Load()).To(BeEquivalentTo(2), "a watch closed early, so it proves nothing")
}

// writesBetween counts the object writes that turn the compiled set from into the compiled set
// to: creates, in-place updates and prunes.
func writesBetween(from, to map[v1alpha1.ObjectReference]client.Object) int {
	n := 0
	for r, obj := range to {
		if old, ok := from[r]; !ok || !equality.Semantic.DeepEqual(specOf(old), specOf(obj)) {
			n++
		}
	}
	for r := range from {
		if _, ok := to[r]; !ok {
			n++
		}
	}
	return n
}

var _ = Describe("Crash at any point", func() {
	It("converges to exactly the compiled set after SIGKILLs at random moments, default-deny present throughout", func() {
		ns := newNamespace("crash")
		cleanupGraphs(ns)
		rng := rand.New(rand.NewPCG(crashSeed, crashSeed))
		policies := watchPolicies(ns, "big")

		// Round 0 creates the graph; each later round drops another twentieth of the services (their
		// objects are pruned, the last round's come back) and moves the ports of another twentieth
		// (their objects and their callees' are updated in place).
		variant := func(round int) *v1alpha1.ServiceGraph {
			if round == 0 {
				return ringGraph(ns, "big", crashServices, crashEdgesPer, -1, -1)
			}
			return ringGraph(ns, "big", crashServices, crashEdgesPer, round%20, (round+10)%20)
		}
		log := newProcessLog()
		var p *testenv.ManagerProcess
		var before map[v1alpha1.ObjectReference]client.Object
		interrupted := 0
		start := time.Now()
		for round := range crashRounds {
			sg := variant(round)
			want := compiled(sg)
			work := writesBetween(before, want)
			// The crash comes after a random share of the round's writes has been seen, from none
			// (the manager may still be starting) to a tenth more than there are (it may be idle).
			// Counting writes rather than time makes the moment independent of the machine's speed.
			share := rng.Int64N(int64(work + work/10 + 1))
			crashAfter := policies.changes.Load() + share
			if round == 0 {
				Expect(k8s.Create(ctx, sg)).To(Succeed())
			} else {
				updateSpec(sg, sg.Spec)
			}
			if p == nil {
				p = startProcess(log)
			}
			// The graph (with 2,000 edges and 1,005 status entries) is read only twice a second, so
			// the test's own polling does not slow the API server down.
			var lastRead time.Time
			Eventually(func() bool {
				if policies.changes.Load() >= crashAfter {
					return true
				}
				if time.Since(lastRead) < 500*time.Millisecond {
					return false
				}
				lastRead = time.Now()
				return readyAtCurrentGeneration(getGraph(ns, "big"))
			}, 2*time.Minute, 5*time.Millisecond).Should(BeTrue())
			p.Kill()
			Expect(p.ExitCode()).To(Equal(-1), "killed by a signal, not exited")
			if !holds(func(g Gomega) { exactly(g, sg) }) {
				interrupted++
			}
			p = startProcess(log)
			waitExactlyEvery(sg, 2*time.Minute, 500*time.Millisecond)
			fmt.Fprintf(GinkgoWriter, "round %d: %d writes to make, SIGKILL after %d changes were seen; exact state at %v\n",
				round, work, share, time.Since(start).Round(time.Millisecond))
			before = want
		}
		AddReportEntry("crash", fmt.Sprintf("%d rounds of 500 services (1,005 objects) in %v; %d crashes left work undone; %d events rejected by the API server",
			crashRounds, time.Since(start).Round(time.Second), interrupted, strings.Count(log.String(), "Server rejected event")))
		Expect(p.Exited()).To(BeFalse(), "the last manager must still run:\n%s", log)
		policies.check()
		// Most crashes must leave work undone, or the rounds prove little.
		Expect(interrupted).To(BeNumerically(">=", crashRounds/2))
	})
})

// startProcess starts the manager binary (as the admin user unless args say otherwise); it is
// stopped when the spec ends, so it never reconciles another scenario's graphs.
func startProcess(log *testenv.Log, args ...string) *testenv.ManagerProcess {
	GinkgoHelper()
	p, err := cluster.StartManagerProcess(manager, log, args...)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(p.Stop)
	return p
}
