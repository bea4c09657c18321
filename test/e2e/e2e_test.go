// Package e2e drives the built manager binary, as a process, with the kubectl built at the API
// server's version, against the test control plane: what a user does by hand.
package e2e

import (
	"context"
	"encoding/json"
	"errors"
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
	. "github.com/onsi/gomega/gstruct"

	"github.com/servicegraph/servicegraph-operator/test/testenv"
)

var (
	cluster *testenv.Cluster
	ctx     = context.Background()
	// pluginDir holds the servicegraph CLI as the kubectl plugin kubectl-servicegraph.
	pluginDir string
)

func TestE2E(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "End-to-end Suite")
}

var _ = BeforeSuite(func() {
	pluginDir = GinkgoT().TempDir()
	manager := filepath.Join(pluginDir, "manager")
	for binary, pkg := range map[string]string{manager: "./cmd/manager", filepath.Join(pluginDir, "kubectl-servicegraph"): "./cmd/servicegraph"} {
		build := exec.Command("go", "build", "-o", binary, pkg)
		build.Dir = testenv.Root()
		out, err := build.CombinedOutput()
		Expect(err).NotTo(HaveOccurred(), string(out))
	}

	var err error
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
		Expect(strings.Fields(strings.Split(table, "\n")[0])).To(Equal([]string{"NAME", "READY", "SERVICES", "EDGES", "MESH", "MTLS", "DATAPLANE", "AGE"}))
		Expect(strings.Fields(strings.Split(table, "\n")[1])[:7]).To(Equal([]string{"shop", "True", "3", "2", "Istio", "STRICT", "sidecar"}))
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

	It("shows in kubectl describe who may call each service", func() {
		out := kubectl("describe", "sg", "shop", "-n", "shop")
		Expect(out).To(MatchRegexp(`(?s)Callers:\s+From:\s+web on 8080\s+Service:\s+api\s+From:\s+api on 5432/data\s+Service:\s+database`))
	})

	It("answers kubectl servicegraph check from the live cluster, foreign policies included", func() {
		pods := filepath.Join(GinkgoT().TempDir(), "pods.yaml")
		var manifest strings.Builder
		for _, p := range []struct {
			name string
			port int
		}{{"web", 8080}, {"api", 8080}, {"database", 5432}} {
			fmt.Fprintf(&manifest, `---
apiVersion: v1
kind: ServiceAccount
metadata: {name: %[1]s, namespace: shop}
---
apiVersion: v1
kind: Pod
metadata: {name: %[1]s-0, namespace: shop, labels: {app: %[1]s}, annotations: {sidecar.istio.io/status: "{}"}}
spec:
  serviceAccountName: %[1]s
  automountServiceAccountToken: false
  containers: [{name: app, image: registry.example/app, ports: [{containerPort: %[2]d}]}]
`, p.name, p.port)
		}
		Expect(os.WriteFile(pods, []byte(manifest.String()), 0o600)).To(Succeed())
		kubectl("apply", "-f", pods)

		check := func(args ...string) (string, int) {
			cmd := exec.Command(testenv.Kubectl(), append([]string{"servicegraph", "check"}, args...)...)
			cmd.Env = append(os.Environ(), "PATH="+pluginDir+string(os.PathListSeparator)+os.Getenv("PATH"), "KUBECONFIG="+cluster.Kubeconfig)
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			if err != nil && !errors.As(err, &exit) {
				Fail(err.Error())
			}
			return string(out), cmd.ProcessState.ExitCode()
		}
		out, code := check("web", "api:8080", "-n", "shop")
		Expect(code).To(Equal(0), out)
		Expect(out).To(ContainSubstring("shop/web -> shop/api TCP/8080: allowed"))
		Expect(out).To(ContainSubstring("NetworkPolicy shop/shop-svc-api spec.ingress[0]"))
		Expect(out).To(ContainSubstring("AuthorizationPolicy shop/shop-svc-api spec.rules[0]"))

		out, code = check("web", "database:5432/data", "-n", "shop")
		Expect(code).To(Equal(1), out)
		Expect(out).To(ContainSubstring("shop/web -> shop/database TCP/5432 GET /data: DENIED"))

		By("a hand-written DENY policy the operator knows nothing of decides, and check names it")
		deny := filepath.Join(GinkgoT().TempDir(), "deny.yaml")
		Expect(os.WriteFile(deny, []byte(`apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: freeze-writes, namespace: shop}
spec:
  selector: {matchLabels: {app: database}}
  action: DENY
  rules: [{to: [{operation: {methods: [POST]}}]}]
`), 0o600)).To(Succeed())
		kubectl("apply", "-f", deny)
		out, code = check("api", "database:5432/data", "-n", "shop", "--method", "GET")
		Expect(code).To(Equal(0), out)
		out, code = check("api", "database:5432/data", "-n", "shop", "--method", "POST", "-o", "json")
		Expect(code).To(Equal(1), out)
		var verdict struct {
			Allowed bool `json:"allowed"`
			Steps   []struct {
				Layer   string `json:"layer"`
				Allowed bool   `json:"allowed"`
				By      string `json:"by"`
			} `json:"steps"`
		}
		Expect(json.Unmarshal([]byte(out), &verdict)).To(Succeed(), out)
		Expect(verdict.Allowed).To(BeFalse())
		Expect(verdict.Steps).To(ContainElement(MatchFields(IgnoreExtras, Fields{
			"Layer": Equal("authorization"), "Allowed": BeFalse(), "By": ContainSubstring("AuthorizationPolicy shop/freeze-writes spec.rules[0]"),
		})))
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
