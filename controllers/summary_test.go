package controllers_test

import (
	securityv1beta1 "istio.io/api/security/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/servicegraph/servicegraph-operator/controllers"
)

// The cache keeps generated objects as metadata and a digest of their content (controllers/summary).
var _ = Describe("Generated objects cached as summaries", func() {
	compares := func(by string) float64 {
		return metricValue("servicegraph_spec_compares_total", map[string]string{"by": by})
	}

	It("restore a spec edited under the operator's own field manager, whatever its annotations say", func() {
		e := newSpecEnv()
		sg := seedGraph(e.ns)
		Expect(k8s.Create(e.ctx, sg)).To(Succeed())
		e.waitReady("shop")
		e.waitConverged(sg)

		// A writer posing as the operator: its field manager, the generated labels and annotations
		// kept, and an annotation claiming the object is as desired. Only the spec differs.
		spoof := []client.PatchOption{client.FieldOwner(controllers.FieldOwner)}
		var np networkingv1.NetworkPolicy
		Expect(k8s.Get(e.ctx, client.ObjectKey{Namespace: e.ns, Name: "shop-svc-database"}, &np)).To(Succeed())
		np.Annotations = map[string]string{"servicegraph.io/spec-digest": "as-desired"}
		np.Spec.Ingress[0].Ports[0].Port = new(intstr.FromInt32(1))
		Expect(k8s.Update(e.ctx, &np, &client.UpdateOptions{FieldManager: controllers.FieldOwner})).To(Succeed())

		var pa securityv1.PeerAuthentication
		Expect(k8s.Get(e.ctx, client.ObjectKey{Namespace: e.ns, Name: "shop"}, &pa)).To(Succeed())
		before := pa.DeepCopy()
		pa.Spec.Mtls.Mode = securityv1beta1.PeerAuthentication_MutualTLS_PERMISSIVE
		Expect(k8s.Patch(e.ctx, &pa, client.MergeFrom(before), spoof...)).To(Succeed())

		var ap securityv1.AuthorizationPolicy
		Expect(k8s.Get(e.ctx, client.ObjectKey{Namespace: e.ns, Name: "shop-svc-database"}, &ap)).To(Succeed())
		ap.Spec.Rules[0].To[0].Operation.Paths = []string{"/*"}
		Expect(k8s.Update(e.ctx, &ap, &client.UpdateOptions{FieldManager: controllers.FieldOwner})).To(Succeed())

		e.waitConverged(sg)
	})

	It("compare a converged graph by digest: a resync reads no object in full", func() {
		e := newSpecEnv()
		sg := seedGraph(e.ns)
		Expect(k8s.Create(e.ctx, sg)).To(Succeed())
		e.waitReady("shop")
		e.waitConverged(sg)
		// Whatever the API server filled in (ports' protocols, policy types, Istio's fields), the
		// digest of the desired object must equal the live one's: else every reconcile would
		// read every object.
		read, digest := compares("read"), compares("digest")

		var np networkingv1.NetworkPolicy
		Expect(k8s.Get(e.ctx, client.ObjectKey{Namespace: e.ns, Name: "shop-allow-dns"}, &np)).To(Succeed())
		np.Labels["resync"] = "1" // an event on a generated object reconciles its graph
		Expect(k8s.Update(e.ctx, &np)).To(Succeed())
		Eventually(compares, timeout, poll).WithArguments("digest").Should(BeNumerically(">=", digest+10), "every object compared")
		Expect(compares("read")).To(Equal(read), "objects read in full")
	})
})
