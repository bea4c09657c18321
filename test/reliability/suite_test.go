// Package reliability proves the operator safe under faults, hostile input and hostile neighbours
// (issue 8): a crashing manager, a flaky API server, two replicas, a drift storm, someone else's
// objects, a corpus of bad ServiceGraphs, an oversized policy, and least privilege. It runs one
// control plane for every scenario; each scenario starts its own managers and stops them before
// the next begins, so no two managers ever reconcile the same graph unless a scenario wants it.
package reliability

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/servicegraph/servicegraph-operator/controllers"
	"github.com/servicegraph/servicegraph-operator/test/testenv"
)

const (
	timeout = 30 * time.Second
	poll    = 100 * time.Millisecond
)

var (
	cluster *testenv.Cluster
	cfg     *rest.Config // the admin identity
	k8s     client.WithWatch
	kube    kubernetes.Interface
	manager string // the manager binary built from the working tree
	// auditLog is the API server's audit log of every write request: it tells which identity wrote
	// what, on the server's side of the wire.
	auditLog string
)

func TestReliability(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Reliability and Security Suite")
}

var _ = BeforeSuite(func() {
	logf.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	dir := GinkgoT().TempDir()
	var err error
	manager, err = testenv.BuildManager(dir)
	Expect(err).NotTo(HaveOccurred())

	auditLog = filepath.Join(dir, "audit.log")
	policy := filepath.Join(dir, "audit-policy.yaml")
	Expect(os.WriteFile(policy, []byte(auditPolicy), 0o600)).To(Succeed())
	cluster, err = testenv.StartClusterWith(true, func(env *envtest.Environment) error {
		env.ControlPlane.GetAPIServer().Configure().
			Set("audit-policy-file", policy).
			Set("audit-log-path", auditLog)
		return nil
	})
	Expect(err).NotTo(HaveOccurred())
	cfg = cluster.Config
	k8s, err = client.NewWithWatch(cfg, client.Options{Scheme: controllers.NewScheme()})
	Expect(err).NotTo(HaveOccurred())
	kube, err = kubernetes.NewForConfig(cfg)
	Expect(err).NotTo(HaveOccurred())
})

var _ = AfterSuite(func() {
	if cluster != nil {
		Expect(cluster.Stop()).To(Succeed())
	}
})

// auditPolicy records every write at the Metadata level (who, what, which object, the response
// code), once per request, and nothing else.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
  verbs: ["create", "update", "patch", "delete", "deletecollection"]
- level: None
`

// ctx is the context of the test's own requests.
var ctx = context.Background()
