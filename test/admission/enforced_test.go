package admission

import (
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/servicegraph/servicegraph-operator/test/testenv"
)

var _ = Describe("An enforced namespace", Ordered, func() {
	It("gives the developer the RBAC rights, so what refuses them below is admission", func() {
		for _, resource := range []string{"networkpolicies.networking.k8s.io", "authorizationpolicies.security.istio.io", "peerauthentications.security.istio.io"} {
			for _, verb := range []string{"create", "update", "delete"} {
				Expect(strings.TrimSpace(kubectl(alice, "auth", "can-i", verb, resource, "-n", enforced))).To(Equal("yes"))
			}
		}
	})

	It("refuses a developer's allow-all and harmless policies of every kind, saying what to do instead", func() {
		// Both this policy and the unsafe-NetworkPolicy one refuse an allow-all policy here, and the
		// API server reports the first refusal it meets, in no fixed order: with NP001 ignored,
		// only this one refuses.
		out := mustRefuse(alice, networkPolicy(enforced, "allow-all", allowAll))
		Expect(out).To(Or(ContainSubstring(enforcedMessage("creating", "NetworkPolicy", enforced, "allow-all")), ContainSubstring(np001)))
		out = mustRefuse(alice, networkPolicy(enforced, "allow-all", allowAll, ignore+": NP001"))
		Expect(out).To(ContainSubstring(enforcedMessage("creating", "NetworkPolicy", enforced, "allow-all")))

		out = mustRefuse(alice, networkPolicy(enforced, "api-from-web", fromWeb))
		Expect(out).To(ContainSubstring(enforcedMessage("creating", "NetworkPolicy", enforced, "api-from-web")))
		Expect(out).To(ContainSubstring("forbidden: ValidatingAdmissionPolicy '" + enforcedPolicy + "'"))

		for _, m := range []struct{ manifest, kind string }{
			{authorizationPolicy(enforced, "api", callerRule), "AuthorizationPolicy"},
			{v1beta1(authorizationPolicy(enforced, "api", callerRule)), "AuthorizationPolicy"},
			{peerAuthentication(enforced, "api", strict), "PeerAuthentication"},
			{v1beta1(peerAuthentication(enforced, "api", strict)), "PeerAuthentication"},
		} {
			Expect(mustRefuse(alice, m.manifest)).To(ContainSubstring(enforcedMessage("creating", m.kind, enforced, "api")))
		}
	})

	It("leaves namespaces without the label to the developer: create, change, delete", func() {
		mustAdmit(alice, networkPolicy(free, "api-from-web", fromWeb))
		kubectl(alice, "label", "networkpolicy", "api-from-web", "-n", free, "team=shop")
		mustAdmit(alice, authorizationPolicy(free, "api", callerRule))
		mustAdmit(alice, peerAuthentication(free, "api", strict))
		kubectl(alice, "delete", "networkpolicy", "api-from-web", "-n", free)
	})

	It("admits the break-glass group: create, change, delete", func() {
		mustAdmit(bob, networkPolicy(enforced, "hotfix", fromWeb))
		mustAdmit(bob, v1beta1(authorizationPolicy(enforced, "hotfix", callerRule)))

		By("the developer may neither change nor delete what the break-glass group made")
		_, err := alice.Kubectl(ctx, "label", "networkpolicy", "hotfix", "-n", enforced, "team=shop")
		Expect(err).To(MatchError(ContainSubstring(enforcedMessage("changing", "NetworkPolicy", enforced, "hotfix"))))
		_, err = alice.Kubectl(ctx, "delete", "authorizationpolicy", "hotfix", "-n", enforced)
		Expect(err).To(MatchError(ContainSubstring(enforcedMessage("deleting", "AuthorizationPolicy", enforced, "hotfix"))))

		kubectl(bob, "label", "networkpolicy", "hotfix", "-n", enforced, "team=shop")
		kubectl(bob, "delete", "networkpolicy", "hotfix", "-n", enforced)
		kubectl(bob, "delete", "authorizationpolicy", "hotfix", "-n", enforced)
	})

	It("binds cluster admins too: system:masters writes through the break-glass group", func() {
		out := mustRefuse(admin, networkPolicy(enforced, "admin-hotfix", fromWeb))
		Expect(out).To(ContainSubstring(enforcedMessage("creating", "NetworkPolicy", enforced, "admin-hotfix")))
		mustAdmit(admin, networkPolicy(enforced, "admin-hotfix", fromWeb),
			"--as=admin", "--as-group=system:masters", "--as-group="+breakGlass)
		kubectl(admin, "delete", "networkpolicy", "admin-hotfix", "-n", enforced,
			"--as=admin", "--as-group=system:masters", "--as-group="+breakGlass)
	})

	It("reads the break-glass group from its ConfigMap, and refuses everything without it", func() {
		probe := networkPolicy(enforced, "probe", fromWeb)
		carol, err := cluster.AddUser("carol", "sre-oncall")
		Expect(err).NotTo(HaveOccurred())
		restore := func() {
			kubectl(admin, "apply", "-f", filepath.Join(testenv.Root(), "config", "admission", "params.yaml"))
			Eventually(func() error {
				_, err := bob.Apply(ctx, probe, "--dry-run=server")
				return err
			}, 30*time.Second, 100*time.Millisecond).Should(Succeed())
		}
		DeferCleanup(restore)

		kubectl(admin, "patch", "configmap", "servicegraph-admission", "-n", "servicegraph-system",
			"--type=merge", "-p", `{"data":{"breakGlassGroup":"sre-oncall"}}`)
		Eventually(func() string {
			out, _ := bob.Apply(ctx, probe, "--dry-run=server")
			return out
		}, 30*time.Second, 100*time.Millisecond).Should(ContainSubstring("(break-glass: group sre-oncall)"))
		mustAdmit(carol, probe, "--dry-run=server")

		By("deleting the ConfigMap: parameterNotFoundAction Deny fails closed")
		kubectl(admin, "delete", "configmap", "servicegraph-admission", "-n", "servicegraph-system")
		Eventually(func() error {
			_, err := carol.Apply(ctx, probe, "--dry-run=server")
			return err
		}, 30*time.Second, 100*time.Millisecond).Should(MatchError(ContainSubstring("no params found for policy binding with `Deny` parameterNotFoundAction")))
		By("namespaces the binding does not select are unaffected")
		mustAdmit(alice, networkPolicy(free, "probe", fromWeb), "--dry-run=server")
	})
})
