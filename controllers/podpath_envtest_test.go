package controllers_test

import (
	"context"
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/controllers"
)

// Reconciles that only pod events ask for: the coverage follows the pods without a compile, and
// anything else (a change to what the compiler reads of pods, an edit, drift, a recheck) still
// gets the full reconcile.
var _ = Describe("Pods-only reconciles", func() {
	var (
		ctx context.Context
		ns  string
	)
	meshed := map[string]string{"sidecar.istio.io/status": "{}"}
	BeforeEach(func() {
		ctx = context.Background()
		ns = newNamespace(ctx, k8s)
	})
	pod := func(name, app string, annotations map[string]string, containers ...string) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app": app}, Annotations: annotations}}
		for _, c := range containers {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: c, Image: "registry.example/" + c})
		}
		Expect(k8s.Create(ctx, p)).To(Succeed())
		return p
	}
	deletePod := func(name string) {
		Expect(k8s.Delete(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}})).To(Succeed())
	}
	compiles := func() float64 {
		return metricValue("servicegraph_compiles_total", map[string]string{"namespace": ns, "name": "shop"})
	}
	// settled waits until the graph compiles no more (its own writes' events bring a last full
	// reconcile or two) and returns the count.
	settled := func() float64 {
		var n float64
		Eventually(func() bool {
			n = compiles()
			time.Sleep(3 * controllers.PodEventDelay / 2)
			return compiles() == n
		}, timeout, poll).Should(BeTrue())
		return n
	}
	waitFor := func(check func(*v1alpha1.ServiceGraph) bool) *v1alpha1.ServiceGraph {
		return waitGraph(ctx, k8s, ns, "shop", check)
	}
	covered := func(n int32) func(*v1alpha1.ServiceGraph) bool {
		return func(sg *v1alpha1.ServiceGraph) bool {
			return readyAtCurrentGeneration(sg) && sg.Status.Coverage != nil && sg.Status.Coverage.CoveredPods == n
		}
	}
	// startSeed runs the seed graph with pods web-1 and database-1 besides those made before.
	startSeed := func() *v1alpha1.ServiceGraph {
		pod("web-1", "web", meshed, "web")
		pod("database-1", "database", meshed, "postgres")
		var pods corev1.PodList
		Expect(k8s.List(ctx, &pods, client.InNamespace(ns))).To(Succeed())
		Expect(k8s.Create(ctx, seedGraph(ns))).To(Succeed())
		return waitFor(covered(int32(len(pods.Items))))
	}

	It("follows the pods in the coverage without compiling, and writes only when the coverage changed", func() {
		// api-1's sidecar shows only in its containers: the preflight reads it in full, once per
		// reconcile, which counts the reconciles.
		pod("api-1", "api", nil, "api", "istio-proxy")
		startSeed()
		before := settled()
		Expect(before).To(BeNumerically(">=", 1))
		reconciles := func(mark int) int {
			n := 0
			for _, r := range writes.ReadsSince(mark, ns) {
				if r.Resource == "pods" && r.Name == "api-1" {
					n++
				}
			}
			return n
		}

		By("a pod replaced by another of its service: the coverage stays, nothing is written")
		mark := writes.Mark()
		pod("web-1b", "web", meshed, "web")
		deletePod("web-1")
		Eventually(func() int { return reconciles(mark) }, timeout, poll).Should(BeNumerically(">=", 1))
		Consistently(compiles, 2*controllers.PodEventDelay, poll).Should(Equal(before))
		Expect(writes.Since(mark, ns)).To(BeEmpty())

		By("a new pod: the coverage counts it, and only the status is written")
		mark = writes.Mark()
		pod("web-2", "web", meshed, "web")
		live := waitFor(covered(4))
		Expect(live.Status.Coverage.Services).To(ContainElement(v1alpha1.ServiceCoverage{Name: "web", Pods: 2, Dataplane: "sidecar"}))
		Expect(compiles()).To(Equal(before))
		for _, w := range writes.Since(mark, ns) {
			Expect(w.Target()).To(Equal("servicegraphs/status/shop"))
		}

		By("a pod in no service: the widening judgement reads it, so the reconcile is a full one")
		pod("debug", "debug", meshed, "shell")
		live = waitFor(func(sg *v1alpha1.ServiceGraph) bool { return sg.Status.Coverage.UncoveredPods == 1 })
		Expect(live.Status.Coverage.Uncovered).To(Equal([]string{"debug"}))
		Expect(compiles()).To(BeNumerically(">", before))
	})

	It("holds STRICT back through a full reconcile when a pod loses its sidecar under mtlsPreflight Block", func() {
		pod("api-1", "api", meshed, "api")
		startSeed()
		peerAuthMode := func() string {
			var pa securityv1.PeerAuthentication
			Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "shop"}, &pa)).To(Succeed())
			return pa.Spec.GetMtls().GetMode().String()
		}
		Expect(peerAuthMode()).To(Equal("STRICT"))
		before := settled()

		// The injector's mark goes; the pod never had the container (envtest runs no injector).
		db := &corev1.Pod{}
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "database-1"}, db)).To(Succeed())
		db.Annotations = nil
		Expect(k8s.Update(ctx, db)).To(Succeed())
		live := waitFor(func(sg *v1alpha1.ServiceGraph) bool {
			return condition(sg, v1alpha1.ConditionMTLSReady).Reason == v1alpha1.ReasonUnmeshedWorkloads
		})
		Expect(condition(live, v1alpha1.ConditionReady).Status).To(Equal(metav1.ConditionFalse))
		Expect(condition(live, v1alpha1.ConditionMTLSReady).Message).To(ContainSubstring("database-1"))
		Expect(peerAuthMode()).To(Equal("STRICT"), "Block never loosens what is in force")
		Expect(compiles()).To(BeNumerically(">", before))

		db.Annotations = meshed
		Expect(k8s.Update(ctx, db)).To(Succeed())
		waitFor(readyAtCurrentGeneration)
	})

	It("reaches Ready promptly after an edit in the middle of a burst of pod events", func() {
		pod("api-base", "api", meshed, "api") // the service keeps a pod: its data plane stays
		sg := startSeed()
		before := settled()
		burst, stop := make(chan struct{}), make(chan struct{})
		go func() {
			defer GinkgoRecover()
			defer close(burst)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-time.After(50 * time.Millisecond):
				}
				pod(fmt.Sprintf("api-%d", i), "api", meshed, "api")
				if i > 0 {
					deletePod(fmt.Sprintf("api-%d", i-1))
				}
			}
		}()
		DeferCleanup(func() {
			close(stop)
			<-burst
		})
		time.Sleep(3 * controllers.PodEventDelay)
		Expect(compiles()).To(Equal(before), "the burst alone compiles nothing")

		sg = getGraph(ctx, k8s, ns, "shop")
		sg.Spec.Edges = append(sg.Spec.Edges, "web→database:5432")
		start := time.Now()
		Expect(k8s.Update(ctx, sg)).To(Succeed())
		waitFor(readyAtCurrentGeneration)
		Expect(time.Since(start)).To(BeNumerically("<", controllers.PodEventDelay))
		newGraph := seedGraph(ns)
		newGraph.Spec.Edges = sg.Spec.Edges
		(&specEnv{ctx: ctx, ns: ns}).waitConverged(newGraph)
	})

	It("restores a generated object changed while pod events wait in the queue", func() {
		sg := startSeed()
		before := settled()
		pod("web-2", "web", meshed, "web")
		var np networkingv1.NetworkPolicy
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "shop-svc-api"}, &np)).To(Succeed())
		np.Spec.Ingress = nil
		Expect(k8s.Update(ctx, &np)).To(Succeed())
		(&specEnv{ctx: ctx, ns: ns}).waitConverged(sg)
		Expect(compiles()).To(BeNumerically(">", before))
	})

	It("keeps rechecks full", func() {
		pod("api-1", "api", meshed, "api")
		pod("web-1", "web", meshed, "web")
		pod("database-1", "database", nil, "postgres")
		sg := seedGraph(ns)
		sg.Spec.MTLSPreflight = v1alpha1.MTLSPreflightWarn // Ready, looking again for the pod to get a sidecar
		Expect(k8s.Create(ctx, sg)).To(Succeed())
		waitFor(readyAtCurrentGeneration)
		before := compiles()
		// The suite's manager rechecks every second.
		Eventually(compiles, timeout, poll).Should(BeNumerically(">=", before+2))
	})
})
