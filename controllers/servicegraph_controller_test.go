package controllers_test

import (
	"context"
	"fmt"
	"net/http"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	kstatus "sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/compiler"
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
	)
	BeforeEach(func() {
		ctx = context.Background()
		ns = newNamespace(ctx, k8s)
	})

	waitReady := func(name string) *v1alpha1.ServiceGraph {
		return waitGraph(ctx, k8s, ns, name, readyAtCurrentGeneration)
	}
	waitReason := func(name, reason string) *v1alpha1.ServiceGraph {
		return waitGraph(ctx, k8s, ns, name, func(sg *v1alpha1.ServiceGraph) bool {
			c := condition(sg, v1alpha1.ConditionReady)
			return c.ObservedGeneration == sg.Generation && c.Reason == reason
		})
	}
	// waitConverged waits until the live generated objects are exactly the compiled ones.
	waitConverged := func(sg *v1alpha1.ServiceGraph) {
		want := compiled(sg)
		Eventually(func(g Gomega) {
			have := generated(ctx, k8s, ns)
			g.Expect(refs(have)).To(Equal(refs(want)))
			for r, obj := range want {
				g.Expect(specOf(have[r])).To(Equal(specOf(obj)), "spec of %v", r)
			}
		}, timeout, poll).Should(Succeed())
	}

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
		live := waitReady("shop")
		waitConverged(sg)

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
		Eventually(func() []string { return eventReasons(ctx, k8s, ns, "shop") }, timeout, poll).Should(ContainElement("Applied"))
		Expect(metricValue("servicegraph_edges", map[string]string{"namespace": ns, "name": "shop"})).To(Equal(2.0))
		Expect(metricValue("servicegraph_generated_objects", map[string]string{"namespace": ns, "name": "shop", "kind": "NetworkPolicy"})).To(Equal(6.0))
	})

	It("writes Ready=Unknown on the first visit, then Ready=True with observedGeneration on every condition", func() {
		wc, err := client.NewWithWatch(cfg, client.Options{Scheme: k8s.Scheme()})
		Expect(err).NotTo(HaveOccurred())
		w, err := wc.Watch(ctx, &v1alpha1.ServiceGraphList{}, client.InNamespace(ns))
		Expect(err).NotTo(HaveOccurred())
		defer w.Stop()
		Expect(k8s.Create(ctx, seedGraph(ns))).To(Succeed())

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
		waitReady("shop")
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
		waitReady("shop")
		waitConverged(sg)

		var np networkingv1.NetworkPolicy
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "shop-svc-api"}, &np)).To(Succeed())
		np.Spec.Ingress[0].Ports[0].Port = new(intstr.FromInt32(9999))
		np.Spec.Egress = nil
		Expect(k8s.Update(ctx, &np)).To(Succeed())
		waitConverged(sg)

		Expect(k8s.Delete(ctx, &securityv1.AuthorizationPolicy{ObjectMeta: metav1.ObjectMeta{Name: "shop-svc-database", Namespace: ns}})).To(Succeed())
		Expect(k8s.Delete(ctx, &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "shop-default-deny", Namespace: ns}})).To(Succeed())
		waitConverged(sg)
		Eventually(func() []string { return eventReasons(ctx, k8s, ns, "shop") }, timeout, poll).Should(ContainElement("DriftCorrected"))
		Expect(metricValue("servicegraph_drift_corrections_total", map[string]string{"kind": "NetworkPolicy"})).To(BeNumerically(">=", 2))
	})

	It("writes the status of a change twice, never from a cached graph its own write replaced", func() {
		sg := seedGraph(ns)
		Expect(k8s.Create(ctx, sg)).To(Succeed())
		waitReady("shop")
		waitConverged(sg)
		for i := range 5 {
			mark := writes.Mark()
			live := getGraph(ctx, k8s, ns, "shop")
			live.Spec.Edges = append(live.Spec.Edges, fmt.Sprintf("web→database:%d", 9000+i))
			Expect(k8s.Update(ctx, live)).To(Succeed())
			waitReady("shop")
			waitConverged(live)
			var status []testenv.Request
			Consistently(func() []testenv.Request {
				status = nil
				for _, w := range writes.Since(mark, ns) {
					if w.Resource == "servicegraphs" {
						status = append(status, w)
					}
				}
				return status
			}, time.Second, poll).Should(HaveLen(2), "Reconciling, then Ready")
			Expect(status).To(HaveEach(HaveField("Code", http.StatusOK)))
		}
	})

	It("prunes what an edge or a service removal leaves stale, updating the rest in place", func() {
		sg := seedGraph(ns)
		Expect(k8s.Create(ctx, sg)).To(Succeed())
		waitReady("shop")
		waitConverged(sg)
		denyUID := generated(ctx, k8s, ns)[ref("NetworkPolicy", "shop-default-deny")].GetUID()

		live := getGraph(ctx, k8s, ns, "shop")
		live.Spec.Edges = []string{"web→api:8080"}
		Expect(k8s.Update(ctx, live)).To(Succeed())
		waitReady("shop")
		waitConverged(live)
		have := generated(ctx, k8s, ns)
		Expect(have).NotTo(HaveKey(ref("NetworkPolicy", "shop-svc-database")))
		Expect(have).NotTo(HaveKey(ref("AuthorizationPolicy", "shop-svc-database")))
		Expect(have[ref("NetworkPolicy", "shop-default-deny")].GetUID()).To(Equal(denyUID), "default-deny is updated in place, never recreated")

		live = getGraph(ctx, k8s, ns, "shop")
		live.Spec.Services = []v1alpha1.Service{{Name: "web"}, {Name: "api"}}
		Expect(k8s.Update(ctx, live)).To(Succeed())
		waitReady("shop")
		waitConverged(live)
		Expect(getGraph(ctx, k8s, ns, "shop").Status.Services).To(BeEquivalentTo(2))
		Eventually(func() []string { return eventReasons(ctx, k8s, ns, "shop") }, timeout, poll).Should(ContainElement("Pruned"))
	})

	It("reads the live objects with one list per kind on a rollout, and not at all on a resync", func() {
		mark := writes.Mark()
		sg := seedGraph(ns)
		Expect(k8s.Create(ctx, sg)).To(Succeed())
		waitReady("shop")
		waitConverged(sg)
		lists := map[string]int{}
		for _, r := range writes.ReadsSince(mark, ns) {
			Expect(r.Verb).NotTo(Equal("get"), "a read per object: %s", r.Target())
			lists[r.Resource]++
		}
		Expect(lists).To(HaveKeyWithValue("networkpolicies", BeNumerically(">=", 1)), "the names taken around the cache")
		Expect(lists).To(HaveKeyWithValue("authorizationpolicies", BeNumerically(">=", 1)))

		mark = writes.Mark()
		var np networkingv1.NetworkPolicy
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "shop-svc-web"}, &np)).To(Succeed())
		np.Annotations = map[string]string{"resync": "now"} // an event that makes the operator reconcile
		Expect(k8s.Update(ctx, &np)).To(Succeed())
		Eventually(func() []testenv.Request { return writes.ReadsSince(mark, ns) }, timeout, poll).ShouldNot(BeEmpty())
		Consistently(func() []testenv.Request { return writes.ReadsSince(mark, ns) }, time.Second, poll).Should(
			HaveEach(HaveField("Target()", "peerauthentications/")), "only the namespace-wide PeerAuthentication check reads around the cache")
	})

	It("issues no write at all when nothing changed, across forced resyncs", func() {
		sg := seedGraph(ns)
		Expect(k8s.Create(ctx, sg)).To(Succeed())
		waitReady("shop")
		waitConverged(sg)
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

	It("keeps the last good policies untouched when the spec becomes invalid, and converges once fixed", func() {
		sg := seedGraph(ns)
		Expect(k8s.Create(ctx, sg)).To(Succeed())
		waitReady("shop")
		waitConverged(sg)
		good := snapshot(ctx, k8s, ns)

		live := getGraph(ctx, k8s, ns, "shop")
		live.Spec.Edges = []string{"web→api:8080", "web→ghost:80", "api→api:9090", "api→database:5432/data"}
		Expect(k8s.Update(ctx, live)).To(Succeed())
		bad := waitReason("shop", v1alpha1.ReasonInvalidSpec)
		Expect(condition(bad, v1alpha1.ConditionReady).Status).To(Equal(metav1.ConditionFalse))
		Expect(condition(bad, v1alpha1.ConditionStalled).Status).To(Equal(metav1.ConditionTrue))
		Expect(condition(bad, v1alpha1.ConditionReconciling).Type).To(BeEmpty())
		msg := condition(bad, v1alpha1.ConditionReady).Message
		Expect(msg).To(ContainSubstring("web→ghost:80"))
		Expect(msg).To(ContainSubstring("api→api:9090"))
		Expect(bad.Status.ObservedGeneration).To(Equal(bad.Generation))
		Expect(kstatusOf(bad)).To(Equal(kstatus.FailedStatus))
		Eventually(func() []string { return eventReasons(ctx, k8s, ns, "shop") }, timeout, poll).Should(ContainElement("InvalidSpec"))
		Consistently(func() map[v1alpha1.ObjectReference]string { return snapshot(ctx, k8s, ns) }, 2*time.Second, poll).Should(Equal(good))

		live = getGraph(ctx, k8s, ns, "shop")
		live.Spec.Edges = []string{"web→api:8080", "api→database:5432/data", "web→database:5432"}
		Expect(k8s.Update(ctx, live)).To(Succeed())
		waitReady("shop")
		waitConverged(live)
		Expect(condition(getGraph(ctx, k8s, ns, "shop"), v1alpha1.ConditionStalled).Type).To(BeEmpty())
	})

	It("lets only the oldest graph of a namespace generate policies, and hands over when it goes", func() {
		Expect(k8s.Create(ctx, seedGraph(ns))).To(Succeed())
		waitReady("shop")
		second := seedGraph(ns)
		second.Name = "shop-two"
		second.Spec.Edges = []string{"web→database:5432"}
		Expect(k8s.Create(ctx, second)).To(Succeed())
		loser := waitReason("shop-two", v1alpha1.ReasonConflict)
		Expect(condition(loser, v1alpha1.ConditionReady).Message).To(ContainSubstring(`"shop"`))
		Expect(condition(loser, v1alpha1.ConditionStalled).Status).To(Equal(metav1.ConditionTrue))
		Expect(kstatusOf(loser)).To(Equal(kstatus.FailedStatus))
		for r, obj := range generated(ctx, k8s, ns) {
			Expect(obj.GetLabels()[compiler.LabelGraph]).To(Equal("shop"), "%v", r)
		}

		// With no garbage collector in envtest, remove the first graph's objects by hand as it would.
		Expect(k8s.Delete(ctx, getGraph(ctx, k8s, ns, "shop"))).To(Succeed())
		for _, obj := range generated(ctx, k8s, ns) {
			Expect(client.IgnoreNotFound(k8s.Delete(ctx, obj))).To(Succeed())
		}
		waitReady("shop-two")
		waitConverged(second)
	})

	It("leaves a foreign object under a generated name alone and reports the conflict", func() {
		foreign := &networkingv1.NetworkPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "shop-svc-api", Namespace: ns},
			Spec:       networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}},
		}
		Expect(k8s.Create(ctx, foreign)).To(Succeed())
		Expect(k8s.Create(ctx, seedGraph(ns))).To(Succeed())
		sg := waitReason("shop", v1alpha1.ReasonConflict)
		Expect(condition(sg, v1alpha1.ConditionNetworkPoliciesReady).Message).To(ContainSubstring("NetworkPolicy/shop-svc-api"))
		Expect(condition(sg, v1alpha1.ConditionStalled).Status).To(Equal(metav1.ConditionTrue))
		var still networkingv1.NetworkPolicy
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(foreign), &still)).To(Succeed())
		Expect(still.ResourceVersion).To(Equal(foreign.ResourceVersion))
		Expect(still.OwnerReferences).To(BeEmpty())
		// Default-deny waits: applying it without every allow rule would cut live traffic.
		Expect(generated(ctx, k8s, ns)).NotTo(HaveKey(ref("NetworkPolicy", "shop-default-deny")))

		Expect(k8s.Delete(ctx, foreign)).To(Succeed())
		waitReady("shop")
		waitConverged(seedGraph(ns))
	})

	It("reports a generated object the API server refuses as Rejected, and holds default-deny back", func() {
		// An admission policy of the cluster refuses one generated object.
		policy := &admissionregistrationv1.ValidatingAdmissionPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "refuse-" + ns},
			Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
				FailurePolicy: new(admissionregistrationv1.Fail),
				MatchConstraints: &admissionregistrationv1.MatchResources{ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
					RuleWithOperations: admissionregistrationv1.RuleWithOperations{
						Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
						Rule:       admissionregistrationv1.Rule{APIGroups: []string{"networking.k8s.io"}, APIVersions: []string{"v1"}, Resources: []string{"networkpolicies"}},
					},
				}}},
				Validations: []admissionregistrationv1.Validation{{Expression: "object.metadata.name != 'shop-svc-api'", Message: "no policy for api here"}},
			},
		}
		binding := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "refuse-" + ns},
			Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
				PolicyName:        policy.Name,
				ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny},
				MatchResources: &admissionregistrationv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{
					MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns}}},
			},
		}
		Expect(k8s.Create(ctx, policy)).To(Succeed())
		Expect(k8s.Create(ctx, binding)).To(Succeed())
		DeferCleanup(func() {
			Expect(k8s.Delete(ctx, binding)).To(Succeed())
			Expect(k8s.Delete(ctx, policy)).To(Succeed())
		})
		Eventually(func() error { // the policy takes a moment to be enforced
			probe := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "shop-svc-api", Namespace: ns, Labels: map[string]string{"probe": "yes"}}}
			if err := k8s.Create(ctx, probe); err != nil {
				return err
			}
			return k8s.Delete(ctx, probe)
		}, timeout, poll).Should(MatchError(ContainSubstring("no policy for api here")))

		Expect(k8s.Create(ctx, seedGraph(ns))).To(Succeed())
		sg := waitReason("shop", v1alpha1.ReasonRejected)
		Expect(condition(sg, v1alpha1.ConditionReady).Message).To(And(ContainSubstring("NetworkPolicy/shop-svc-api"), ContainSubstring("no policy for api here")))
		Expect(condition(sg, v1alpha1.ConditionStalled).Status).To(Equal(metav1.ConditionTrue))
		have := generated(ctx, k8s, ns)
		Expect(have).To(HaveKey(ref("NetworkPolicy", "shop-svc-web")), "the rest of the allow rules are applied")
		Expect(have).NotTo(HaveKey(ref("NetworkPolicy", "shop-default-deny")), "default-deny without every allow rule would cut live traffic")
		Eventually(func() []string { return eventReasons(ctx, k8s, ns, "shop") }, timeout, poll).Should(ContainElement("ApplyFailed"))
	})

	It("says when a Service declares TCP on a port an edge matches HTTP paths on, and clears it when the port is renamed", func() {
		database := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "database", Namespace: ns},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "database"},
				Ports: []corev1.ServicePort{{Name: "tcp-postgres", Port: 5432}}},
		}
		Expect(k8s.Create(ctx, database)).To(Succeed())
		Expect(k8s.Create(ctx, seedGraph(ns))).To(Succeed())
		sg := waitReason("shop", v1alpha1.ReasonProtocolMismatch)
		Expect(condition(sg, v1alpha1.ConditionReady).Message).To(ContainSubstring(
			"Service " + ns + "/database port 5432 (tcp-postgres) declares TCP (its name tcp-postgres)"))
		Expect(condition(sg, v1alpha1.ConditionAuthorizationReady).Reason).To(Equal(v1alpha1.ReasonProtocolMismatch))
		Expect(condition(sg, v1alpha1.ConditionStalled).Status).To(Equal(metav1.ConditionTrue))
		Expect(kstatusOf(sg)).To(Equal(kstatus.FailedStatus))
		waitConverged(sg) // the policies are applied as declared all the same
		Eventually(func() []string { return eventReasons(ctx, k8s, ns, "shop") }, timeout, poll).Should(ContainElement("ProtocolMismatch"))

		// Renaming the port is a change to the Service, not to the graph: the Service watch sees it.
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(database), database)).To(Succeed())
		database.Spec.Ports[0].Name = "http-data"
		Expect(k8s.Update(ctx, database)).To(Succeed())
		waitReady("shop")
	})

	It("reports a namespace-wide PeerAuthentication owned by someone else as a conflict", func() {
		foreign := &securityv1.PeerAuthentication{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: ns}}
		Expect(k8s.Create(ctx, foreign)).To(Succeed())
		Expect(k8s.Create(ctx, seedGraph(ns))).To(Succeed())
		sg := waitReason("shop", v1alpha1.ReasonConflict)
		Expect(condition(sg, v1alpha1.ConditionMTLSReady).Reason).To(Equal(v1alpha1.ReasonConflict))
		Expect(condition(sg, v1alpha1.ConditionMTLSReady).Message).To(ContainSubstring("PeerAuthentication/default"))
		var pas securityv1.PeerAuthenticationList
		Expect(k8s.List(ctx, &pas, client.InNamespace(ns))).To(Succeed())
		Expect(pas.Items).To(HaveLen(1))
	})

	It("rejects invalid ServiceGraphs at admission with a readable message", func() {
		cases := map[string]func(*v1alpha1.ServiceGraph){
			"spec.mtls": func(sg *v1alpha1.ServiceGraph) { sg.Spec.MTLS = "DISABLE" },
			"spec.edges[0]": func(sg *v1alpha1.ServiceGraph) {
				sg.Spec.Edges = []string{"web→api:0"}
			},
			"spec.connections[0].ports[0].port": func(sg *v1alpha1.ServiceGraph) {
				sg.Spec.Connections = []v1alpha1.Connection{{From: "web", To: "api", Ports: []v1alpha1.ConnectionPort{{Port: intstr.FromInt32(0)}}}}
			},
			"spec.services[3]": func(sg *v1alpha1.ServiceGraph) {
				sg.Spec.Services = append(sg.Spec.Services, v1alpha1.Service{Name: "web"})
			},
		}
		for field, mutate := range cases {
			sg := seedGraph(ns)
			mutate(sg)
			err := k8s.Create(ctx, sg)
			Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%s: %v", field, err)
			Expect(err.Error()).To(ContainSubstring(field))
		}
	})
})
