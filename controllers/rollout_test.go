package controllers_test

import (
	"context"
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/controllers"
	"github.com/servicegraph/servicegraph-operator/internal/compiler"
)

// Safe rollout: audit mode, the mTLS preflight and workload coverage.
var _ = Describe("Rollout", func() {
	var (
		ctx context.Context
		ns  string
	)
	BeforeEach(func() {
		ctx = context.Background()
		ns = newNamespace(ctx, k8s)
	})
	waitFor := func(check func(*v1alpha1.ServiceGraph) bool) *v1alpha1.ServiceGraph {
		return waitGraph(ctx, k8s, ns, "shop", check)
	}
	ready := func(sg *v1alpha1.ServiceGraph) bool { return readyAtCurrentGeneration(sg) }
	setEnforcement := func(e v1alpha1.Enforcement) {
		sg := getGraph(ctx, k8s, ns, "shop")
		sg.Spec.Enforcement = e
		Expect(k8s.Update(ctx, sg)).To(Succeed())
	}
	// writeOrder lists the object writes (not status) since mark as "write resource/name" (a
	// create, apply or update) or "delete resource/name".
	writeOrder := func(mark int) []string {
		var order []string
		for _, w := range writes.Since(mark, ns) {
			if w.Resource == "servicegraphs" {
				continue
			}
			verb := "write"
			if w.Verb == "delete" {
				verb = "delete"
			}
			order = append(order, verb+" "+w.Target())
		}
		return order
	}
	pod := func(name string, labels map[string]string, annotations map[string]string, containers ...string) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels, Annotations: annotations}}
		for _, c := range containers {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: c, Image: "registry.example/" + c})
		}
		Expect(k8s.Create(ctx, p)).To(Succeed())
		return p
	}
	peerAuthMode := func() string {
		var pa securityv1.PeerAuthentication
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "shop"}, &pa)).To(Succeed())
		return pa.Spec.GetMtls().GetMode().String()
	}

	It("applies only dry-run AuthorizationPolicies and PERMISSIVE mTLS in Audit mode, and shows the plan", func() {
		sg := seedGraph(ns)
		sg.Spec.Enforcement = v1alpha1.EnforcementAudit
		Expect(k8s.Create(ctx, sg)).To(Succeed())
		live := waitFor(ready)

		have := generated(ctx, k8s, ns)
		Expect(refs(have)).To(ConsistOf(ref("AuthorizationPolicy", "shop-deny-all"), ref("AuthorizationPolicy", "shop-svc-api"),
			ref("AuthorizationPolicy", "shop-svc-database"), ref("PeerAuthentication", "shop")))
		for r, obj := range have {
			if r.Kind == "AuthorizationPolicy" {
				Expect(obj.GetAnnotations()).To(HaveKeyWithValue(compiler.AnnotationDryRun, "true"), "%v", r)
			}
		}
		Expect(peerAuthMode()).To(Equal("PERMISSIVE"))
		Expect(live.Status.Enforcement).To(Equal(v1alpha1.EnforcementAudit))
		Expect(live.Status.MTLS).To(Equal(v1alpha1.MTLSPermissive))
		Expect(condition(live, v1alpha1.ConditionAuthorizationReady).Reason).To(Equal(v1alpha1.ReasonAudit))

		enforce := seedGraph(ns)
		var want []v1alpha1.PlannedObject
		for _, r := range refs(compiled(enforce)) {
			want = append(want, v1alpha1.PlannedObject{Group: r.Group, Kind: r.Kind, Name: r.Name, Exists: r.Kind != "NetworkPolicy"})
		}
		Expect(live.Status.Plan).To(ConsistOf(want))
	})

	It("switches Audit to Enforce allows first, then STRICT mTLS, then default-deny; and rolls back denies first", func() {
		sg := seedGraph(ns)
		sg.Spec.Enforcement = v1alpha1.EnforcementAudit
		Expect(k8s.Create(ctx, sg)).To(Succeed())
		waitFor(ready)

		mark := writes.Mark()
		setEnforcement(v1alpha1.EnforcementEnforce)
		live := waitFor(func(sg *v1alpha1.ServiceGraph) bool {
			return ready(sg) && sg.Status.Enforcement == v1alpha1.EnforcementEnforce
		})
		Expect(live.Status.Plan).To(BeEmpty())
		Expect(refs(generated(ctx, k8s, ns))).To(Equal(refs(compiled(seedGraph(ns)))))
		Expect(generated(ctx, k8s, ns)[ref("AuthorizationPolicy", "shop-svc-api")].GetAnnotations()).NotTo(HaveKey(compiler.AnnotationDryRun))
		Expect(peerAuthMode()).To(Equal("STRICT"))
		order := writeOrder(mark)
		pos := positions(order)
		Expect(pos).To(HaveLen(len(order)), "one write per object: %v", order)
		Expect(pos).To(HaveKey("write peerauthentications/shop"))
		for _, w := range []string{"networkpolicies/shop-svc-api", "networkpolicies/shop-svc-web", "networkpolicies/shop-allow-dns",
			"authorizationpolicies/shop-svc-api", "networkpolicies/shop-default-deny", "authorizationpolicies/shop-deny-all"} {
			Expect(pos).To(HaveKey("write "+w), "%v", order)
		}
		for _, allow := range []string{"networkpolicies/shop-svc-api", "networkpolicies/shop-svc-web", "networkpolicies/shop-allow-dns", "authorizationpolicies/shop-svc-api"} {
			Expect(pos["write "+allow]).To(BeNumerically("<", pos["write peerauthentications/shop"]), "%s before mTLS in %v", allow, order)
		}
		Expect(pos["write networkpolicies/shop-default-deny"]).To(BeNumerically(">", pos["write peerauthentications/shop"]), "%v", order)
		Expect(pos["write authorizationpolicies/shop-deny-all"]).To(BeNumerically(">", pos["write peerauthentications/shop"]), "%v", order)
		Eventually(func() []string { return eventReasons(ctx, k8s, ns, "shop") }, timeout, poll).Should(ContainElement("EnforcementChanged"))

		mark = writes.Mark()
		setEnforcement(v1alpha1.EnforcementAudit)
		waitFor(func(sg *v1alpha1.ServiceGraph) bool {
			return ready(sg) && sg.Status.Enforcement == v1alpha1.EnforcementAudit
		})
		order = writeOrder(mark)
		Expect(order[0]).To(Equal("delete networkpolicies/shop-default-deny"), "default-deny goes first: %v", order)
		pos = positions(order)
		for _, w := range []string{"write authorizationpolicies/shop-deny-all", "write peerauthentications/shop", "write authorizationpolicies/shop-svc-api", "delete networkpolicies/shop-svc-api"} {
			Expect(pos).To(HaveKey(w), "%v", order)
		}
		Expect(pos["write authorizationpolicies/shop-deny-all"]).To(BeNumerically("<", pos["write peerauthentications/shop"]), "%v", order)
		Expect(pos["write peerauthentications/shop"]).To(BeNumerically("<", pos["write authorizationpolicies/shop-svc-api"]), "%v", order)
		Expect(peerAuthMode()).To(Equal("PERMISSIVE"))
		Expect(generated(ctx, k8s, ns)).NotTo(HaveKey(ref("NetworkPolicy", "shop-svc-api")))
	})

	// A kubelet's status updates make most of a rollout's pod events and change nothing the
	// operator reads: they must not reconcile the graph. A pod whose sidecar only its containers
	// show is read in full by every reconcile of its graph (the preflight), so those reads count
	// the reconciles.
	It("reconciles on a pod's labels, not on its status, and coalesces a burst of pod events", func() {
		p := pod("api-1", map[string]string{"app": "api"}, nil, "api", "istio-proxy")
		Expect(k8s.Create(ctx, seedGraph(ns))).To(Succeed())
		waitFor(ready)
		reconciles := func(mark int) int {
			n := 0
			for _, r := range writes.ReadsSince(mark, ns) {
				if r.Resource == "pods" && r.Name == "api-1" {
					n++
				}
			}
			return n
		}
		Eventually(func() int {
			mark := writes.Mark()
			time.Sleep(3 * controllers.PodEventDelay / 2)
			return reconciles(mark)
		}, timeout, poll).Should(BeZero(), "settled")

		mark := writes.Mark()
		for i := range 5 {
			p.Status.Phase = corev1.PodRunning
			p.Status.PodIP = fmt.Sprintf("10.0.0.%d", i+1)
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()}}
			Expect(k8s.Status().Update(ctx, p)).To(Succeed())
		}
		Consistently(func() int { return reconciles(mark) }, 2*controllers.PodEventDelay, poll).Should(BeZero(), "status updates reconcile nothing")

		mark = writes.Mark()
		for i := range 5 {
			Expect(k8s.Get(ctx, client.ObjectKeyFromObject(p), p)).To(Succeed())
			p.Labels["version"] = fmt.Sprintf("v%d", i)
			Expect(k8s.Update(ctx, p)).To(Succeed())
		}
		Eventually(func() int { return reconciles(mark) }, timeout, poll).Should(BeNumerically(">=", 1), "a label change reconciles")
		Consistently(func() int { return reconciles(mark) }, 2*controllers.PodEventDelay, poll).Should(Equal(1), "five label changes in a burst make one reconcile")
	})

	It("holds STRICT mTLS back while a pod has no sidecar, and lets it through once the pod is meshed", func() {
		pod("web-1", map[string]string{"app": "web"}, map[string]string{"sidecar.istio.io/status": "{}"}, "web", "istio-proxy")
		pod("api-1", map[string]string{"app": "api"}, nil, "api", "istio-proxy") // native detection by container
		bare := pod("database-1", map[string]string{"app": "database"}, nil, "postgres")
		Expect(k8s.Create(ctx, seedGraph(ns))).To(Succeed())

		live := waitFor(func(sg *v1alpha1.ServiceGraph) bool {
			return condition(sg, v1alpha1.ConditionMTLSReady).Reason == v1alpha1.ReasonUnmeshedWorkloads
		})
		msg := condition(live, v1alpha1.ConditionMTLSReady).Message
		Expect(msg).To(ContainSubstring("database-1"))
		Expect(msg).NotTo(ContainSubstring("web-1"))
		Expect(msg).NotTo(ContainSubstring("api-1"))
		Expect(condition(live, v1alpha1.ConditionReady).Status).To(Equal(metav1.ConditionFalse))
		Expect(peerAuthMode()).To(Equal("PERMISSIVE"), "Block keeps a new graph PERMISSIVE")
		Expect(generated(ctx, k8s, ns)).To(HaveKey(ref("NetworkPolicy", "shop-default-deny")), "the rest is applied")
		Eventually(func() []string { return eventReasons(ctx, k8s, ns, "shop") }, timeout, poll).Should(ContainElement("UnmeshedWorkloads"))

		// The pod is re-created with a sidecar (envtest runs no kubelet: pods are plain objects).
		Expect(k8s.Delete(ctx, bare)).To(Succeed())
		pod("database-1", map[string]string{"app": "database"}, map[string]string{"sidecar.istio.io/status": "{}"}, "postgres", "istio-proxy")
		live = waitFor(ready)
		Expect(peerAuthMode()).To(Equal("STRICT"))
		Expect(condition(live, v1alpha1.ConditionMTLSReady).Reason).To(Equal(v1alpha1.ReasonApplied))
	})

	It("applies STRICT anyway in Warn mode and keeps warning", func() {
		pod("database-1", map[string]string{"app": "database"}, nil, "postgres")
		sg := seedGraph(ns)
		sg.Spec.MTLSPreflight = v1alpha1.MTLSPreflightWarn
		Expect(k8s.Create(ctx, sg)).To(Succeed())
		live := waitFor(ready)
		Expect(peerAuthMode()).To(Equal("STRICT"))
		Expect(condition(live, v1alpha1.ConditionMTLSReady).Reason).To(Equal(v1alpha1.ReasonUnmeshedWorkloads))
		Expect(condition(live, v1alpha1.ConditionMTLSReady).Message).To(ContainSubstring("database-1"))
	})

	It("removes the mesh's objects when a graph switches to mesh None, and brings them back", func() {
		Expect(k8s.Create(ctx, seedGraph(ns))).To(Succeed())
		waitFor(ready)
		Expect(refs(generated(ctx, k8s, ns))).To(ContainElement(ref("PeerAuthentication", "shop")))
		sg := getGraph(ctx, k8s, ns, "shop")
		sg.Spec.Mesh = v1alpha1.MeshNone
		Expect(k8s.Update(ctx, sg)).To(Succeed())
		sg = waitFor(ready)
		Eventually(func() []v1alpha1.ObjectReference { return refs(generated(ctx, k8s, ns)) }, timeout, poll).Should(Equal(refs(compiled(sg))))
		for _, r := range refs(generated(ctx, k8s, ns)) {
			Expect(r.Kind).To(Equal("NetworkPolicy"), "mesh None generates NetworkPolicies only")
		}
		Expect(generated(ctx, k8s, ns)).NotTo(HaveKey(ref("NetworkPolicy", "shop-allow-istiod")))
		sg.Spec.Mesh = v1alpha1.MeshIstio
		Expect(k8s.Update(ctx, sg)).To(Succeed())
		waitFor(ready)
		Eventually(func() []v1alpha1.ObjectReference { return refs(generated(ctx, k8s, ns)) }, timeout, poll).Should(ContainElement(ref("PeerAuthentication", "shop")))
	})

	It("counts the pods of each service and flags empty selectors and pods in no service", func() {
		meshed := map[string]string{"sidecar.istio.io/status": "{}"}
		pod("web-1", map[string]string{"app": "web"}, meshed, "web")
		pod("web-2", map[string]string{"app": "web"}, meshed, "web")
		pod("api-1", map[string]string{"app": "api"}, meshed, "api")
		pod("stray", map[string]string{"app": "debug"}, meshed, "shell")
		Expect(k8s.Create(ctx, seedGraph(ns))).To(Succeed())
		live := waitFor(func(sg *v1alpha1.ServiceGraph) bool {
			return ready(sg) && sg.Status.Coverage != nil && sg.Status.Coverage.CoveredPods == 3
		})
		Expect(live.Status.Coverage.Services).To(ConsistOf(
			v1alpha1.ServiceCoverage{Name: "api", Pods: 1, Dataplane: "sidecar"}, v1alpha1.ServiceCoverage{Name: "database", Pods: 0, Dataplane: "sidecar"}, v1alpha1.ServiceCoverage{Name: "web", Pods: 2, Dataplane: "sidecar"}))
		Expect(live.Status.Coverage.UncoveredPods).To(BeEquivalentTo(1))
		Expect(live.Status.Coverage.Uncovered).To(Equal([]string{"stray"}))
		cov := condition(live, v1alpha1.ConditionCoverage)
		Expect(cov.Status).To(Equal(metav1.ConditionFalse))
		Expect(cov.Message).To(ContainSubstring("database"))
		Expect(cov.Message).To(ContainSubstring("stray"))

		pod("database-1", map[string]string{"app": "database"}, meshed, "postgres")
		Expect(k8s.Delete(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "stray", Namespace: ns}})).To(Succeed())
		live = waitFor(func(sg *v1alpha1.ServiceGraph) bool {
			return condition(sg, v1alpha1.ConditionCoverage).Status == metav1.ConditionTrue
		})
		Expect(live.Status.Coverage.CoveredPods).To(BeEquivalentTo(4))
		Expect(live.Status.Coverage.UncoveredPods).To(BeZero())
	})
})

// positions maps each entry of an ordered list to its first index.
func positions(order []string) map[string]int {
	pos := map[string]int{}
	for i, o := range order {
		if _, seen := pos[o]; !seen {
			pos[o] = i
		}
	}
	return pos
}
