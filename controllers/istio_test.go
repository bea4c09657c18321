package controllers_test

import (
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kstatus "sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/test/testenv"
)

// A cluster without Istio: its own control plane, since the suite's has Istio's CRDs installed.
var _ = Describe("ServiceGraph reconciler without Istio", Ordered, func() {
	var (
		ctx    = context.Background()
		noMesh *envtest.Environment
		c      client.Client
	)
	BeforeAll(func() { c, noMesh = startOwnControlPlane(false) })

	It("is Ready with mesh None: NetworkPolicies only, and the conditions say so", func() {
		ns := newNamespace(ctx, c)
		sg := seedGraph(ns)
		sg.Spec.Mesh = v1alpha1.MeshNone
		Expect(c.Create(ctx, sg)).To(Succeed())
		sg = waitGraph(ctx, c, ns, "shop", readyAtCurrentGeneration)
		Expect(condition(sg, v1alpha1.ConditionReady).Message).To(ContainSubstring("spec.mesh is None: NetworkPolicies only"))
		Expect(condition(sg, v1alpha1.ConditionMTLSReady).Reason).To(Equal(v1alpha1.ReasonMeshNone))
		Expect(condition(sg, v1alpha1.ConditionAuthorizationReady).Reason).To(Equal(v1alpha1.ReasonMeshNone))
		Expect(kstatusOf(sg)).To(Equal(kstatus.CurrentStatus))
		Expect(sg.Status.Mesh).To(Equal(v1alpha1.MeshNone))
		Expect(sg.Status.MTLS).To(BeEmpty())
		Expect(sg.Status.Counts).To(Equal([]v1alpha1.KindCount{{Group: "networking.k8s.io", Kind: "NetworkPolicy", Count: 5}}))
	})

	It("applies the NetworkPolicies, says IstioNotInstalled, and converges once Istio's CRDs appear", func() {
		ns := newNamespace(ctx, c)
		Expect(c.Create(ctx, seedGraph(ns))).To(Succeed())
		var sg *v1alpha1.ServiceGraph
		Eventually(func() string {
			sg = getGraph(ctx, c, ns, "shop")
			return condition(sg, v1alpha1.ConditionMTLSReady).Reason
		}, timeout, poll).Should(Equal(v1alpha1.ReasonIstioNotInstalled))
		Expect(condition(sg, v1alpha1.ConditionAuthorizationReady).Reason).To(Equal(v1alpha1.ReasonIstioNotInstalled))
		Expect(condition(sg, v1alpha1.ConditionReady).Status).To(Equal(metav1.ConditionFalse), "STRICT mTLS is asked for")
		Expect(condition(sg, v1alpha1.ConditionReady).Reason).To(Equal(v1alpha1.ReasonIstioNotInstalled))
		Expect(condition(sg, v1alpha1.ConditionNetworkPoliciesReady).Status).To(Equal(metav1.ConditionTrue))
		Expect(condition(sg, v1alpha1.ConditionReconciling).Status).To(Equal(metav1.ConditionTrue))
		Expect(kstatusOf(sg)).To(Equal(kstatus.InProgressStatus))
		Expect(sg.Status.Counts).To(Equal([]v1alpha1.KindCount{{Group: "networking.k8s.io", Kind: "NetworkPolicy", Count: 5}}),
			"no istiod egress rule and no Istio kind without Istio")

		istio, err := testenv.IstioCRDs()
		Expect(err).NotTo(HaveOccurred())
		_, err = envtest.InstallCRDs(noMesh.Config, envtest.CRDInstallOptions{Paths: []string{istio}})
		Expect(err).NotTo(HaveOccurred())

		// No restart: the operator notices the API on its next look and starts watching it.
		Eventually(func() bool { return readyAtCurrentGeneration(getGraph(ctx, c, ns, "shop")) }, 60*time.Second, poll).Should(BeTrue())
		sg = getGraph(ctx, c, ns, "shop")
		Expect(sg.Status.Counts).To(Equal(seedCounts))
		Expect(refs(generated(ctx, c, ns))).To(Equal(refs(compiled(sg))))
	})
})
