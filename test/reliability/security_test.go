package reliability

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/test/testenv"
)

// configFile reads a manifest of config/ and returns its YAML documents.
func configFile(path string) []string {
	GinkgoHelper()
	data, err := os.ReadFile(filepath.Join(testenv.Root(), "config", path))
	Expect(err).NotTo(HaveOccurred())
	var docs []string
	for _, doc := range strings.Split("\n"+string(data), "\n---") {
		if strings.TrimSpace(doc) != "" {
			docs = append(docs, doc)
		}
	}
	return docs
}

// role is a ClusterRole (Namespace "") or a Role of config/rbac.
type role struct{ Name, Namespace string }

// ensureRoles creates the ClusterRoles and Roles of a file of config/rbac on the test control plane
// (once each): role.yaml has the ClusterRole and the Role in namespace default that reads the API
// server's EndpointSlice.
func ensureRoles(path string) []role {
	GinkgoHelper()
	var out []role
	for _, doc := range configFile(path) {
		var obj client.Object = &rbacv1.ClusterRole{}
		if strings.Contains(doc, "\nkind: Role\n") {
			obj = &rbacv1.Role{}
		}
		Expect(yaml.UnmarshalStrict([]byte(doc), obj)).To(Succeed())
		if err := k8s.Create(ctx, obj); !apierrors.IsAlreadyExists(err) {
			Expect(err).NotTo(HaveOccurred())
		}
		out = append(out, role{Name: obj.GetName(), Namespace: obj.GetNamespace()})
	}
	return out
}

// bind binds roles to a subject as config/rbac does for the operator: ClusterRoles cluster-wide,
// Roles in their namespace.
func bind(subject rbacv1.Subject, roles ...[]role) {
	GinkgoHelper()
	for _, r := range slices.Concat(roles...) {
		meta := metav1.ObjectMeta{Name: fmt.Sprintf("reliability-%s-%s", strings.ToLower(subject.Name), r.Name), Namespace: r.Namespace}
		var binding client.Object = &rbacv1.ClusterRoleBinding{ObjectMeta: meta, Subjects: []rbacv1.Subject{subject},
			RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: r.Name}}
		if r.Namespace != "" {
			binding = &rbacv1.RoleBinding{ObjectMeta: meta, Subjects: []rbacv1.Subject{subject},
				RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: r.Name}}
		}
		Expect(k8s.Create(ctx, binding)).To(Succeed())
		DeferCleanup(func() { Expect(k8s.Delete(ctx, binding)).To(Succeed()) })
	}
}

// can asks the API server's authorizer whether user may do verb on a resource.
func can(user string, attrs authorizationv1.ResourceAttributes) bool {
	GinkgoHelper()
	review := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: user, Groups: []string{"system:authenticated"}, ResourceAttributes: &attrs,
	}}
	Expect(k8s.Create(ctx, review)).To(Succeed())
	return review.Status.Allowed
}

