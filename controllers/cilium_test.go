package controllers_test

import (
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/cilium"
	"github.com/servicegraph/servicegraph-operator/test/testenv"
)

// CiliumNetworkPolicies on a control plane with Cilium's own CRD (from the module test/cilium
// pins): applied, restored, pruned, and switched to and from Kubernetes NetworkPolicies without a
// moment when the namespace has no default-deny; and, where the CRD is missing, Kubernetes
// NetworkPolicies until it appears.
var _ = Describe("CiliumNetworkPolicy output", Ordered, func() {
	var (
		ctx  context.Context
		c    client.Client
		cfg  *envtest.Environment
		log  *testenv.RequestLog
		crds string
	)
	BeforeAll(func() {
		ctx = context.Background()
		var err error
		crds, err = testenv.CiliumCRDs()
		Expect(err).NotTo(HaveOccurred())
		cfg, err = testenv.New(false)
		Expect(err).NotTo(HaveOccurred())
		rest, err := cfg.Start()
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(cfg.Stop)
		c, err = client.New(rest, client.Options{Scheme: k8s.Scheme()})
		Expect(err).NotTo(HaveOccurred())
		log = &testenv.RequestLog{}
		stop, done := startManager(rest, log)
		DeferCleanup(func() {
			stop()
			<-done
		})
	})
	ciliumGraph := func(ns string) *v1alpha1.ServiceGraph {
		sg := seedGraph(ns)
		sg.Spec.Mesh = v1alpha1.MeshNone
		sg.Spec.NetworkPolicy = v1alpha1.NetworkPolicyCilium
		return sg
	}
	kinds := func(ns string) map[string]int {
		out := map[string]int{}
		for r := range generated(ctx, c, ns) {
			out[r.Kind]++
		}
		return out
	}
	// defaultDenyGaps replays the writes since mark and returns the moments at which the namespace
	// had neither default-deny: deleting one before the other exists.
	defaultDenyGaps := func(mark int, ns string, np, cnp bool) []string {
		var gaps []string
		for _, w := range log.Since(mark, ns) {
			if w.Name != "shop-default-deny" {
				continue
			}
			exists := w.Verb != "delete"
			switch w.Resource {
			case "networkpolicies":
				np = exists
			case "ciliumnetworkpolicies":
				cnp = exists
			}
			if !np && !cnp {
				gaps = append(gaps, w.Verb+" "+w.Target())
			}
		}
		return gaps
	}

	It("keeps Kubernetes NetworkPolicies and says so while the cluster does not serve CiliumNetworkPolicy, then switches once it does", func() {
		ns := newNamespace(ctx, c)
		Expect(c.Create(ctx, ciliumGraph(ns))).To(Succeed())
		var sg *v1alpha1.ServiceGraph
		Eventually(func() string {
			sg = getGraph(ctx, c, ns, "shop")
			return condition(sg, v1alpha1.ConditionReady).Reason
		}, timeout, poll).Should(Equal(v1alpha1.ReasonCiliumNotServed))
		Expect(condition(sg, v1alpha1.ConditionNetworkPoliciesReady).Status).To(Equal(metav1.ConditionFalse))
		Expect(condition(sg, v1alpha1.ConditionNetworkPoliciesReady).Message).To(ContainSubstring("cilium.io/v2 CiliumNetworkPolicy API is not served"))
		Expect(condition(sg, v1alpha1.ConditionReady).Message).To(ContainSubstring("Kubernetes NetworkPolicies enforce the graph"))
		Eventually(func() map[string]int { return kinds(ns) }, timeout, poll).Should(Equal(map[string]int{"NetworkPolicy": 5}))

		mark := log.Mark()
		_, err := envtest.InstallCRDs(cfg.Config, envtest.CRDInstallOptions{Paths: []string{crds}})
		Expect(err).NotTo(HaveOccurred())
		// No restart: the operator notices the API on its next look and switches.
		Eventually(func() bool { return readyAtCurrentGeneration(getGraph(ctx, c, ns, "shop")) }, 60*time.Second, poll).Should(BeTrue())
		Eventually(func() map[string]int { return kinds(ns) }, timeout, poll).Should(Equal(map[string]int{"CiliumNetworkPolicy": 5}))
		Expect(defaultDenyGaps(mark, ns, true, false)).To(BeEmpty())
		sg = getGraph(ctx, c, ns, "shop")
		Expect(sg.Status.Counts).To(Equal([]v1alpha1.KindCount{{Group: "cilium.io", Kind: "CiliumNetworkPolicy", Count: 5}}))
		Expect(condition(sg, v1alpha1.ConditionNetworkPoliciesReady).Message).To(Equal("5 CiliumNetworkPolicies applied, default-deny included"))
	})

	It("applies the compiled CiliumNetworkPolicies as the API server stores them, restores drift and prunes", func() {
		ns := newNamespace(ctx, c)
		sg := ciliumGraph(ns)
		sg.Spec.External = []v1alpha1.External{{Name: "stripe", Hosts: []string{"api.stripe.com"}}}
		sg.Spec.Edges = append(sg.Spec.Edges, "api→stripe:443")
		Expect(c.Create(ctx, sg)).To(Succeed())
		want := compiled(sg)
		Eventually(func(g Gomega) {
			have := generated(ctx, c, ns)
			g.Expect(refs(have)).To(Equal(refs(want)))
			for r, obj := range want {
				g.Expect(specOf(have[r])).To(Equal(specOf(obj)), "spec of %v", r)
			}
		}, timeout, poll).Should(Succeed())
		db := &cilium.CiliumNetworkPolicy{}
		Expect(c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "shop-svc-database"}, db)).To(Succeed())
		Expect(db.Spec.Ingress[0].ToPorts[0].Rules.HTTP).To(Equal([]cilium.PortRuleHTTP{{Path: `/data(\?.*)?`}}))
		api := &cilium.CiliumNetworkPolicy{}
		Expect(c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "shop-svc-api"}, api)).To(Succeed())
		Expect(api.Spec.Egress).To(ContainElement(HaveField("ToFQDNs", Equal([]cilium.FQDNSelector{{MatchName: "api.stripe.com"}}))))

		// Quiet once converged: a resync writes nothing.
		sg = waitGraph(ctx, c, ns, "shop", readyAtCurrentGeneration)
		mark := log.Mark()
		sg.Annotations = map[string]string{"resync": "1"}
		Expect(c.Update(ctx, sg)).To(Succeed())
		Consistently(func() int { return len(log.Since(mark, ns)) - countResource(log.Since(mark, ns), "servicegraphs") }, 3*time.Second, poll).Should(BeZero())

		// Drift: a widened rule is put back, a deleted policy comes back.
		db.Spec.Ingress[0].ToPorts[0].Rules = nil
		Expect(c.Update(ctx, db)).To(Succeed())
		Eventually(func() any {
			got := &cilium.CiliumNetworkPolicy{}
			Expect(c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "shop-svc-database"}, got)).To(Succeed())
			return got.Spec.Ingress[0].ToPorts[0].Rules
		}, timeout, poll).ShouldNot(BeNil())
		Expect(c.Delete(ctx, &cilium.CiliumNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "shop-default-deny"}})).To(Succeed())
		Eventually(func() error {
			return c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "shop-default-deny"}, &cilium.CiliumNetworkPolicy{})
		}, timeout, poll).Should(Succeed())

		// Prune: the edge to the database goes, and with it the database's policy.
		sg = getGraph(ctx, c, ns, "shop")
		sg.Spec.Edges = []string{"web→api:8080", "api→stripe:443"}
		Expect(c.Update(ctx, sg)).To(Succeed())
		Eventually(func() map[string]int { return kinds(ns) }, timeout, poll).Should(Equal(map[string]int{"CiliumNetworkPolicy": 4}))
		Expect(c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "shop-svc-database"}, &cilium.CiliumNetworkPolicy{})).NotTo(Succeed())
	})

	It("switches between Kubernetes and Cilium policies with a default-deny in force throughout", func() {
		ns := newNamespace(ctx, c)
		sg := seedGraph(ns)
		sg.Spec.Mesh = v1alpha1.MeshNone
		Expect(c.Create(ctx, sg)).To(Succeed())
		waitGraph(ctx, c, ns, "shop", readyAtCurrentGeneration)
		Expect(kinds(ns)).To(Equal(map[string]int{"NetworkPolicy": 5}))

		mark := log.Mark()
		sg = getGraph(ctx, c, ns, "shop")
		sg.Spec.NetworkPolicy = v1alpha1.NetworkPolicyCilium
		Expect(c.Update(ctx, sg)).To(Succeed())
		waitGraph(ctx, c, ns, "shop", readyAtCurrentGeneration)
		Eventually(func() map[string]int { return kinds(ns) }, timeout, poll).Should(Equal(map[string]int{"CiliumNetworkPolicy": 5}))
		Expect(defaultDenyGaps(mark, ns, true, false)).To(BeEmpty())

		mark = log.Mark()
		sg = getGraph(ctx, c, ns, "shop")
		sg.Spec.NetworkPolicy = v1alpha1.NetworkPolicyKubernetes
		Expect(c.Update(ctx, sg)).To(Succeed())
		waitGraph(ctx, c, ns, "shop", readyAtCurrentGeneration)
		Eventually(func() map[string]int { return kinds(ns) }, timeout, poll).Should(Equal(map[string]int{"NetworkPolicy": 5}))
		Expect(defaultDenyGaps(mark, ns, false, true)).To(BeEmpty())
		var nps networkingv1.NetworkPolicyList
		Expect(c.List(ctx, &nps, client.InNamespace(ns))).To(Succeed())
		Expect(nps.Items).To(HaveLen(5))
	})
})

// countResource counts the requests on one resource.
func countResource(reqs []testenv.Request, resource string) int {
	n := 0
	for _, r := range reqs {
		if r.Resource == resource {
			n++
		}
	}
	return n
}
