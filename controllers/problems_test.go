package controllers_test

import (
	"context"
	"errors"
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
)

// Specs of the reconciler facing what it must not fix by force: bad specs, other graphs, foreign
// objects, refusals and Services that contradict the graph.
var _ = Describe("ServiceGraph reconciler facing problems", func() {
	var (
		ctx context.Context
		ns  string
		e   *specEnv
	)
	BeforeEach(func() {
		e = newSpecEnv()
		ctx, ns = e.ctx, e.ns
	})

	It("keeps the last good policies untouched when the spec becomes invalid, and converges once fixed", func() {
		sg := seedGraph(ns)
		Expect(k8s.Create(ctx, sg)).To(Succeed())
		e.waitReady("shop")
		e.waitConverged(sg)
		good := snapshot(ctx, k8s, ns)

		live := getGraph(ctx, k8s, ns, "shop")
		live.Spec.Edges = []string{"web→api:8080", "web→ghost:80", "api→api:9090", "api→database:5432data"}
		Expect(k8s.Update(ctx, live)).To(Succeed())
		bad := e.waitReason("shop", v1alpha1.ReasonInvalidSpec)
		Expect(condition(bad, v1alpha1.ConditionReady).Status).To(Equal(metav1.ConditionFalse))
		Expect(condition(bad, v1alpha1.ConditionStalled).Status).To(Equal(metav1.ConditionTrue))
		Expect(condition(bad, v1alpha1.ConditionReconciling).Type).To(BeEmpty())
		msg := condition(bad, v1alpha1.ConditionReady).Message
		Expect(msg).To(ContainSubstring("web→ghost:80"))
		Expect(msg).To(ContainSubstring("api→api:9090"))
		// The admission check cannot afford a regular expression over every edge (CEL's cost budget),
		// so a forgotten "/" is refused here, where status and the CLI say what was meant.
		Expect(msg).To(ContainSubstring(`port "5432data": did you mean 5432/data?`))
		Expect(bad.Status.ObservedGeneration).To(Equal(bad.Generation))
		Expect(kstatusOf(bad)).To(Equal(kstatus.FailedStatus))
		Eventually(func() []string { return eventReasons(ctx, k8s, ns, "shop") }, timeout, poll).Should(ContainElement("InvalidSpec"))
		Consistently(func() map[v1alpha1.ObjectReference]string { return snapshot(ctx, k8s, ns) }, 2*time.Second, poll).Should(Equal(good))

		live = getGraph(ctx, k8s, ns, "shop")
		live.Spec.Edges = []string{"web→api:8080", "api→database:5432/data", "web→database:5432"}
		Expect(k8s.Update(ctx, live)).To(Succeed())
		e.waitReady("shop")
		e.waitConverged(live)
		Expect(condition(getGraph(ctx, k8s, ns, "shop"), v1alpha1.ConditionStalled).Type).To(BeEmpty())
	})

	It("lets only the oldest graph of a namespace generate policies, and hands over when it goes", func() {
		Expect(k8s.Create(ctx, seedGraph(ns))).To(Succeed())
		e.waitReady("shop")
		second := seedGraph(ns)
		second.Name = "shop-two"
		second.Spec.Edges = []string{"web→database:5432"}
		Expect(k8s.Create(ctx, second)).To(Succeed())
		loser := e.waitReason("shop-two", v1alpha1.ReasonConflict)
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
		e.waitReady("shop-two")
		e.waitConverged(second)
	})

	It("leaves a foreign object under a generated name alone and reports the conflict", func() {
		foreign := &networkingv1.NetworkPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "shop-svc-api", Namespace: ns},
			Spec:       networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}},
		}
		Expect(k8s.Create(ctx, foreign)).To(Succeed())
		Expect(k8s.Create(ctx, seedGraph(ns))).To(Succeed())
		sg := e.waitReason("shop", v1alpha1.ReasonConflict)
		Expect(condition(sg, v1alpha1.ConditionNetworkPoliciesReady).Message).To(ContainSubstring("NetworkPolicy/shop-svc-api"))
		Expect(condition(sg, v1alpha1.ConditionStalled).Status).To(Equal(metav1.ConditionTrue))
		var still networkingv1.NetworkPolicy
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(foreign), &still)).To(Succeed())
		Expect(still.ResourceVersion).To(Equal(foreign.ResourceVersion))
		Expect(still.OwnerReferences).To(BeEmpty())
		// Default-deny waits: applying it without every allow rule would cut live traffic.
		Expect(generated(ctx, k8s, ns)).NotTo(HaveKey(ref("NetworkPolicy", "shop-default-deny")))

		Expect(k8s.Delete(ctx, foreign)).To(Succeed())
		e.waitReady("shop")
		e.waitConverged(seedGraph(ns))
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
		sg := e.waitReason("shop", v1alpha1.ReasonRejected)
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
		sg := e.waitReason("shop", v1alpha1.ReasonProtocolMismatch)
		Expect(condition(sg, v1alpha1.ConditionReady).Message).To(ContainSubstring(
			"Service " + ns + "/database port 5432 (tcp-postgres) declares TCP (its name tcp-postgres)"))
		Expect(condition(sg, v1alpha1.ConditionAuthorizationReady).Reason).To(Equal(v1alpha1.ReasonProtocolMismatch))
		Expect(condition(sg, v1alpha1.ConditionStalled).Status).To(Equal(metav1.ConditionTrue))
		Expect(kstatusOf(sg)).To(Equal(kstatus.FailedStatus))
		e.waitConverged(sg) // the policies are applied as declared all the same
		Eventually(func() []string { return eventReasons(ctx, k8s, ns, "shop") }, timeout, poll).Should(ContainElement("ProtocolMismatch"))

		// Renaming the port is a change to the Service, not to the graph: the Service watch sees it.
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(database), database)).To(Succeed())
		database.Spec.Ports[0].Name = "http-data"
		Expect(k8s.Update(ctx, database)).To(Succeed())
		e.waitReady("shop")
	})

	It("reports a namespace-wide PeerAuthentication owned by someone else as a conflict", func() {
		foreign := &securityv1.PeerAuthentication{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: ns}}
		Expect(k8s.Create(ctx, foreign)).To(Succeed())
		Expect(k8s.Create(ctx, seedGraph(ns))).To(Succeed())
		sg := e.waitReason("shop", v1alpha1.ReasonConflict)
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

	// Each mistake gets one message that says what to write instead, and nothing that follows
	// from it.
	It("refuses mistakes in selectors and external peers at admission with one exact message each", func() {
		withExternal := func(x v1alpha1.External) func(*v1alpha1.ServiceGraph) {
			return func(sg *v1alpha1.ServiceGraph) {
				sg.Spec.External = []v1alpha1.External{x}
				sg.Spec.Edges = append(sg.Spec.Edges, "web->x:443")
			}
		}
		cases := map[string]func(*v1alpha1.ServiceGraph){
			`spec.services[0]: Invalid value: selector.matchExpressions is not supported: Istio workload selectors take matchLabels only`: func(sg *v1alpha1.ServiceGraph) {
				sg.Spec.Services[0].Selector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
					{Key: "tier", Operator: metav1.LabelSelectorOpIn, Values: []string{"web"}}}}
			},
			`spec.external[0]: Invalid value: an external peer is exactly one of cidrs, namespaces, hosts (which may come with cidrs) or kubernetesAPI: true`: withExternal(v1alpha1.External{Name: "x", CIDRs: []string{"10.0.0.0/8"}, KubernetesAPI: true}),
			`spec.external[0]: Invalid value: except needs cidrs`:                           withExternal(v1alpha1.External{Name: "x", Hosts: []string{"a.example.com"}, Except: []string{"10.0.0.0/8"}}),
			`spec.external[0]: Invalid value: unmeshed is for callers: cidrs or namespaces`: withExternal(v1alpha1.External{Name: "x", KubernetesAPI: true, Unmeshed: true}),
			`spec.external[0].namespaces: Invalid value: namespaces takes names or a selector, not both`: withExternal(v1alpha1.External{Name: "x", Namespaces: &v1alpha1.ExternalNamespaces{
				Names: []string{"a"}, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"a": "b"}}}}),
			`spec.external[0].cidrs: Invalid value: cidrs must be IP ranges such as 10.0.0.0/8 or 2001:db8::/32`: withExternal(v1alpha1.External{Name: "x", CIDRs: []string{"10.0.0.0"}}),
		}
		for message, mutate := range cases {
			sg := seedGraph(ns)
			mutate(sg)
			err := k8s.Create(ctx, sg)
			Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%s: %v", message, err)
			var status apierrors.APIStatus
			Expect(errors.As(err, &status)).To(BeTrue())
			causes := status.Status().Details.Causes
			Expect(causes).To(HaveLen(1), "%s: want one message, got %v", message, causes)
			Expect(causes[0].Field + ": " + causes[0].Message).To(Equal(message))
		}
	})
})