var _ = Describe("Security", func() {
	It("runs with only the generated ClusterRole: converges, restores drift, writes nowhere but the graph's namespace, and can do nothing else", func() {
		const user = "servicegraph-operator"
		bind(rbacv1.Subject{Kind: rbacv1.UserKind, Name: user}, ensureRoles("rbac/role.yaml"))
		identity, err := cluster.Env.AddUser(envtest.User{Name: user}, &rest.Config{QPS: -1})
		Expect(err).NotTo(HaveOccurred())

		// Proven by the API server's authorizer: no Secrets, no workloads, no RBAC escalation, no CRDs.
		ns, other := newNamespace("shop"), newNamespace("payments")
		cleanupGraphs(ns, other)
		for _, denied := range []authorizationv1.ResourceAttributes{
			{Verb: "get", Resource: "secrets", Namespace: ns},
			{Verb: "list", Resource: "secrets"},
			{Verb: "watch", Resource: "secrets"},
			{Verb: "create", Resource: "pods", Namespace: ns},
			{Verb: "update", Resource: "pods", Namespace: ns},
			{Verb: "patch", Resource: "pods", Namespace: ns},
			{Verb: "delete", Resource: "pods", Namespace: ns},
			{Verb: "create", Resource: "pods", Subresource: "exec", Namespace: ns},
			{Verb: "create", Group: "apps", Resource: "deployments", Namespace: ns},
			{Verb: "update", Group: "apps", Resource: "deployments", Namespace: ns},
			{Verb: "patch", Group: "apps", Resource: "deployments", Namespace: ns},
			{Verb: "delete", Group: "apps", Resource: "deployments", Namespace: ns},
			{Verb: "bind", Group: "rbac.authorization.k8s.io", Resource: "clusterroles"},
			{Verb: "escalate", Group: "rbac.authorization.k8s.io", Resource: "clusterroles"},
			{Verb: "bind", Group: "rbac.authorization.k8s.io", Resource: "roles", Namespace: ns},
			{Verb: "escalate", Group: "rbac.authorization.k8s.io", Resource: "roles", Namespace: ns},
			{Verb: "create", Group: "rbac.authorization.k8s.io", Resource: "clusterrolebindings"},
			{Verb: "create", Group: "rbac.authorization.k8s.io", Resource: "rolebindings", Namespace: ns},
			{Verb: "impersonate", Resource: "users"},
			{Verb: "create", Group: "apiextensions.k8s.io", Resource: "customresourcedefinitions"},
			{Verb: "update", Group: "apiextensions.k8s.io", Resource: "customresourcedefinitions"},
			{Verb: "patch", Group: "apiextensions.k8s.io", Resource: "customresourcedefinitions"},
			{Verb: "delete", Group: "apiextensions.k8s.io", Resource: "customresourcedefinitions"},
			{Verb: "update", Group: v1alpha1.GroupVersion.Group, Resource: "servicegraphs", Namespace: ns},
			{Verb: "delete", Group: v1alpha1.GroupVersion.Group, Resource: "servicegraphs", Namespace: ns},
		} {
			Expect(can(user, denied)).To(BeFalse(), "%s may %s %s/%s", user, denied.Verb, denied.Resource, denied.Subresource)
		}
		// Of EndpointSlices, only the API server's own one, in default.
		for _, denied := range []authorizationv1.ResourceAttributes{
			{Verb: "list", Group: "discovery.k8s.io", Resource: "endpointslices"},
			{Verb: "list", Group: "discovery.k8s.io", Resource: "endpointslices", Namespace: "default"},
			{Verb: "get", Group: "discovery.k8s.io", Resource: "endpointslices", Namespace: "default", Name: "other"},
			{Verb: "get", Group: "discovery.k8s.io", Resource: "endpointslices", Namespace: ns, Name: "kubernetes"},
		} {
			Expect(can(user, denied)).To(BeFalse(), "%s may %s endpointslices %s/%s", user, denied.Verb, denied.Namespace, denied.Name)
		}
		// The review is live: what the operator needs is allowed.
		Expect(can(user, authorizationv1.ResourceAttributes{Verb: "patch", Group: "networking.k8s.io", Resource: "networkpolicies", Namespace: ns})).To(BeTrue())
		Expect(can(user, authorizationv1.ResourceAttributes{Verb: "watch", Group: "discovery.k8s.io", Resource: "endpointslices", Namespace: "default", Name: "kubernetes"})).To(BeTrue())

		// The seed scenario plus cross-namespace edges both ways, reconciled by a cluster-wide
		// manager under that identity alone.
		writes := &testenv.RequestLog{}
		startManager(managerOptions{config: identity.Config(), writes: writes})
		sg := seedGraph(ns)
		sg.Spec.Services = append(sg.Spec.Services,
			v1alpha1.Service{Name: "gateway", Namespace: other}, v1alpha1.Service{Name: "checkout", Namespace: other})
		sg.Spec.External = []v1alpha1.External{{Name: "kubernetes", KubernetesAPI: true}}
		sg.Spec.Edges = append(sg.Spec.Edges, "api->"+other+"/gateway:443", "checkout->web:8080", "api->kubernetes:443")
		Expect(k8s.Create(ctx, sg)).To(Succeed())
		waitExactly(sg, timeout)
		// The API server's address, read from its EndpointSlice under the narrow Role.
		apiServer := &discoveryv1.EndpointSlice{}
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: "default", Name: "kubernetes"}, apiServer)).To(Succeed())
		Eventually(func() []networkingv1.NetworkPolicyEgressRule {
			np := &networkingv1.NetworkPolicy{}
			Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "shop-svc-api"}, np)).To(Succeed())
			return np.Spec.Egress
		}, timeout, poll).Should(ContainElement(HaveField("To", ContainElement(HaveField("IPBlock.CIDR", apiServer.Endpoints[0].Addresses[0]+"/32")))))

		// Drift is restored under the same identity: a deletion and an edit.
		deny := &networkingv1.NetworkPolicy{}
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "shop-default-deny"}, deny)).To(Succeed())
		Expect(k8s.Delete(ctx, deny)).To(Succeed())
		api := &networkingv1.NetworkPolicy{}
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "shop-svc-api"}, api)).To(Succeed())
		api.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{}}
		Expect(k8s.Update(ctx, api)).To(Succeed())
		waitExactly(sg, timeout)

		// Namespace isolation: every write the manager made went to the graph's namespace.
		all := writes.Writes()
		Expect(all).NotTo(BeEmpty())
		for _, w := range all {
			Expect(w.Namespace).To(Equal(ns), "a write outside the graph's namespace: %s %s", w.Verb, w.Target())
		}
		var foreign networkingv1.NetworkPolicyList
		Expect(k8s.List(ctx, &foreign, client.InNamespace(other))).To(Succeed())
		Expect(foreign.Items).To(BeEmpty())
		// The cross-namespace edges are rules in the graph's namespace only.
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(api), api)).To(Succeed())
		Expect(api.Spec.Egress).To(ContainElement(HaveField("To", ContainElement(HaveField("NamespaceSelector.MatchLabels",
			HaveKeyWithValue("kubernetes.io/metadata.name", other))))))
		AddReportEntry("least privilege", fmt.Sprintf("%d writes, all in %s", len(all), ns))
	})

	It("has a manager Deployment that the restricted Pod Security Standard admits", func() {
		ns := newNamespace("operator-system")
		Expect(kubectlOK("label", "namespace", ns, "pod-security.kubernetes.io/enforce=restricted",
			"pod-security.kubernetes.io/warn=restricted")).To(ContainSubstring("labeled"))
		var deployment *appsv1.Deployment
		for _, doc := range configFile("manager/manager.yaml") {
			if strings.Contains(doc, "kind: Deployment") {
				deployment = &appsv1.Deployment{}
				Expect(yaml.UnmarshalStrict([]byte(doc), deployment)).To(Succeed())
			}
		}
		Expect(deployment).NotTo(BeNil())
		deployment.Namespace = ns
		pod := &corev1.Pod{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
			ObjectMeta: metav1.ObjectMeta{Name: "manager", Namespace: ns, Labels: deployment.Spec.Template.Labels},
			Spec:       deployment.Spec.Template.Spec,
		}
		// Pod Security enforces on pods and only warns on workloads, so both are checked: the
		// Deployment is accepted without a warning, and a pod of its template is admitted.
		out := kubectlOK("create", "--dry-run=server", "-f", manifest(deployment))
		Expect(out).To(ContainSubstring("created (server dry run)"))
		Expect(out).NotTo(ContainSubstring("PodSecurity"))
		Expect(kubectlOK("create", "--dry-run=server", "-f", manifest(pod))).To(ContainSubstring("created (server dry run)"))

		// The check is live: the same pod made privileged is refused, and its Deployment warned about.
		privileged := pod.DeepCopy()
		privileged.Spec.Containers[0].SecurityContext.Privileged = new(true)
		privileged.Spec.Containers[0].SecurityContext.AllowPrivilegeEscalation = new(true)
		out, err := cluster.Kubectl(ctx, "create", "--dry-run=server", "-f", manifest(privileged))
		Expect(err).To(HaveOccurred())
		Expect(out).To(ContainSubstring(`violates PodSecurity "restricted:latest"`))
		bad := deployment.DeepCopy()
		bad.Spec.Template.Spec = privileged.Spec
		Expect(kubectlOK("create", "--dry-run=server", "-f", manifest(bad))).To(ContainSubstring(`would violate PodSecurity "restricted:latest"`))
	})

	It("serves metrics over HTTPS to authorized scrapers only", func() {
		// The manager runs under an identity with exactly the deployed ClusterRoles, so the test
		// also proves that metrics-auth-role is enough to check scrapers' tokens.
		const user = "servicegraph-operator-metrics"
		bind(rbacv1.Subject{Kind: rbacv1.UserKind, Name: user},
			ensureRoles("rbac/role.yaml"), ensureRoles("rbac/metrics_auth_role.yaml"))
		kubeconfig, err := cluster.KubeconfigFor(envtest.User{Name: user})
		Expect(err).NotTo(HaveOccurred())
		port, err := testenv.FreePort()
		Expect(err).NotTo(HaveOccurred())
		log := newProcessLog()
		p := startProcess(log, "--kubeconfig="+kubeconfig, fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", port))
		waitHealthy(p.ProbePort)

		// Prometheus's ServiceAccount, bound to metrics-reader, and one that is not.
		ns := newNamespace("monitoring")
		token := func(name string) string {
			sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}
			Expect(k8s.Create(ctx, sa)).To(Succeed())
			tr, err := kube.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authenticationv1.TokenRequest{
				Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: new(int64(600))}}, metav1.CreateOptions{})
			Expect(err).NotTo(HaveOccurred())
			return tr.Status.Token
		}
		prometheus, stranger := token("prometheus"), token("stranger")
		bind(rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: "prometheus", Namespace: ns}, ensureRoles("rbac/metrics_reader_role.yaml"))

		// The endpoint's certificate is self-signed; what is checked here is who may read it.
		httpClient := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: true}}
		scrape := func(bearer string) (int, string, string) {
			req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("https://127.0.0.1:%d/metrics", port), nil)
			Expect(err).NotTo(HaveOccurred())
			if bearer != "" {
				req.Header.Set("Authorization", "Bearer "+bearer)
			}
			resp, err := httpClient.Do(req)
			if err != nil {
				return 0, "", err.Error()
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, resp.Proto, string(body)
		}
		Eventually(func() int { code, _, _ := scrape(""); return code }, timeout, poll).Should(Equal(http.StatusUnauthorized))
		code, _, _ := scrape(stranger)
		Expect(code).To(Equal(http.StatusForbidden), "a token without metrics-reader")
		// RBAC bindings take effect through the authorizer's cache: poll.
		Eventually(func() int { code, _, _ := scrape(prometheus); return code }, timeout, poll).Should(Equal(http.StatusOK))
		code, proto, body := scrape(prometheus)
		Expect(code).To(Equal(http.StatusOK))
		Expect(body).To(ContainSubstring("controller_runtime_reconcile_total"))
		Expect(proto).To(Equal("HTTP/1.1"), "HTTP/2 stays off (Rapid Reset)")
		Expect(p.Exited()).To(BeFalse(), "%s", log)
	})
})

// manifest writes an object to a YAML file for kubectl.
func manifest(obj client.Object) string {
	GinkgoHelper()
	gvk, err := apiutil.GVKForObject(obj, k8s.Scheme())
	Expect(err).NotTo(HaveOccurred())
	obj.GetObjectKind().SetGroupVersionKind(gvk)
	data, err := yaml.Marshal(obj)
	Expect(err).NotTo(HaveOccurred())
	file := filepath.Join(GinkgoT().TempDir(), strings.ToLower(gvk.Kind)+".yaml")
	Expect(os.WriteFile(file, data, 0o600)).To(Succeed())
	return file
}

// kubectlOK runs kubectl and returns its output, failing the spec on an error.
func kubectlOK(args ...string) string {
	GinkgoHelper()
	out, err := cluster.Kubectl(ctx, args...)
	Expect(err).NotTo(HaveOccurred())
	return out
}
