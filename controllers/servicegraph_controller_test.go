package controllers_test

import (
	"context"
	"fmt"
	"net/http"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	kstatus "sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/compiler"
	"github.com/servicegraph/servicegraph-operator/internal/outcome"
	"github.com/servicegraph/servicegraph-operator/test/testenv"
)

const (
	timeout = 30 * time.Second
	poll    = 100 * time.Millisecond
)

var _ = Describe("ServiceGraph reconciler", func() {
	var (
		ctx context.Context
		ns  string
		e   *specEnv
	)
	BeforeEach(func() {
		e = newSpecEnv()
		ctx, ns = e.ctx, e.ns
	})

	It("serves the CRDs the operator needs: ServiceGraph, NetworkPolicy and Istio's security kinds", func() {
		np := &networkingv1.NetworkPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "wiring", Namespace: ns},
			Spec:       networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}},
		}
		Expect(k8s.Create(ctx, np)).To(Succeed())
		pa := &securityv1.PeerAuthentication{ObjectMeta: metav1.ObjectMeta{Name: "wiring", Namespace: ns}}
		pa.Spec.Selector = nil
		Expect(k8s.Create(ctx, pa)).To(Succeed())
		ap := &securityv1.AuthorizationPolicy{ObjectMeta: metav1.ObjectMeta{Name: "wiring", Namespace: ns}}
		Expect(k8s.Create(ctx, ap)).To(Succeed())
		var sgs v1alpha1.ServiceGraphList
		Expect(k8s.List(ctx, &sgs, client.InNamespace(ns))).To(Succeed())
	})

	It("applies the seed scenario: exact objects, owner references, labels and status", func() {
		sg := seedGraph(ns)
		sg.Labels = map[string]string{"app.kubernetes.io/instance": "shop-prod"}
		sg.Annotations = map[string]string{"argocd.argoproj.io/tracking-id": "shop:policy.servicegraph.io/ServiceGraph:shop/shop"}
		Expect(k8s.Create(ctx, sg)).To(Succeed())
		live := e.waitReady("shop")
		e.waitConverged(sg)

		have := generated(ctx, k8s, ns)
		Expect(refs(have)).To(ConsistOf(
			ref("NetworkPolicy", "shop-default-deny"), ref("NetworkPolicy", "shop-allow-dns"),
			ref("NetworkPolicy", "shop-allow-istiod"), ref("NetworkPolicy", "shop-svc-web"),
			ref("NetworkPolicy", "shop-svc-api"), ref("NetworkPolicy", "shop-svc-database"),
			ref("PeerAuthentication", "shop"), ref("AuthorizationPolicy", "shop-deny-all"),
			ref("AuthorizationPolicy", "shop-svc-api"), ref("AuthorizationPolicy", "shop-svc-database"),
		))
		for r, obj := range have {
			Expect(obj.GetOwnerReferences()).To(ConsistOf(metav1.OwnerReference{
				APIVersion: v1alpha1.GroupVersion.String(), Kind: "ServiceGraph", Name: "shop", UID: live.UID,
				Controller: new(true), BlockOwnerDeletion: new(true),
			}), "owner of %v", r)
			Expect(obj.GetLabels()).To(HaveKeyWithValue(compiler.LabelGraph, "shop"), "labels of %v", r)
			Expect(obj.GetLabels()).To(HaveKeyWithValue(compiler.LabelManagedBy, compiler.ManagedByValue))
			Expect(obj.GetLabels()).NotTo(HaveKey("app.kubernetes.io/instance"), "graph labels must not be copied")
			Expect(obj.GetAnnotations()).NotTo(HaveKey("argocd.argoproj.io/tracking-id"))
		}

		api := have[ref("NetworkPolicy", "shop-svc-api")].(*networkingv1.NetworkPolicy)
		Expect(api.Spec.PodSelector.MatchLabels).To(Equal(map[string]string{"app": "api"}))
		Expect(api.Spec.Ingress).To(HaveLen(1))
		Expect(api.Spec.Ingress[0].From).To(ConsistOf(networkingv1.NetworkPolicyPeer{
			PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}}))
		Expect(api.Spec.Ingress[0].Ports).To(HaveLen(1))
		Expect(*api.Spec.Ingress[0].Ports[0].Port).To(Equal(intstr.FromInt32(8080)))
		Expect(api.Spec.Egress).To(HaveLen(1))
		Expect(*api.Spec.Egress[0].Ports[0].Port).To(Equal(intstr.FromInt32(5432)))

		db := have[ref("AuthorizationPolicy", "shop-svc-database")].(*securityv1.AuthorizationPolicy)
		Expect(db.Spec.Selector.MatchLabels).To(Equal(map[string]string{"app": "database"}))
		Expect(db.Spec.Rules).To(HaveLen(1))
		Expect(db.Spec.Rules[0].From[0].Source.Principals).To(Equal([]string{"cluster.local/ns/" + ns + "/sa/api"}))
		Expect(db.Spec.Rules[0].To[0].Operation.Ports).To(Equal([]string{"5432"}))
		Expect(db.Spec.Rules[0].To[0].Operation.Paths).To(Equal([]string{"/data"}))
		deny := have[ref("AuthorizationPolicy", "shop-deny-all")].(*securityv1.AuthorizationPolicy)
		Expect(deny.Spec.Rules).To(BeEmpty())
		Expect(deny.Spec.Selector).To(BeNil())
		pa := have[ref("PeerAuthentication", "shop")].(*securityv1.PeerAuthentication)
		Expect(pa.Spec.Mtls.Mode.String()).To(Equal("STRICT"))

		Expect(live.Status.ObservedGeneration).To(Equal(live.Generation))
		Expect(live.Status.Services).To(BeEquivalentTo(3))
		Expect(live.Status.Edges).To(BeEquivalentTo(2))
		Expect(live.Status.MTLS).To(Equal(v1alpha1.MTLSStrict))
		Expect(live.Status.Counts).To(Equal(seedCounts))
		Expect(live.Status.GeneratedObjects).To(ConsistOf(refs(have)))
		for _, t := range []string{v1alpha1.ConditionReady, v1alpha1.ConditionNetworkPoliciesReady, v1alpha1.ConditionMTLSReady, v1alpha1.ConditionAuthorizationReady} {
			c := condition(live, t)
			Expect(c.Status).To(Equal(metav1.ConditionTrue), t)
			Expect(c.ObservedGeneration).To(Equal(live.Generation), t)
		}
		Expect(condition(live, v1alpha1.ConditionReady).Reason).To(Equal(v1alpha1.ReasonReconciled))
		Expect(condition(live, v1alpha1.ConditionReconciling).Type).To(BeEmpty())
		Expect(condition(live, v1alpha1.ConditionStalled).Type).To(BeEmpty())
		Expect(eventReasons(ctx, k8s, ns, "shop")).NotTo(ContainElement("Applied"), "a first rollout is told by the status alone")
		Expect(metricValue("servicegraph_edges", map[string]string{"namespace": ns, "name": "shop"})).To(Equal(2.0))
		Expect(metricValue("servicegraph_generated_objects", map[string]string{"namespace": ns, "name": "shop", "kind": "NetworkPolicy"})).To(Equal(6.0))
	})

	// statuses creates sg and returns the statuses a watch sees until it is Ready.
	statuses := func(sg *v1alpha1.ServiceGraph) []v1alpha1.ServiceGraphStatus {
		GinkgoHelper()
		wc, err := client.NewWithWatch(cfg, client.Options{Scheme: k8s.Scheme()})
		Expect(err).NotTo(HaveOccurred())
		w, err := wc.Watch(ctx, &v1alpha1.ServiceGraphList{}, client.InNamespace(ns))
		Expect(err).NotTo(HaveOccurred())
		defer w.Stop()
		Expect(k8s.Create(ctx, sg)).To(Succeed())
		var seen []v1alpha1.ServiceGraphStatus
		Eventually(func() bool {
			for {
				select {
				case ev := <-w.ResultChan():
					sg := ev.Object.(*v1alpha1.ServiceGraph)
					seen = append(seen, sg.Status)
					if readyAtCurrentGeneration(sg) {
						return true
					}
				default:
					return false
				}
			}
		}, timeout, poll).Should(BeTrue())
		return seen
	}

	It("writes a small new graph's status once, when it converges", func() {
		seen := statuses(seedGraph(ns))
		Expect(seen).To(HaveLen(2), "created, ready")
		Expect(seen[0].Conditions).To(BeEmpty(), "as created")
	})

	It("writes Ready=Unknown on a large graph's first visit, then Ready=True with observedGeneration on every condition", func() {
		sg := seedGraph(ns)
		for i := len(sg.Spec.Services); i <= outcome.QuickGraphServices; i++ {
			sg.Spec.Services = append(sg.Spec.Services, v1alpha1.Service{Name: fmt.Sprintf("idle-%d", i)})
		}
		seen := statuses(sg)
		Expect(len(seen)).To(BeNumerically(">=", 3), "created, reconciling, ready")
		Expect(seen[0].Conditions).To(BeEmpty(), "as created")
		Expect(kstatusOf(&v1alpha1.ServiceGraph{ObjectMeta: metav1.ObjectMeta{Generation: 1}, Status: seen[1]})).To(Equal(kstatus.InProgressStatus))
		first := &v1alpha1.ServiceGraph{Status: seen[1]}
		Expect(condition(first, v1alpha1.ConditionReady).Status).To(Equal(metav1.ConditionUnknown))
		Expect(condition(first, v1alpha1.ConditionReady).Reason).To(Equal(v1alpha1.ReasonReconciling))
		Expect(condition(first, v1alpha1.ConditionReconciling).Status).To(Equal(metav1.ConditionTrue))
		last := &v1alpha1.ServiceGraph{Status: seen[len(seen)-1]}
		for _, c := range last.Status.Conditions {
			Expect(c.ObservedGeneration).To(BeEquivalentTo(1), c.Type)
		}
		Expect(last.Status.ObservedGeneration).To(BeEquivalentTo(1))
		Expect(kstatusOf(getGraph(ctx, k8s, ns, "shop"))).To(Equal(kstatus.CurrentStatus))
	})

	It("applies allow rules first, mutual TLS next and default-deny last", func() {
		mark := writes.Mark()
		Expect(k8s.Create(ctx, seedGraph(ns))).To(Succeed())
		e.waitReady("shop")
		var order []string
		for _, w := range writes.Since(mark, ns) {
			if w.Resource != "servicegraphs" {
				order = append(order, w.Target())
			}
		}
		Expect(order).To(HaveLen(10))
		position := map[string]int{}
		for i, o := range order {
			position[o] = i
		}
		lastAllow := max(position["networkpolicies/shop-svc-web"], position["networkpolicies/shop-svc-api"],
			position["networkpolicies/shop-svc-database"], position["networkpolicies/shop-allow-dns"],
			position["networkpolicies/shop-allow-istiod"], position["authorizationpolicies/shop-svc-api"],
			position["authorizationpolicies/shop-svc-database"])
		Expect(position["peerauthentications/shop"]).To(BeNumerically(">", lastAllow))
		Expect(position["networkpolicies/shop-default-deny"]).To(BeNumerically(">", position["peerauthentications/shop"]))
		Expect(position["authorizationpolicies/shop-deny-all"]).To(BeNumerically(">", position["peerauthentications/shop"]))
	})

	It("restores a generated object edited or deleted by hand, and records the correction", func() {
		sg := seedGraph(ns)
		Expect(k8s.Create(ctx, sg)).To(Succeed())
		e.waitReady("shop")
		e.waitConverged(sg)

		var np networkingv1.NetworkPolicy
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "shop-svc-api"}, &np)).To(Succeed())
		np.Spec.Ingress[0].Ports[0].Port = new(intstr.FromInt32(9999))
		np.Spec.Egress = nil
		Expect(k8s.Update(ctx, &np)).To(Succeed())
		e.waitConverged(sg)

		Expect(k8s.Delete(ctx, &securityv1.AuthorizationPolicy{ObjectMeta: metav1.ObjectMeta{Name: "shop-svc-database", Namespace: ns}})).To(Succeed())
		Expect(k8s.Delete(ctx, &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "shop-default-deny", Namespace: ns}})).To(Succeed())
		e.waitConverged(sg)
		Eventually(func() []string { return eventReasons(ctx, k8s, ns, "shop") }, timeout, poll).Should(ContainElement("DriftCorrected"))
		Expect(metricValue("servicegraph_drift_corrections_total", map[string]string{"kind": "NetworkPolicy"})).To(BeNumerically(">=", 2))
	})

	It("writes the status of a change once, never from a cached graph its own write replaced", func() {
		sg := seedGraph(ns)
		Expect(k8s.Create(ctx, sg)).To(Succeed())
		e.waitReady("shop")
		e.waitConverged(sg)
		for i := range 5 {
			mark := writes.Mark()
			live := getGraph(ctx, k8s, ns, "shop")
			live.Spec.Edges = append(live.Spec.Edges, fmt.Sprintf("web→database:%d", 9000+i))
			Expect(k8s.Update(ctx, live)).To(Succeed())
			e.waitReady("shop")
			e.waitConverged(live)
			Eventually(func() []string { return eventReasons(ctx, k8s, ns, "shop") }, timeout, poll).Should(ContainElement("Applied"), "a change is an event")
			var status []testenv.Request
			statusWrites := func() []testenv.Request {
				status = nil
				for _, w := range writes.Since(mark, ns) {
					if w.Resource == "servicegraphs" {
						status = append(status, w)
					}
				}
				return status
			}
			// The log records a write when its answer reaches the manager, which may be after the
			// watch showed this test the graph Ready.
			// No Reconciling mark: the generation, ahead of status.observedGeneration, says it.
			Eventually(statusWrites, timeout, poll).Should(HaveLen(1), "Ready")
			Consistently(statusWrites, time.Second, poll).Should(HaveLen(1), "Ready")
			Expect(status).To(HaveEach(HaveField("Code", http.StatusOK)))
		}
	})

	It("prunes what an edge or a service removal leaves stale, updating the rest in place", func() {
		sg := seedGraph(ns)
		Expect(k8s.Create(ctx, sg)).To(Succeed())
		e.waitReady("shop")
		e.waitConverged(sg)
		denyUID := generated(ctx, k8s, ns)[ref("NetworkPolicy", "shop-default-deny")].GetUID()

		live := getGraph(ctx, k8s, ns, "shop")
		live.Spec.Edges = []string{"web→api:8080"}
		Expect(k8s.Update(ctx, live)).To(Succeed())
		e.waitReady("shop")
		e.waitConverged(live)
		have := generated(ctx, k8s, ns)
		Expect(have).NotTo(HaveKey(ref("NetworkPolicy", "shop-svc-database")))
		Expect(have).NotTo(HaveKey(ref("AuthorizationPolicy", "shop-svc-database")))
		Expect(have[ref("NetworkPolicy", "shop-default-deny")].GetUID()).To(Equal(denyUID), "default-deny is updated in place, never recreated")

		live = getGraph(ctx, k8s, ns, "shop")
		live.Spec.Services = []v1alpha1.Service{{Name: "web"}, {Name: "api"}}
		Expect(k8s.Update(ctx, live)).To(Succeed())
		e.waitReady("shop")
		e.waitConverged(live)
		Expect(getGraph(ctx, k8s, ns, "shop").Status.Services).To(BeEquivalentTo(2))
		Eventually(func() []string { return eventReasons(ctx, k8s, ns, "shop") }, timeout, poll).Should(ContainElement("Pruned"))
	})

	It("reads nothing around its caches, on a rollout or a resync", func() {
		mark := writes.Mark()
		sg := seedGraph(ns)
		Expect(k8s.Create(ctx, sg)).To(Succeed())
		e.waitReady("shop")
		e.waitConverged(sg)
		// Creates are sent without a look first (a taken name is refused), and whether another
		// namespace-wide PeerAuthentication is in the way is read from the caches.
		Expect(writes.ReadsSince(mark, ns)).To(BeEmpty())

		mark = writes.Mark()
		digests := metricValue("servicegraph_spec_compares_total", map[string]string{"by": "digest"})
		var np networkingv1.NetworkPolicy
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "shop-svc-web"}, &np)).To(Succeed())
		np.Annotations = map[string]string{"resync": "now"} // an event that makes the operator reconcile
		Expect(k8s.Update(ctx, &np)).To(Succeed())
		Eventually(metricValue, timeout, poll).WithArguments("servicegraph_spec_compares_total", map[string]string{"by": "digest"}).
			Should(BeNumerically(">=", digests+10), "the resync compared every object")
		Consistently(func() []testenv.Request { return writes.ReadsSince(mark, ns) }, time.Second, poll).Should(BeEmpty())
	})

	It("issues no write at all when nothing changed, across forced resyncs", func() {
		sg := seedGraph(ns)
		Expect(k8s.Create(ctx, sg)).To(Succeed())
		e.waitReady("shop")
		e.waitConverged(sg)
		Consistently(func() int { return len(writes.Since(writes.Mark(), ns)) }, time.Second, poll).Should(BeZero())
		mark := writes.Mark()
		before := snapshot(ctx, k8s, ns)

		// Each annotation change on an owned object is an event that makes the operator reconcile.
		for i, name := range []string{"shop-svc-web", "shop-svc-api", "shop-default-deny"} {
			var np networkingv1.NetworkPolicy
			Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &np)).To(Succeed())
			np.Annotations = map[string]string{"resync": string(rune('a' + i))}
			Expect(k8s.Update(ctx, &np)).To(Succeed())
		}
		// A new manager resyncs everything from scratch.
		restartManager()
		Consistently(func() []testenv.Request { return writes.Since(mark, ns) }, 3*time.Second, poll).Should(BeEmpty())
		after := snapshot(ctx, k8s, ns)
		for r := range after {
			if r.Kind == "NetworkPolicy" && (r.Name == "shop-svc-web" || r.Name == "shop-svc-api" || r.Name == "shop-default-deny") {
				continue // our own annotation edits moved these
			}
			Expect(after[r]).To(Equal(before[r]), "resourceVersion of %v", r)
		}
	})
})
