package controllers_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/controllers"
)

// Istio's ambient mode: the data plane read from the namespace and the pods, the waypoint that
// edges with paths or methods need, and the waypoint the operator creates and enrolls Services in.
var _ = Describe("Ambient mode", func() {
	const (
		dataplaneMode  = "istio.io/dataplane-mode"
		useWaypoint    = "istio.io/use-waypoint"
		sidecarStatus  = "sidecar.istio.io/status"
		redirection    = "ambient.istio.io/redirection"
		gatewayNameKey = "gateway.networking.k8s.io/gateway-name"
	)
	var (
		ctx context.Context
		ns  string
		e   *specEnv
	)
	BeforeEach(func() {
		e = newSpecEnv()
		ctx, ns = e.ctx, e.ns
	})

	principal := func(sa string) string { return "cluster.local/ns/" + ns + "/sa/" + sa }
	podPeer := func(labels map[string]string) networkingv1.NetworkPolicyPeer {
		return networkingv1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{MatchLabels: labels}}
	}
	labelNamespace := func(key, value string) {
		GinkgoHelper()
		var n corev1.Namespace
		Expect(k8s.Get(ctx, client.ObjectKey{Name: ns}, &n)).To(Succeed())
		if n.Labels == nil {
			n.Labels = map[string]string{}
		}
		n.Labels[key] = value
		Expect(k8s.Update(ctx, &n)).To(Succeed())
	}
	// pod creates a pod of a service with Istio's marks (envtest runs no kubelet: pods are plain
	// objects); setMarks replaces them, as a re-injection or istio-cni would.
	pod := func(name, app string, annotations map[string]string) {
		GinkgoHelper()
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app": app}, Annotations: annotations},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: app, Image: "registry.example/" + app}}}}
		Expect(k8s.Create(ctx, p)).To(Succeed())
	}
	setMarks := func(name string, annotations map[string]string) {
		GinkgoHelper()
		var p corev1.Pod
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &p)).To(Succeed())
		p.Annotations = annotations
		Expect(k8s.Update(ctx, &p)).To(Succeed())
	}
	service := func(name string, labels map[string]string, port, targetPort int32) *corev1.Service {
		GinkgoHelper()
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": name},
				Ports: []corev1.ServicePort{{Name: "http", Port: port, TargetPort: intstr.FromInt32(targetPort), Protocol: corev1.ProtocolTCP}}}}
		Expect(k8s.Create(ctx, svc)).To(Succeed())
		return svc
	}
	getService := func(name string) *corev1.Service {
		GinkgoHelper()
		var svc corev1.Service
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &svc)).To(Succeed())
		return &svc
	}
	// managers lists the field managers of an object with the fields each owns.
	managers := func(obj client.Object) map[string]string {
		out := map[string]string{}
		for _, m := range obj.GetManagedFields() {
			if m.FieldsV1 != nil {
				out[m.Manager] = string(m.FieldsV1.Raw)
			} else {
				out[m.Manager] = ""
			}
		}
		return out
	}
	authz := func(name string) *securityv1.AuthorizationPolicy {
		GinkgoHelper()
		obj, ok := generated(ctx, k8s, ns)[ref("AuthorizationPolicy", name)]
		Expect(ok).To(BeTrue(), "AuthorizationPolicy %s", name)
		return obj.(*securityv1.AuthorizationPolicy)
	}
	netpol := func(name string) *networkingv1.NetworkPolicy {
		GinkgoHelper()
		obj, ok := generated(ctx, k8s, ns)[ref("NetworkPolicy", name)]
		Expect(ok).To(BeTrue(), "NetworkPolicy %s", name)
		return obj.(*networkingv1.NetworkPolicy)
	}
	// ports lists the numeric ports of a NetworkPolicy rule.
	ports := func(ps []networkingv1.NetworkPolicyPort) []string {
		var out []string
		for _, p := range ps {
			out = append(out, p.Port.String())
		}
		return out
	}
	// hbone tells whether a generated NetworkPolicy opens port 15008 anywhere.
	hbone := func(np *networkingv1.NetworkPolicy) bool {
		for _, r := range np.Spec.Ingress {
			if slices.Contains(ports(r.Ports), "15008") {
				return true
			}
		}
		for _, r := range np.Spec.Egress {
			if slices.Contains(ports(r.Ports), "15008") {
				return true
			}
		}
		return false
	}
	// admits tells whether an AuthorizationPolicy has a rule for the principal.
	admits := func(ap *securityv1.AuthorizationPolicy, p string) bool {
		for _, r := range ap.Spec.Rules {
			for _, f := range r.From {
				if slices.Contains(f.GetSource().GetPrincipals(), p) {
					return true
				}
			}
		}
		return false
	}
	// ingressFrom lists the ports a NetworkPolicy admits from a peer.
	ingressFrom := func(np *networkingv1.NetworkPolicy, peer networkingv1.NetworkPolicyPeer) []string {
		var out []string
		for _, r := range np.Spec.Ingress {
			for _, f := range r.From {
				if jsonEqual(f, peer) {
					out = append(out, ports(r.Ports)...)
				}
			}
		}
		return out
	}
	egressTo := func(np *networkingv1.NetworkPolicy, peer networkingv1.NetworkPolicyPeer) []string {
		var out []string
		for _, r := range np.Spec.Egress {
			for _, t := range r.To {
				if jsonEqual(t, peer) {
					out = append(out, ports(r.Ports)...)
				}
			}
		}
		return out
	}
	// noStaleObjects checks that the live generated objects are exactly those the status lists:
	// what a previous data plane generated and this one does not was pruned.
	noStaleObjects := func(sg *v1alpha1.ServiceGraph) {
		GinkgoHelper()
		Eventually(func() []v1alpha1.ObjectReference { return refs(generated(ctx, k8s, ns)) }, timeout, poll).
			Should(ConsistOf(sg.Status.GeneratedObjects))
	}
	// database path edge: nothing generated lets api reach database other than through a waypoint.
	databaseClosedToAPI := func() {
		GinkgoHelper()
		have := generated(ctx, k8s, ns)
		if obj, ok := have[ref("AuthorizationPolicy", "shop-svc-database")]; ok {
			Expect(admits(obj.(*securityv1.AuthorizationPolicy), principal("api"))).To(BeFalse(), "ztunnel's policy must not admit api: %v", obj)
		}
		if obj, ok := have[ref("AuthorizationPolicy", "shop-wp-database")]; ok {
			Fail("no waypoint policy without a waypoint: " + toJSON(obj))
		}
		if obj, ok := have[ref("NetworkPolicy", "shop-svc-database")]; ok {
			Expect(ingressFrom(obj.(*networkingv1.NetworkPolicy), podPeer(map[string]string{"app": "api"}))).To(BeEmpty(), "database's NetworkPolicy admits api: %v", toJSON(obj))
		}
		Expect(egressTo(netpol("shop-svc-api"), podPeer(map[string]string{"app": "database"}))).To(BeEmpty(), "api's NetworkPolicy lets it out to database")
	}
	waypointReady := func(sg *v1alpha1.ServiceGraph) metav1.Condition {
		return condition(sg, v1alpha1.ConditionWaypointReady)
	}
	coverage := func(sg *v1alpha1.ServiceGraph) map[string]string {
		out := map[string]string{}
		if sg.Status.Coverage != nil {
			for _, s := range sg.Status.Coverage.Services {
				out[s.Name] = s.Dataplane
			}
		}
		return out
	}
	gateway := func(name string) *gatewayv1.Gateway {
		return &gatewayv1.Gateway{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: gatewayv1.GatewaySpec{GatewayClassName: "istio-waypoint",
				Listeners: []gatewayv1.Listener{{Name: "mesh", Port: 15008, Protocol: "HBONE"}}}}
	}
	// giveAddress does what Istio does once a waypoint's pods run: it gives the Gateway an address.
	giveAddress := func(name string) {
		GinkgoHelper()
		Eventually(func() error {
			var gw gatewayv1.Gateway
			if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &gw); err != nil {
				return err
			}
			gw.Status.Addresses = []gatewayv1.GatewayStatusAddress{{Type: new(gatewayv1.IPAddressType), Value: "10.96.0.20"}}
			return k8s.Status().Update(ctx, &gw)
		}, timeout, poll).Should(Succeed())
	}

	It("re-renders and prunes as the namespace goes sidecar, ambient, then mixed", func() {
		injected := map[string]string{sidecarStatus: `{"containers":["istio-proxy"]}`}
		captured := map[string]string{redirection: "enabled"}
		for _, app := range []string{"web", "api", "database"} {
			pod(app+"-1", app, injected)
		}
		service("database", nil, 5432, 5432)
		Expect(k8s.Create(ctx, seedGraph(ns))).To(Succeed())

		By("sidecars: no waypoint objects, no HBONE, no WaypointReady")
		sg := waitGraph(ctx, k8s, ns, "shop", func(sg *v1alpha1.ServiceGraph) bool {
			return readyAtCurrentGeneration(sg) && sg.Status.Dataplane == "sidecar" && sg.Status.Coverage != nil && sg.Status.Coverage.CoveredPods == 3
		})
		Expect(coverage(sg)).To(Equal(map[string]string{"web": "sidecar", "api": "sidecar", "database": "sidecar"}))
		Expect(waypointReady(sg).Type).To(BeEmpty(), "a graph without ambient services reports no waypoint")
		noStaleObjects(sg)
		for r, obj := range generated(ctx, k8s, ns) {
			Expect(r.Name).NotTo(ContainSubstring("-wp-"))
			Expect(r.Name).NotTo(ContainSubstring("waypoint"))
			if np, ok := obj.(*networkingv1.NetworkPolicy); ok {
				Expect(hbone(np)).To(BeFalse(), "no HBONE between sidecars: %v", r)
			}
		}
		db := authz("shop-svc-database")
		Expect(admits(db, principal("api"))).To(BeTrue())
		Expect(db.Spec.Rules[0].To[0].Operation.Paths).To(Equal([]string{"/data"}), "a sidecar enforces the path itself")

		By("ambient: the namespace labelled, the pods captured by istio-cni")
		labelNamespace(dataplaneMode, "ambient")
		for _, app := range []string{"web", "api", "database"} {
			setMarks(app+"-1", captured)
		}
		sg = waitGraph(ctx, k8s, ns, "shop", func(sg *v1alpha1.ServiceGraph) bool {
			return sg.Status.Dataplane == "ambient" && condition(sg, v1alpha1.ConditionReady).Reason == v1alpha1.ReasonWaypointMissing
		})
		Expect(coverage(sg)).To(Equal(map[string]string{"web": "ambient", "api": "ambient", "database": "ambient"}))
		ready := condition(sg, v1alpha1.ConditionReady)
		Expect(ready.Status).To(Equal(metav1.ConditionFalse))
		Expect(ready.ObservedGeneration).To(Equal(sg.Generation))
		wr := waypointReady(sg)
		Expect(wr.Status).To(Equal(metav1.ConditionFalse))
		Expect(wr.Reason).To(Equal(v1alpha1.ReasonWaypointMissing))
		Expect(wr.Message).To(ContainSubstring("database: no waypoint"))
		Expect(wr.Message).NotTo(ContainSubstring("api:"), "api's only edge is layer 4")
		noStaleObjects(sg)
		Expect(sg.Status.GeneratedObjects).NotTo(ContainElement(ref("AuthorizationPolicy", "shop-svc-database")),
			"ztunnel's policy for database has nothing to admit without a waypoint: the sidecar-era policy is pruned")
		databaseClosedToAPI()
		// web -> api is layer 4: ztunnel enforces it, over HBONE too.
		Expect(admits(authz("shop-svc-api"), principal("web"))).To(BeTrue())
		Expect(ingressFrom(netpol("shop-svc-api"), podPeer(map[string]string{"app": "web"}))).To(ConsistOf("8080", "15008"))
		Expect(egressTo(netpol("shop-svc-web"), podPeer(map[string]string{"app": "api"}))).To(ConsistOf("8080", "15008"))

		By("mixed: web gets a sidecar again")
		setMarks("web-1", injected)
		sg = waitGraph(ctx, k8s, ns, "shop", func(sg *v1alpha1.ServiceGraph) bool {
			return sg.Status.Dataplane == "mixed" && coverage(sg)["web"] == "sidecar"
		})
		Expect(coverage(sg)).To(Equal(map[string]string{"web": "sidecar", "api": "ambient", "database": "ambient"}))
		Expect(condition(sg, v1alpha1.ConditionReady).Reason).To(Equal(v1alpha1.ReasonWaypointMissing), "database's path edge still has no waypoint")
		noStaleObjects(sg)
		// A sidecar talks HBONE to an ambient pod: web -> api keeps 15008 on both ends.
		Eventually(func(g Gomega) {
			have := generated(ctx, k8s, ns)
			api := have[ref("NetworkPolicy", "shop-svc-api")].(*networkingv1.NetworkPolicy)
			web := have[ref("NetworkPolicy", "shop-svc-web")].(*networkingv1.NetworkPolicy)
			g.Expect(ingressFrom(api, podPeer(map[string]string{"app": "web"}))).To(ConsistOf("8080", "15008"))
			g.Expect(egressTo(web, podPeer(map[string]string{"app": "api"}))).To(ConsistOf("8080", "15008"))
			g.Expect(admits(have[ref("AuthorizationPolicy", "shop-svc-api")].(*securityv1.AuthorizationPolicy), principal("web"))).To(BeTrue())
		}, timeout, poll).Should(Succeed())
		databaseClosedToAPI()
	})

	It("keeps a path edge closed without a waypoint, and opens it through the user's", func() {
		Expect(k8s.Create(ctx, seedGraph(ns))).To(Succeed())
		Expect(waypointReady(e.waitReady("shop")).Type).To(BeEmpty())

		By("the namespace turns ambient (only its watch tells the operator): no waypoint")
		labelNamespace(dataplaneMode, "ambient")
		sg := e.waitReason("shop", v1alpha1.ReasonWaypointMissing)
		Expect(sg.Status.Dataplane).To(Equal("ambient"))
		wr := waypointReady(sg)
		Expect(wr.Status).To(Equal(metav1.ConditionFalse))
		Expect(wr.Reason).To(Equal(v1alpha1.ReasonWaypointMissing))
		Expect(wr.Message).To(ContainSubstring("stay closed: database: "))
		Expect(condition(sg, v1alpha1.ConditionReady).Message).To(ContainSubstring("database: "))
		databaseClosedToAPI()

		By("database's Service names a waypoint that does not exist yet")
		service("database", map[string]string{useWaypoint: "waypoint"}, 80, 5432)
		sg = waitGraph(ctx, k8s, ns, "shop", func(sg *v1alpha1.ServiceGraph) bool {
			return waypointReadyMessageHas(sg, "database: waypoint waypoint does not exist")
		})
		Expect(condition(sg, v1alpha1.ConditionReady).Reason).To(Equal(v1alpha1.ReasonWaypointMissing))
		databaseClosedToAPI()

		By("the Gateway exists, without an address yet")
		Expect(k8s.Create(ctx, gateway("waypoint"))).To(Succeed())
		sg = waitGraph(ctx, k8s, ns, "shop", func(sg *v1alpha1.ServiceGraph) bool {
			return waypointReadyMessageHas(sg, "database: waypoint waypoint is not ready")
		})
		Expect(condition(sg, v1alpha1.ConditionReady).Reason).To(Equal(v1alpha1.ReasonWaypointMissing))

		By("Istio gives it an address")
		giveAddress("waypoint")
		sg = e.waitReady("shop")
		wr = waypointReady(sg)
		Expect(wr.Status).To(Equal(metav1.ConditionTrue))
		Expect(wr.Reason).To(Equal(v1alpha1.ReasonWaypointReady))
		Expect(wr.Message).To(ContainSubstring("waypoint"))
		Expect(condition(sg, v1alpha1.ConditionReady).Reason).To(Equal(v1alpha1.ReasonReconciled))
		noStaleObjects(sg)
		have := generated(ctx, k8s, ns)
		Expect(have).NotTo(HaveKey(ref("Gateway", "waypoint")), "the user's Gateway is not the operator's")

		wp := authz("shop-wp-database")
		Expect(wp.Spec.Selector).To(BeNil())
		Expect(wp.Spec.TargetRefs).To(HaveLen(1))
		Expect(wp.Spec.TargetRefs[0].Kind).To(Equal("Service"))
		Expect(wp.Spec.TargetRefs[0].Name).To(Equal("database"))
		Expect(wp.Spec.Rules).To(HaveLen(1))
		Expect(wp.Spec.Rules[0].From[0].Source.Principals).To(Equal([]string{principal("api")}))
		Expect(wp.Spec.Rules[0].To[0].Operation.Paths).To(Equal([]string{"/data"}))
		Expect(wp.Spec.Rules[0].To[0].Operation.Ports).To(Equal([]string{"80"}), "the waypoint sees the Service's port")

		deny := authz("shop-waypoint-deny-all")
		Expect(deny.Spec.Rules).To(BeEmpty())
		Expect(deny.Spec.TargetRefs).To(HaveLen(1))
		Expect(deny.Spec.TargetRefs[0].Group).To(Equal("gateway.networking.k8s.io"))
		Expect(deny.Spec.TargetRefs[0].Kind).To(Equal("Gateway"))
		Expect(deny.Spec.TargetRefs[0].Name).To(Equal("waypoint"))

		db := authz("shop-svc-database")
		Expect(db.Spec.Rules).To(HaveLen(1), "ztunnel admits the waypoint only")
		Expect(db.Spec.Rules[0].From[0].Source.Principals).To(Equal([]string{principal("waypoint")}))
		Expect(db.Spec.Rules[0].To[0].Operation.Ports).To(Equal([]string{"5432"}))
		Expect(admits(db, principal("api"))).To(BeFalse(), "api never reaches database's ztunnel directly")

		dbNP := netpol("shop-svc-database")
		Expect(ingressFrom(dbNP, podPeer(map[string]string{gatewayNameKey: "waypoint"}))).To(Equal([]string{"15008"}))
		Expect(ingressFrom(dbNP, podPeer(map[string]string{"app": "api"}))).To(BeEmpty())
		Expect(egressTo(netpol("shop-svc-api"), podPeer(map[string]string{gatewayNameKey: "waypoint"}))).To(Equal([]string{"15008"}))
		wpNP := netpol("shop-waypoint-waypoint")
		Expect(wpNP.Spec.PodSelector.MatchLabels).To(Equal(map[string]string{gatewayNameKey: "waypoint"}))
		Expect(ingressFrom(wpNP, podPeer(map[string]string{"app": "api"}))).To(Equal([]string{"15008"}))
		Expect(egressTo(wpNP, podPeer(map[string]string{"app": "database"}))).To(Equal([]string{"15008"}))
	})

	It("creates its waypoint, owns it, enrolls the Service's label only, and takes both back", func() {
		labelNamespace(dataplaneMode, "ambient")
		dbSvc := service("database", map[string]string{"app": "database", "tier": "data"}, 80, 5432)
		service("legacy", map[string]string{useWaypoint: "waypoint"}, 80, 8080) // the user's, same waypoint
		mark := writes.Mark()
		sg := seedGraph(ns)
		sg.Spec.Waypoint = &v1alpha1.Waypoint{Create: true}
		Expect(k8s.Create(ctx, sg)).To(Succeed())

		By("the Gateway is created and owned by the graph")
		var gw gatewayv1.Gateway
		Eventually(func() error { return k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "waypoint"}, &gw) }, timeout, poll).Should(Succeed())
		live := getGraph(ctx, k8s, ns, "shop")
		Expect(gw.OwnerReferences).To(ConsistOf(metav1.OwnerReference{
			APIVersion: v1alpha1.GroupVersion.String(), Kind: "ServiceGraph", Name: "shop", UID: live.UID,
			Controller: new(true), BlockOwnerDeletion: new(true),
		}))
		Expect(string(gw.Spec.GatewayClassName)).To(Equal("istio-waypoint"))
		Expect(gw.Spec.Listeners).To(HaveLen(1))
		Expect(string(gw.Spec.Listeners[0].Name)).To(Equal("mesh"))
		Expect(gw.Spec.Listeners[0].Port).To(BeEquivalentTo(15008))
		Expect(string(gw.Spec.Listeners[0].Protocol)).To(Equal("HBONE"))
		Expect(gw.Labels).To(HaveKeyWithValue("istio.io/waypoint-for", "service"))

		By("database's Service is labelled, under a field manager of its own, and nothing else changes")
		Eventually(func() map[string]string { return getService("database").Labels }, timeout, poll).
			Should(Equal(map[string]string{"app": "database", "tier": "data", useWaypoint: "waypoint"}))
		svc := getService("database")
		Expect(svc.Spec.Ports).To(Equal(dbSvc.Spec.Ports))
		Expect(svc.Spec.Selector).To(Equal(dbSvc.Spec.Selector))
		owned := managers(svc)
		Expect(owned).To(HaveKey(controllers.WaypointFieldOwner))
		Expect(owned[controllers.WaypointFieldOwner]).To(MatchJSON(`{"f:metadata":{"f:labels":{"f:istio.io/use-waypoint":{}}}}`))
		Expect(owned).NotTo(HaveKey(controllers.FieldOwner), "the Service's other fields are not the operator's")
		Expect(managers(getService("legacy"))).NotTo(HaveKey(controllers.WaypointFieldOwner))

		By("the waypoint gets an address: the path edge opens through it")
		sg = waitGraph(ctx, k8s, ns, "shop", func(sg *v1alpha1.ServiceGraph) bool {
			return waypointReadyMessageHas(sg, "database: waypoint waypoint is not ready")
		})
		Expect(sg.Status.GeneratedObjects).To(ContainElement(ref("Gateway", "waypoint")))
		giveAddress("waypoint")
		sg = e.waitReady("shop")
		Expect(waypointReady(sg).Reason).To(Equal(v1alpha1.ReasonWaypointReady))
		noStaleObjects(sg)
		Expect(generated(ctx, k8s, ns)).To(HaveKey(ref("AuthorizationPolicy", "shop-wp-database")))
		Expect(authz("shop-svc-database").Spec.Rules[0].From[0].Source.Principals).To(Equal([]string{principal("waypoint")}))

		By("only layer-4 edges left: the Gateway is pruned and the label taken back")
		sg = getGraph(ctx, k8s, ns, "shop")
		sg.Spec.Edges = []string{"web→api:8080", "api→database:5432"}
		Expect(k8s.Update(ctx, sg)).To(Succeed())
		sg = waitGraph(ctx, k8s, ns, "shop", func(sg *v1alpha1.ServiceGraph) bool {
			return readyAtCurrentGeneration(sg) && waypointReady(sg).Reason == v1alpha1.ReasonNoWaypointNeeded
		})
		Expect(waypointReady(sg).Status).To(Equal(metav1.ConditionTrue))
		Eventually(func() bool {
			return apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "waypoint"}, &gatewayv1.Gateway{}))
		}, timeout, poll).Should(BeTrue(), "the operator's Gateway is pruned")
		Eventually(func() map[string]string { return getService("database").Labels }, timeout, poll).
			Should(Equal(map[string]string{"app": "database", "tier": "data"}))
		Expect(managers(getService("database"))).NotTo(HaveKey(controllers.WaypointFieldOwner))
		Expect(getService("database").Spec.Ports).To(Equal(dbSvc.Spec.Ports))
		noStaleObjects(sg)
		for r := range generated(ctx, k8s, ns) {
			Expect(r.Name).NotTo(ContainSubstring("-wp-"), "no waypoint policy without layer-7 edges")
			Expect(r.Name).NotTo(ContainSubstring("waypoint"))
		}
		Expect(admits(authz("shop-svc-database"), principal("api"))).To(BeTrue(), "ztunnel enforces the layer-4 edge itself")

		By("the user's label on another Service is never the operator's to remove")
		Consistently(func() map[string]string { return getService("legacy").Labels }, "3s", poll).
			Should(Equal(map[string]string{useWaypoint: "waypoint"}))
		Expect(managers(getService("legacy"))).NotTo(HaveKey(controllers.WaypointFieldOwner))
		var serviceWrites []string
		for _, w := range writes.Since(mark, ns) {
			if w.Resource == "services" {
				serviceWrites = append(serviceWrites, w.Verb+" "+w.Target())
			}
		}
		Expect(serviceWrites).NotTo(ContainElement(ContainSubstring("services/legacy")), "the operator never writes the user's Service")
		Expect(serviceWrites).To(ContainElement("patch services/database"))
	})
})

// waypointReadyMessageHas tells whether a graph's WaypointReady, at its generation, is False with
// the reason WaypointMissing and a message containing s.
func waypointReadyMessageHas(sg *v1alpha1.ServiceGraph, s string) bool {
	c := condition(sg, v1alpha1.ConditionWaypointReady)
	return c.Status == metav1.ConditionFalse && c.Reason == v1alpha1.ReasonWaypointMissing && c.ObservedGeneration == sg.Generation &&
		strings.Contains(c.Message, s)
}

// jsonEqual compares two API values by their JSON form.
func jsonEqual(a, b any) bool { return toJSON(a) == toJSON(b) }

func toJSON(v any) string {
	b, err := json.Marshal(v)
	Expect(err).NotTo(HaveOccurred())
	return string(b)
}
