package controllers_test

import (
	"context"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
)

var _ = Describe("ServiceGraph reconciler with external peers", func() {
	It("applies the peers' rules, the plain-text exceptions, ServiceEntries and the Sidecar, and says where plain text is accepted", func() {
		e := newSpecEnv()
		sg := seedGraph(e.ns)
		sg.Spec.External = []v1alpha1.External{
			{Name: "lb", CIDRs: []string{"203.0.113.0/24"}, Unmeshed: true},
			{Name: "monitoring", Namespaces: &v1alpha1.ExternalNamespaces{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "obs"}}}, Unmeshed: true},
			{Name: "gateway", Namespaces: &v1alpha1.ExternalNamespaces{Names: []string{"istio-ingress"}}},
			{Name: "stripe", Hosts: []string{"api.stripe.com"}},
		}
		sg.Spec.Edges = append(sg.Spec.Edges, "lb->web:8443", "monitoring->api:9090", "gateway->web:8080", "api->stripe:443")
		Expect(k8s.Create(e.ctx, sg)).To(Succeed())
		ready := e.waitReady("shop")
		e.waitConverged(sg)
		Expect(condition(ready, v1alpha1.ConditionMTLSReady).Message).To(HaveSuffix(
			"; plain text accepted from unmeshed callers (spec.external[].unmeshed) on api:9090, web:8443"))
		egress := condition(ready, v1alpha1.ConditionEgressReady)
		Expect(egress.Status).To(Equal(metav1.ConditionTrue))
		Expect(ready.Status.Counts).To(ContainElements(
			v1alpha1.KindCount{Group: "networking.istio.io", Kind: "ServiceEntry", Count: 1},
			v1alpha1.KindCount{Group: "networking.istio.io", Kind: "Sidecar", Count: 1},
			v1alpha1.KindCount{Group: "security.istio.io", Kind: "PeerAuthentication", Count: 3}))

		// The peer goes: its objects and exceptions go with it.
		live := getGraph(e.ctx, k8s, e.ns, "shop")
		live.Spec.External, live.Spec.Edges = nil, seedGraph(e.ns).Spec.Edges
		Expect(k8s.Update(e.ctx, live)).To(Succeed())
		e.waitConverged(live)
		Expect(condition(e.waitReady("shop"), v1alpha1.ConditionMTLSReady).Message).NotTo(ContainSubstring("plain text"))
	})

	It("follows the API server's EndpointSlice: addresses and ports come and go with it", func() {
		// The API server is told not to keep its own EndpointSlice, so that the spec plays the
		// control plane whose addresses change (a control-plane node replaced, a port moved).
		c, _ := startOwnControlPlaneWith(true, func(env *envtest.Environment) {
			env.ControlPlane.GetAPIServer().Configure().Set("endpoint-reconciler-type", "none")
		})
		ctx := context.Background()
		ns := newNamespace(ctx, c)
		sg := seedGraph(ns)
		sg.Spec.External = []v1alpha1.External{{Name: "kubernetes", KubernetesAPI: true}}
		sg.Spec.Edges = append(sg.Spec.Edges, "api->kubernetes:443")
		Expect(c.Create(ctx, sg)).To(Succeed())
		waitGraph(ctx, c, ns, "shop", readyAtCurrentGeneration)

		// No slice yet: no address is guessed, nothing is allowed to the API server.
		Expect(apiServerRule(ctx, c, ns)).To(BeNil())

		slice := &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Name: "kubernetes", Namespace: metav1.NamespaceDefault, Labels: map[string]string{discoveryv1.LabelServiceName: "kubernetes"}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"192.0.2.10"}}},
			Ports:       []discoveryv1.EndpointPort{{Name: new("https"), Port: new(int32(6443)), Protocol: new(corev1.ProtocolTCP)}},
		}
		Expect(c.Create(ctx, slice)).To(Succeed())
		Eventually(func() *networkingv1.NetworkPolicyEgressRule { return apiServerRule(ctx, c, ns) }, timeout, poll).Should(
			Equal(egressTo([]string{"192.0.2.10/32"}, 6443)))

		// A second control-plane node, a new port, and a node that is not ready.
		slice.Endpoints = []discoveryv1.Endpoint{{Addresses: []string{"192.0.2.11"}}, {Addresses: []string{"192.0.2.12"}},
			{Addresses: []string{"192.0.2.13"}, Conditions: discoveryv1.EndpointConditions{Ready: new(false)}}}
		slice.Ports[0].Port = new(int32(16443))
		Expect(c.Update(ctx, slice)).To(Succeed())
		Eventually(func() *networkingv1.NetworkPolicyEgressRule { return apiServerRule(ctx, c, ns) }, timeout, poll).Should(
			Equal(egressTo([]string{"192.0.2.11/32", "192.0.2.12/32"}, 16443)))

		// The slice gone: the rule goes rather than keeping addresses nobody vouches for.
		Expect(c.Delete(ctx, slice)).To(Succeed())
		Eventually(func() *networkingv1.NetworkPolicyEgressRule { return apiServerRule(ctx, c, ns) }, timeout, poll).Should(BeNil())
		Expect(condition(waitGraph(ctx, c, ns, "shop", readyAtCurrentGeneration), v1alpha1.ConditionReady).Status).To(Equal(metav1.ConditionTrue))
	})
})

// apiServerRule is api's egress rule to ipBlocks, nil when it has none.
func apiServerRule(ctx context.Context, c client.Client, ns string) *networkingv1.NetworkPolicyEgressRule {
	GinkgoHelper()
	np := &networkingv1.NetworkPolicy{}
	Expect(c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "shop-svc-api"}, np)).To(Succeed())
	for _, r := range np.Spec.Egress {
		if len(r.To) > 0 && r.To[0].IPBlock != nil {
			return &r
		}
	}
	return nil
}

func egressTo(cidrs []string, port int32) *networkingv1.NetworkPolicyEgressRule {
	r := &networkingv1.NetworkPolicyEgressRule{}
	for _, c := range cidrs {
		r.To = append(r.To, networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: c}})
	}
	r.Ports = []networkingv1.NetworkPolicyPort{{Protocol: new(corev1.ProtocolTCP), Port: new(intstr.FromInt32(port))}}
	return r
}
