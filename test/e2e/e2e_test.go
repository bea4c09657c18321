// Package e2e drives the built manager binary, as a process, with the kubectl built at the API
// server's version, against the test control plane: what a user does by hand.
package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/servicegraph/servicegraph-operator/test/testenv"
)

var (
	cluster *testenv.Cluster
	ctx     = context.Background()
)

func TestE2E(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "End-to-end Suite")
}

var _ = BeforeSuite(func() {
	manager := filepath.Join(GinkgoT().TempDir(), "manager")
	build := exec.Command("go", "build", "-o", manager, "./cmd/manager")
	build.Dir = testenv.Root()
	out, err := build.CombinedOutput()
	Expect(err).NotTo(HaveOccurred(), string(out))

	cluster, err = testenv.StartCluster(true)
	Expect(err).NotTo(HaveOccurred())
	probePort, err := cluster.StartManager(manager, GinkgoWriter, "--leader-elect", "--leader-election-namespace=default")
	Expect(err).NotTo(HaveOccurred())
	Eventually(func() (int, error) {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", probePort))
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}, 30*time.Second, 200*time.Millisecond).Should(Equal(http.StatusOK))
})

var _ = AfterSuite(func() {
	if cluster != nil {
		Expect(cluster.Stop()).To(Succeed())
	}
})

func kubectl(args ...string) string {
	out, err := cluster.Kubectl(ctx, args...)
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	return out
}

var _ = Describe("The operator binary driven by kubectl", Ordered, func() {
	It("turns the sample into Ready policies that kubectl wait and kubectl get report", func() {
		kubectl("create", "namespace", "shop")
		start := time.Now()
		kubectl("apply", "--server-side", "-f", filepath.Join(testenv.Root(), "config", "samples", "policy_v1alpha1_servicegraph.yaml"))
		kubectl("wait", "--for=condition=Ready", "sg/shop", "-n", "shop", "--timeout=60s")
		fmt.Fprintf(GinkgoWriter, "apply to Ready: %v\n", time.Since(start))
		AddReportEntry("apply-to-ready", time.Since(start).String())

		table := kubectl("get", "sg", "-n", "shop")
		Expect(strings.Fields(strings.Split(table, "\n")[0])).To(Equal([]string{"NAME", "READY", "SERVICES", "EDGES", "MESH", "MTLS", "AGE"}))
		Expect(strings.Fields(strings.Split(table, "\n")[1])[:6]).To(Equal([]string{"shop", "True", "3", "2", "Istio", "STRICT"}))
		wide := kubectl("get", "sg", "-n", "shop", "-o", "wide")
		Expect(wide).To(ContainSubstring("REASON"))
		Expect(wide).To(ContainSubstring("Reconciled"))

		names := kubectl("get", "networkpolicies", "-n", "shop", "-o", "name")
		Expect(strings.Fields(names)).To(ConsistOf(
			"networkpolicy.networking.k8s.io/shop-allow-dns", "networkpolicy.networking.k8s.io/shop-allow-istiod",
			"networkpolicy.networking.k8s.io/shop-default-deny", "networkpolicy.networking.k8s.io/shop-svc-api",
			"networkpolicy.networking.k8s.io/shop-svc-database", "networkpolicy.networking.k8s.io/shop-svc-web"))
		Expect(strings.Fields(kubectl("get", "authorizationpolicies", "-n", "shop", "-o", "name"))).To(HaveLen(3))
		Expect(strings.TrimSpace(kubectl("get", "peerauthentication", "shop", "-n", "shop", "-o", "jsonpath={.spec.mtls.mode}"))).To(Equal("STRICT"))
	})

	It("restores a policy deleted with kubectl", func() {
		kubectl("delete", "networkpolicy", "shop-default-deny", "-n", "shop")
		Eventually(func() error {
			_, err := cluster.Kubectl(ctx, "get", "networkpolicy", "shop-default-deny", "-n", "shop")
			return err
		}, 30*time.Second, 200*time.Millisecond).Should(Succeed())
	})

	It("explains the API with the field documentation", func() {
		out := kubectl("explain", "servicegraph.spec.edges")
		Expect(out).To(ContainSubstring("FROM->[NAMESPACE/]TO:PORT"))
		Expect(kubectl("get", "sg", "-A")).To(ContainSubstring("shop"))
	})

	It("rejects an invalid ServiceGraph at admission with a readable message", func() {
		bad := filepath.Join(GinkgoT().TempDir(), "bad.yaml")
		Expect(os.WriteFile(bad, []byte(`apiVersion: policy.servicegraph.io/v1alpha1
kind: ServiceGraph
metadata: {name: bad, namespace: shop}
spec:
  services: [{name: web}, {name: api}]
  edges: ["web->api:8080"]
  mtls: DISABLE
`), 0o600)).To(Succeed())
		out, err := cluster.Kubectl(ctx, "apply", "-f", bad)
		Expect(err).To(HaveOccurred())
		Expect(out).To(ContainSubstring(`spec.mtls: Unsupported value: "DISABLE"`))
	})
})
