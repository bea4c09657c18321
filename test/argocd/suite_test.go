package argocd

// The real-Argo CD suite: the test control plane, the operator's manager binary, and Argo CD's
// repo-server, application controller and ApplicationSet controller (built by `make argocd` from
// the Go module proxy) as processes, syncing ServiceGraphs from a local git repository. The
// gopher-lua fixture tests of health_test.go stay the fast and exact check of the script; this
// suite is the judgement of the real tool.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/controllers"
	"github.com/servicegraph/servicegraph-operator/test/testenv"
)

var (
	ctx        = context.Background()
	build      argocdBuild
	cluster    *testenv.Cluster
	k8s        client.Client
	manager    *testenv.ManagerProcess
	argo       *argoCD
	repo       *gitRepo
	serverURL  string
	suiteDir   string
	logs       = map[string]*testenv.Log{}
	managerLog = &testenv.Log{}
)

func TestRealArgoCD(t *testing.T) {
	fixtureCases = loadFixtureCases(t)
	RegisterFailHandler(Fail)
	RunSpecs(t, "Real Argo CD Suite")
}

var _ = BeforeSuite(func() {
	var err error
	build, err = findArgoCD()
	Expect(err).NotTo(HaveOccurred(), "run `make argocd` (the first build takes several minutes)")

	suiteDir, err = os.MkdirTemp("", "servicegraph-argocd-")
	Expect(err).NotTo(HaveOccurred())
	managerBinary, err := testenv.BuildManager(suiteDir)
	Expect(err).NotTo(HaveOccurred())

	// No Istio yet: the first spec shows a graph waiting for it, then installs its CRDs.
	cluster, err = testenv.StartCluster(false)
	Expect(err).NotTo(HaveOccurred())
	k8s, err = client.New(cluster.Config, client.Options{Scheme: controllers.NewScheme()})
	Expect(err).NotTo(HaveOccurred())
	serverURL = cluster.Config.Host
	if !strings.HasPrefix(serverURL, "https://") {
		serverURL = "https://" + serverURL
	}

	logs["manager"] = managerLog
	// A graph waiting for Istio looks again every second instead of every minute.
	manager, err = cluster.StartManagerProcess(managerBinary, managerLog, "--recheck-interval=1s")
	Expect(err).NotTo(HaveOccurred())
	Eventually(func() (int, error) {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", manager.ProbePort))
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}, 60*time.Second, 200*time.Millisecond).Should(Equal(http.StatusOK), managerLog.String)

	// What an Argo CD installation holds before the first Application: its CRDs, argocd-cm with
	// the project's health check exactly as users merge it, the default project (argocd-server
	// creates it; this suite runs no API server) and the destination cluster.
	kubectl("apply", "--server-side", "-f", build.CRDs())
	waitEstablished("crd/applications.argoproj.io", "crd/applicationsets.argoproj.io", "crd/appprojects.argoproj.io")
	kubectl("create", "namespace", argocdNamespace)
	kubectl("apply", "-f", filepath.Join(testenv.Root(), "config", "argocd", "argocd-cm-patch.yaml"))
	applyYAML(`apiVersion: argoproj.io/v1alpha1
kind: AppProject
metadata: {name: default, namespace: argocd}
spec:
  sourceRepos: ['*']
  destinations: [{server: '*', namespace: '*'}]
  clusterResourceWhitelist: [{group: '*', kind: '*'}]
`)
	applyYAML(`apiVersion: v1
kind: Secret
metadata:
  name: argocd-secret
  namespace: argocd
  labels: {app.kubernetes.io/part-of: argocd}
`)
	applyYAML(clusterSecret(serverURL, cluster.Config.CAData, cluster.Config.CertData, cluster.Config.KeyData))

	repo, err = newGitRepo(filepath.Join(suiteDir, "repo"))
	Expect(err).NotTo(HaveOccurred())
	_, err = repo.commit("an empty policy repository", map[string]string{"README.md": "ServiceGraphs, synced by Argo CD\n"})
	Expect(err).NotTo(HaveOccurred())

	argoDir := filepath.Join(suiteDir, "argocd")
	argo, err = startArgoCD(ctx, build, cluster.Kubeconfig, argoDir, logs)
	Expect(err).NotTo(HaveOccurred())
	AddReportEntry("Argo CD "+build.Version+" start-up (repo-server, application controller, ApplicationSet controller, Redis; to healthy)", argo.Started.Round(time.Millisecond).String())
})

