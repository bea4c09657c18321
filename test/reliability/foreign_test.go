package reliability

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
)

// kubectlApply writes a manifest to a file and runs kubectl apply on it with the given flags, as
// a person at a terminal would.
func kubectlApply(manifest string, flags ...string) string {
	GinkgoHelper()
	file := filepath.Join(GinkgoT().TempDir(), "manifest.yaml")
	Expect(os.WriteFile(file, []byte(manifest), 0o600)).To(Succeed())
	out, err := cluster.Kubectl(ctx, append([]string{"apply", "-f", file}, flags...)...)
	Expect(err).NotTo(HaveOccurred())
	return out
}

var _ = Describe("Someone else's apply", func() {
	It("reverts a forced server-side apply to an owned object, and leaves a foreign object under a generated name alone, reporting a conflict", func() {
		ns := newNamespace("foreign")
		cleanupGraphs(ns)
		startManager(managerOptions{namespaces: []string{ns}, recheck: time.Second})
		sg := seedGraph(ns)
		Expect(k8s.Create(ctx, sg)).To(Succeed())
		waitExactly(sg, timeout)

		// A person takes the operator's fields of shop-svc-api with a forced server-side apply that
		// opens the api service to every pod; the operator takes them back.
		api := &networkingv1.NetworkPolicy{}
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "shop-svc-api"}, api)).To(Succeed())
		out := kubectlApply(fmt.Sprintf(`apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: shop-svc-api, namespace: %s}
spec:
  podSelector: {matchLabels: {app: api}}
  ingress: [{}]
`, ns), "--server-side", "--force-conflicts")
		Expect(out).To(ContainSubstring("serverside-applied"))
		waitExactly(sg, timeout)
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(api), api)).To(Succeed())
		Expect(api.Generation).To(BeNumerically(">=", 3), "created, taken by kubectl, taken back")

		// A person's own policy sits under the name the operator would generate for a new service.
		kubectlApply(fmt.Sprintf(`apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: shop-svc-cache, namespace: %s, labels: {team: platform}}
spec:
  podSelector: {matchLabels: {app: cache}}
  ingress: [{from: [{podSelector: {matchLabels: {app: backup}}}]}]
`, ns))
		foreign := &networkingv1.NetworkPolicy{}
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "shop-svc-cache"}, foreign)).To(Succeed())
		sg.Spec.Services = append(sg.Spec.Services, v1alpha1.Service{Name: "cache"})
		sg.Spec.Edges = append(sg.Spec.Edges, "api->cache:6379")
		sg = updateSpec(sg, sg.Spec)

		Eventually(func(g Gomega) {
			live := getGraph(ns, "shop")
			ready := condition(live, v1alpha1.ConditionReady)
			g.Expect(ready.ObservedGeneration).To(Equal(live.Generation))
			g.Expect(ready.Status).To(BeEquivalentTo("False"))
			g.Expect(ready.Reason).To(Equal(v1alpha1.ReasonConflict))
			g.Expect(ready.Message).To(ContainSubstring("NetworkPolicy/shop-svc-cache"))
			g.Expect(condition(live, v1alpha1.ConditionStalled).Status).To(BeEquivalentTo("True"))
		}, timeout, poll).Should(Succeed())
		// Left alone through several re-checks (one a second): not adopted, not changed.
		Consistently(func(g Gomega) {
			now := &networkingv1.NetworkPolicy{}
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(foreign), now)).To(Succeed())
			g.Expect(now.ResourceVersion).To(Equal(foreign.ResourceVersion))
			g.Expect(now.OwnerReferences).To(BeEmpty())
		}, 3*time.Second, 200*time.Millisecond).Should(Succeed())

		// Once the person removes it, the graph converges.
		Expect(k8s.Delete(ctx, foreign)).To(Succeed())
		waitExactly(sg, timeout)
	})
})
