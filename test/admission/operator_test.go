package admission

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/servicegraph/servicegraph-operator/test/testenv"
)

var _ = Describe("The operator in an enforced namespace", Ordered, func() {
	var log *testenv.Log

	BeforeAll(func() {
		By("installing the operator's RBAC exactly as config/default renders it")
		rendered := kubectl(admin, "kustomize", filepath.Join(testenv.Root(), "config", "default"))
		var rbac []string
		for _, doc := range strings.Split(rendered, "\n---\n") {
			var head struct{ Kind string }
			Expect(yaml.Unmarshal([]byte(doc), &head)).To(Succeed())
			switch head.Kind {
			case "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding":
				rbac = append(rbac, doc)
			}
		}
		Expect(rbac).NotTo(BeEmpty())
		mustAdmit(admin, strings.Join(rbac, "\n---\n"))
		Expect(kubectl(admin, "auth", "can-i", "create", "networkpolicies", "-n", enforced, "--as="+operatorUser)).To(HavePrefix("yes"))

		By("running the manager binary authenticated as the operator's ServiceAccount, without leader election")
		operator, err := cluster.AddUser(operatorUser, "system:serviceaccounts", "system:serviceaccounts:servicegraph-system", "system:authenticated")
		Expect(err).NotTo(HaveOccurred())
		Expect(kubectl(operator, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}")).To(Equal(operatorUser))
		log = &testenv.Log{Also: GinkgoWriter}
		p, err := cluster.StartManagerProcess(manager, log, "--kubeconfig", operator.Kubeconfig)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(p.Stop)
		Eventually(func() (int, error) {
			resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", p.ProbePort))
			if err != nil {
				return 0, err
			}
			resp.Body.Close()
			return resp.StatusCode, nil
		}, 30*time.Second, 200*time.Millisecond).Should(Equal(http.StatusOK))
	})

	It("converges on the sample graph: every write it makes is admitted", func() {
		kubectl(admin, "apply", "-f", filepath.Join(testenv.Root(), "config", "samples", "policy_v1alpha1_servicegraph.yaml"))
		kubectl(admin, "wait", "--for=condition=Ready", "sg/shop", "-n", enforced, "--timeout=60s")
		Expect(strings.Fields(kubectl(admin, "get", "networkpolicies", "-n", enforced, "-o", "name"))).To(ContainElement("networkpolicy.networking.k8s.io/shop-default-deny"))
		Expect(strings.Fields(kubectl(admin, "get", "authorizationpolicies", "-n", enforced, "-o", "name"))).NotTo(BeEmpty())
		Expect(strings.TrimSpace(kubectl(admin, "get", "peerauthentication", "shop", "-n", enforced, "-o", "jsonpath={.spec.mtls.mode}"))).To(Equal("STRICT"))
		Expect(log.Lines("denied request")).To(BeEmpty())
	})

	It("keeps everyone else from undoing its work: developers and cluster admins alike", func() {
		_, err := alice.Kubectl(ctx, "delete", "networkpolicy", "shop-default-deny", "-n", enforced)
		Expect(err).To(MatchError(ContainSubstring(enforcedMessage("deleting", "NetworkPolicy", enforced, "shop-default-deny"))))
		_, err = alice.Kubectl(ctx, "patch", "networkpolicy", "shop-default-deny", "-n", enforced, "--type=merge", "-p", `{"spec":{"policyTypes":["Egress"]}}`)
		Expect(err).To(MatchError(ContainSubstring(enforcedMessage("changing", "NetworkPolicy", enforced, "shop-default-deny"))))
		_, err = alice.Kubectl(ctx, "delete", "peerauthentication", "shop", "-n", enforced)
		Expect(err).To(MatchError(ContainSubstring(enforcedMessage("deleting", "PeerAuthentication", enforced, "shop"))))
		_, err = admin.Kubectl(ctx, "delete", "networkpolicy", "shop-default-deny", "-n", enforced)
		Expect(err).To(MatchError(ContainSubstring(enforcedMessage("deleting", "NetworkPolicy", enforced, "shop-default-deny"))))
		Expect(kubectl(admin, "get", "networkpolicy", "shop-default-deny", "-n", enforced, "-o", "name")).NotTo(BeEmpty())
	})

	// deleteAndWaitRestored deletes a generated object as u (extra kubectl arguments first) and
	// waits for the operator to create it again.
	deleteAndWaitRestored := func(u *testenv.User, resource, name string, args ...string) {
		uid := kubectl(admin, "get", resource, name, "-n", enforced, "-o", "jsonpath={.metadata.uid}")
		kubectl(u, append(args, "delete", resource, name, "-n", enforced)...)
		Eventually(func() (string, error) {
			return admin.Kubectl(ctx, "get", resource, name, "-n", enforced, "-o", "jsonpath={.metadata.uid}")
		}, 30*time.Second, 100*time.Millisecond).ShouldNot(Or(BeEmpty(), Equal(uid)))
	}

	It("restores what the break-glass group deleted", func() {
		deleteAndWaitRestored(bob, "networkpolicy", "shop-default-deny")
		deleteAndWaitRestored(admin, "peerauthentication", "shop", "--as=admin", "--as-group=system:masters", "--as-group="+breakGlass)
		kubectl(admin, "wait", "--for=condition=Ready", "sg/shop", "-n", enforced, "--timeout=30s")
	})

	It("lets the garbage collector and the namespace controller delete (and the operator restores)", func() {
		deleteAndWaitRestored(admin, "networkpolicy", "shop-allow-dns", "--as=system:serviceaccount:kube-system:generic-garbage-collector")
		deleteAndWaitRestored(admin, "networkpolicy", "shop-default-deny", "--as=system:serviceaccount:kube-system:namespace-controller")
		Expect(log.Lines("denied request")).To(BeEmpty())
	})
})
