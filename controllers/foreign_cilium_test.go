package controllers_test

import (
	"context"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/cilium"
	"github.com/servicegraph/servicegraph-operator/test/testenv"
)

// A hand-made CiliumNetworkPolicy next to a Cilium graph, on a control plane with Cilium's own
// CRD: Cilium adds up allow rules, so one admitting a stranger widens the graph.
var _ = Describe("Foreign CiliumNetworkPolicies", Ordered, func() {
	var (
		ctx context.Context
		c   client.Client
	)
	BeforeAll(func() {
		ctx = context.Background()
		crds, err := testenv.CiliumCRDs()
		Expect(err).NotTo(HaveOccurred())
		c, _ = startOwnControlPlaneWith(false, func(env *envtest.Environment) {
			env.CRDDirectoryPaths = append(env.CRDDirectoryPaths, crds)
		})
	})

	It("reports a hand-made CiliumNetworkPolicy admitting a stranger as a widening, and clears when it goes", func() {
		ns := newNamespace(ctx, c)
		sg := seedGraph(ns)
		sg.Spec.Mesh = v1alpha1.MeshNone
		sg.Spec.NetworkPolicy = v1alpha1.NetworkPolicyCilium
		Expect(c.Create(ctx, sg)).To(Succeed())
		bypassed := func(status metav1.ConditionStatus) *metav1.Condition {
			sg := waitGraph(ctx, c, ns, "shop", func(sg *v1alpha1.ServiceGraph) bool {
				cond := condition(sg, v1alpha1.ConditionBypassed)
				return cond.ObservedGeneration == sg.Generation && cond.Status == status && readyAtCurrentGeneration(sg)
			})
			cond := condition(sg, v1alpha1.ConditionBypassed)
			return &cond
		}
		bypassed(metav1.ConditionFalse)

		open := &cilium.CiliumNetworkPolicy{}
		Expect(yaml.UnmarshalStrict([]byte("metadata: {name: open-database}\n"+
			"spec: {endpointSelector: {matchLabels: {app: database}}, ingress: [{fromEntities: [all]}]}"), open)).To(Succeed())
		open.Namespace = ns
		Expect(c.Create(ctx, open)).To(Succeed())
		cond := bypassed(metav1.ConditionTrue)
		Expect(cond.Reason).To(Equal(v1alpha1.ReasonWideningPolicies))
		Expect(cond.Message).To(ContainSubstring("CiliumNetworkPolicy " + ns + "/open-database opens another-namespace/any-pod -> " + ns + "/database TCP/5432 at L4"))

		Expect(c.Delete(ctx, open)).To(Succeed())
		Expect(bypassed(metav1.ConditionFalse).Reason).To(Equal(v1alpha1.ReasonNoWideningPolicies))
	})
})
