package controllers_test

import (
	"context"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/compiler"
	networkingv1 "k8s.io/api/networking/v1"
)

// Specs of the Bypassed condition: policies the operator did not generate that let through what
// the graph refuses.
var _ = Describe("ServiceGraph reconciler judging foreign policies", func() {
	var (
		ctx context.Context
		ns  string
		e   *specEnv
	)
	BeforeEach(func() {
		e = newSpecEnv()
		ctx, ns = e.ctx, e.ns
	})

	bypassed := func(check func(*metav1.Condition) bool) *v1alpha1.ServiceGraph {
		return waitGraph(ctx, k8s, ns, "shop", func(sg *v1alpha1.ServiceGraph) bool {
			c := condition(sg, v1alpha1.ConditionBypassed)
			return c.Type != "" && c.ObservedGeneration == sg.Generation && check(&c)
		})
	}
	create := func(doc string, obj client.Object) client.Object {
		GinkgoHelper()
		Expect(yaml.UnmarshalStrict([]byte(doc), obj)).To(Succeed())
		obj.SetNamespace(ns)
		Expect(k8s.Create(ctx, obj)).To(Succeed())
		return obj
	}

	It("says which foreign policy opens what, counts them, keeps Ready, and clears when they go", func() {
		Expect(k8s.Create(ctx, seedGraph(ns))).To(Succeed())
		e.waitReady("shop")
		sg := bypassed(func(c *metav1.Condition) bool { return c.Status == metav1.ConditionFalse })
		Expect(condition(sg, v1alpha1.ConditionBypassed).Reason).To(Equal(v1alpha1.ReasonNoWideningPolicies))

		By("a DENY policy and a policy restating an edge only narrow")
		create("metadata: {name: freeze}\nspec: {selector: {matchLabels: {app: database}}, action: DENY, rules: [{to: [{operation: {methods: [POST]}}]}]}", &securityv1.AuthorizationPolicy{})
		create("metadata: {name: web-to-api}\nspec: {podSelector: {matchLabels: {app: api}}, ingress: [{from: [{podSelector: {matchLabels: {app: web}}}], ports: [{port: 8080}]}]}", &networkingv1.NetworkPolicy{})
		Consistently(func() metav1.ConditionStatus {
			return condition(getGraph(ctx, k8s, ns, "shop"), v1alpha1.ConditionBypassed).Status
		}, "2s", poll).Should(Equal(metav1.ConditionFalse))

		By("an allow-all NetworkPolicy, and one wearing the operator's label without being its")
		allowAll := create("metadata: {name: allow-all}\nspec: {podSelector: {matchLabels: {app: database}}, ingress: [{}]}", &networkingv1.NetworkPolicy{})
		sg = bypassed(func(c *metav1.Condition) bool { return c.Status == metav1.ConditionTrue })
		c := condition(sg, v1alpha1.ConditionBypassed)
		Expect(c.Reason).To(Equal(v1alpha1.ReasonWideningPolicies))
		Expect(c.Message).To(ContainSubstring("NetworkPolicy " + ns + "/allow-all opens another-namespace/any-pod -> " + ns + "/database TCP/5432 at L4"))
		Expect(condition(sg, v1alpha1.ConditionReady).Status).To(Equal(metav1.ConditionTrue), "Ready is about the graph's own objects")
		Eventually(func() []string { return eventReasons(ctx, k8s, ns, "shop") }, timeout, poll).Should(ContainElement("WideningPolicies"))
		Eventually(func() float64 {
			return metricValue("servicegraph_widening_policies", map[string]string{"namespace": ns, "name": "shop"})
		}, timeout, poll).Should(Equal(1.0))

		disguised := create("metadata: {name: shop-svc-extra, labels: {"+compiler.LabelManagedBy+": "+compiler.ManagedByValue+"}}\n"+
			"spec: {podSelector: {matchLabels: {app: web}}, ingress: [{ports: [{port: 9090}]}]}", &networkingv1.NetworkPolicy{})
		sg = bypassed(func(c *metav1.Condition) bool {
			return c.Status == metav1.ConditionTrue && len(c.Message) > 0 && c.Message[0] == '2'
		})
		Expect(condition(sg, v1alpha1.ConditionBypassed).Message).To(ContainSubstring("NetworkPolicy " + ns + "/shop-svc-extra opens"))

		By("an ALLOW policy for anyone and a PERMISSIVE PeerAuthentication for a workload")
		create("metadata: {name: open}\nspec: {selector: {matchLabels: {app: api}}, rules: [{}]}", &securityv1.AuthorizationPolicy{})
		create("metadata: {name: loose}\nspec: {selector: {matchLabels: {app: web}}, mtls: {mode: PERMISSIVE}}", &securityv1.PeerAuthentication{})
		sg = bypassed(func(c *metav1.Condition) bool { return c.Message != "" && c.Message[0] == '4' })
		msg := condition(sg, v1alpha1.ConditionBypassed).Message
		Expect(msg).To(ContainSubstring("AuthorizationPolicy " + ns + "/open opens"))
		Expect(msg).To(ContainSubstring("at authorization"))
		Expect(msg).To(ContainSubstring("PeerAuthentication " + ns + "/loose opens another-namespace/any-pod-without-sidecar (no sidecar) -> " + ns + "/web"))

		By("removing them")
		Expect(k8s.Delete(ctx, &securityv1.AuthorizationPolicy{ObjectMeta: metav1.ObjectMeta{Name: "open", Namespace: ns}})).To(Succeed())
		Expect(k8s.Delete(ctx, &securityv1.PeerAuthentication{ObjectMeta: metav1.ObjectMeta{Name: "loose", Namespace: ns}})).To(Succeed())
		Expect(k8s.Delete(ctx, allowAll)).To(Succeed())
		Expect(k8s.Delete(ctx, disguised)).To(Succeed())
		bypassed(func(c *metav1.Condition) bool { return c.Status == metav1.ConditionFalse })
		Eventually(func() float64 {
			return metricValue("servicegraph_widening_policies", map[string]string{"namespace": ns, "name": "shop"})
		}, timeout, poll).Should(Equal(0.0))
	})

	It("catches an ALLOW that admits a caller by serviceAccounts: a bare name is the policy's namespace", func() {
		Expect(k8s.Create(ctx, seedGraph(ns))).To(Succeed())
		e.waitReady("shop")
		bypassed(func(c *metav1.Condition) bool { return c.Status == metav1.ConditionFalse })

		// web may not call database in the seed graph; this policy lets it, naming web's service
		// account without its namespace (Istio reads it as ns/web).
		create("metadata: {name: web-to-database}\nspec: {selector: {matchLabels: {app: database}}, rules: [{from: [{source: {serviceAccounts: [web]}}]}]}", &securityv1.AuthorizationPolicy{})
		sg := bypassed(func(c *metav1.Condition) bool { return c.Status == metav1.ConditionTrue })
		msg := condition(sg, v1alpha1.ConditionBypassed).Message
		Expect(msg).To(ContainSubstring("AuthorizationPolicy " + ns + "/web-to-database opens"))
		Expect(msg).To(ContainSubstring("-> " + ns + "/database"))
		Expect(msg).To(ContainSubstring("at authorization"))
	})
})