var _ = AfterSuite(func() {
	if argo != nil {
		var rss []string
		total := 0
		for _, p := range argo.processes() {
			if p != nil && !p.exited() {
				mib := p.rssMiB()
				total += mib
				rss = append(rss, fmt.Sprintf("%s %d MiB", p.name, mib))
			}
		}
		AddReportEntry("Argo CD resident memory at the end", fmt.Sprintf("%d MiB (%s)", total, strings.Join(rss, ", ")))
		argo.stop()
	}
	if cluster != nil {
		Expect(cluster.Stop()).To(Succeed())
	}
	if suiteDir != "" {
		Expect(os.RemoveAll(suiteDir)).To(Succeed())
	}
})

// On failure, the end of every process's log goes with the report.
var _ = AfterEach(func() {
	if !CurrentSpecReport().Failed() {
		return
	}
	names := make([]string, 0, len(logs))
	for name := range logs {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		p := &process{name: name, log: logs[name]}
		fmt.Fprintf(GinkgoWriter, "\n===== last lines of %s =====\n%s\n", name, p.tail(60))
	}
})

func kubectl(args ...string) string {
	GinkgoHelper()
	out, err := cluster.Kubectl(ctx, args...)
	Expect(err).NotTo(HaveOccurred())
	return out
}

// waitEstablished waits until CRDs are served (kubectl wait errs while a CRD has no status yet).
func waitEstablished(crds ...string) {
	GinkgoHelper()
	Eventually(func() error {
		_, err := cluster.Kubectl(ctx, append([]string{"wait", "--for=condition=Established", "--timeout=10s"}, crds...)...)
		return err
	}).WithTimeout(60 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())
}

// applyYAML applies manifests with kubectl, as a user (or a script) would.
func applyYAML(manifest string, args ...string) {
	GinkgoHelper()
	f, err := os.CreateTemp(suiteDir, "manifest-*.yaml")
	Expect(err).NotTo(HaveOccurred())
	_, err = f.WriteString(manifest)
	Expect(err).NotTo(HaveOccurred())
	Expect(f.Close()).To(Succeed())
	kubectl(append([]string{"apply", "-f", f.Name()}, args...)...)
}

var applicationGVK = schema.GroupVersionKind{Group: "argoproj.io", Version: "v1alpha1", Kind: "Application"}

// getApp reads an Application; a missing one reads as empty.
func getApp(name string) (*application, error) {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(applicationGVK)
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: argocdNamespace, Name: name}, u); err != nil {
		return nil, err
	}
	data, err := json.Marshal(u.Object)
	if err != nil {
		return nil, err
	}
	var app application
	return &app, json.Unmarshal(data, &app)
}

// refresh asks for a hard refresh, as Argo CD's git webhook does after a push.
func refresh(names ...string) {
	GinkgoHelper()
	for _, name := range names {
		kubectl("annotate", "application", name, "-n", argocdNamespace, "argocd.argoproj.io/refresh=hard", "--overwrite")
	}
}

func getSG(namespace, name string) (*v1alpha1.ServiceGraph, error) {
	sg := &v1alpha1.ServiceGraph{}
	return sg, k8s.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, sg)
}

// appOptions shape the Applications of the suite.
type appOptions struct {
	revision    string
	syncOptions []string
	annotations map[string]string
	selfHeal    *bool
}

// applicationYAML is an Application of the kind docs/gitops.md shows: automated sync with prune
// and self-heal, from the suite's repository to the test cluster.
func applicationYAML(name, path, namespace string, o appOptions) string {
	if o.revision == "" {
		o.revision = "main"
	}
	selfHeal := true
	if o.selfHeal != nil {
		selfHeal = *o.selfHeal
	}
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: %s\n  namespace: %s\n", name, argocdNamespace)
	if len(o.annotations) > 0 {
		b.WriteString("  annotations:\n")
		for k, v := range o.annotations {
			fmt.Fprintf(&b, "    %s: %q\n", k, v)
		}
	}
	fmt.Fprintf(&b, `spec:
  project: default
  source: {repoURL: %q, targetRevision: %s, path: %s}
  destination: {server: %q, namespace: %s}
  syncPolicy:
    automated: {prune: true, selfHeal: %t}
    syncOptions: [%s]
`, repo.URL(), o.revision, path, serverURL, namespace, selfHeal, strings.Join(append([]string{"CreateNamespace=true"}, o.syncOptions...), ", "))
	return b.String()
}
