package chart

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/servicegraph/servicegraph-operator/test/testenv"
)

// startCluster starts a test control plane with Istio's and the Gateway API's CRDs but not the
// project's: the installs under test bring the ServiceGraph CRD themselves.
func startCluster(t *testing.T) *testenv.Cluster {
	t.Helper()
	c, err := testenv.StartClusterWith(true, func(env *envtest.Environment) error {
		env.CRDDirectoryPaths = slices.DeleteFunc(env.CRDDirectoryPaths, func(p string) bool { return p == testenv.ProjectCRDs() })
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Error(err)
		}
	})
	return c
}

func kubectl(t *testing.T, c *testenv.Cluster, args ...string) string {
	t.Helper()
	out, err := c.Kubectl(ctx, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// deployment reads the installed manager Deployment back from the API server.
func deployment(t *testing.T, c *testenv.Cluster, namespace, name string) *appsv1.Deployment {
	t.Helper()
	d := &appsv1.Deployment{}
	if err := json.Unmarshal([]byte(kubectl(t, c, "get", "deployment", name, "-n", namespace, "-o", "json")), d); err != nil {
		t.Fatal(err)
	}
	return d
}

// operator is the manager of an installed Deployment running as a process.
type operator struct {
	*testenv.ManagerProcess
	// Kubeconfig carries the ServiceAccount's token, as the pod's mounted token would.
	Kubeconfig  string
	MetricsPort int
}

// runOperator runs the manager as the installed Deployment's pod would: its container's arguments,
// authenticated with a token of the Deployment's ServiceAccount (so only the installed RBAC
// applies), ready once its readiness probe answers. Three things a pod gets from its environment
// are given on the command line: the API server (a kubeconfig with the token and the cluster's
// CA), the lease's namespace (the pod's own, read from the token mount) and loopback addresses
// with free ports for the probes and metrics (the binary is not in a network namespace of its own).
func runOperator(t *testing.T, c *testenv.Cluster, d *appsv1.Deployment, log *testenv.Log) *operator {
	t.Helper()
	spec := d.Spec.Template.Spec
	i := slices.IndexFunc(spec.Containers, func(c corev1.Container) bool { return c.Name == "manager" })
	if i < 0 {
		t.Fatalf("Deployment %s has no manager container", d.Name)
	}
	container := spec.Containers[i]
	if len(container.Command) != 1 || container.Command[0] != "/manager" {
		t.Fatalf("the manager container runs %v, not /manager", container.Command)
	}

	token := strings.TrimSpace(kubectl(t, c, "create", "token", spec.ServiceAccountName, "-n", d.Namespace, "--duration=1h"))
	kc := clientcmdapi.NewConfig()
	kc.Clusters["test"] = &clientcmdapi.Cluster{Server: c.Config.Host, CertificateAuthorityData: c.Config.CAData}
	kc.AuthInfos["sa"] = &clientcmdapi.AuthInfo{Token: token}
	kc.Contexts["sa"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: "sa"}
	kc.CurrentContext = "sa"
	path := filepath.Join(t.TempDir(), "kubeconfig-"+spec.ServiceAccountName)
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	whoami := kubectl(t, c, "--kubeconfig", path, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}")
	if want := "system:serviceaccount:" + d.Namespace + ":" + spec.ServiceAccountName; whoami != want {
		t.Fatalf("the token authenticates as %q, want %q", whoami, want)
	}

	var args []string
	metrics, leaseNamespace := "0", ""
	for _, a := range container.Args {
		switch name, value, _ := strings.Cut(a, "="); name {
		case "--health-probe-bind-address": // StartManagerProcess serves the probes on a free port
			continue
		case "--metrics-bind-address":
			metrics = value
			continue
		case "--leader-election-namespace":
			leaseNamespace = value
		}
		args = append(args, a)
	}
	op := &operator{Kubeconfig: path}
	if metrics != "0" {
		port, err := testenv.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		op.MetricsPort = port
		args = append(args, "--metrics-bind-address=127.0.0.1:"+strconv.Itoa(port))
	}
	if leaseNamespace == "" {
		args = append(args, "--leader-election-namespace="+d.Namespace)
	}
	p, err := c.StartManagerProcess(manager, log, append(args, "--kubeconfig", path)...)
	if err != nil {
		t.Fatal(err)
	}
	op.ManagerProcess = p
	t.Cleanup(p.Stop)

	probe := container.ReadinessProbe
	if probe == nil || probe.HTTPGet == nil {
		t.Fatal("the manager container has no HTTP readiness probe")
	}
	url := fmt.Sprintf("http://127.0.0.1:%d%s", p.ProbePort, probe.HTTPGet.Path)
	eventually(t, 60*time.Second, "the manager's readiness probe "+probe.HTTPGet.Path, func() error {
		if p.Exited() {
			t.Fatalf("the manager exited:\n%s", log.String())
		}
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		code, body, err := httpGet(http.DefaultClient, req)
		if err == nil && code != http.StatusOK {
			err = fmt.Errorf("%d %s", code, body)
		}
		return err
	})
	return op
}

// scrape GETs the operator's HTTPS metrics with a bearer token and returns the status code.
func (op *operator) scrape(t *testing.T, token string) (int, string) {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} // the manager's certificate is self-signed
	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("https://127.0.0.1:%d/metrics", op.MetricsPort), nil)
	req.Header.Set("Authorization", "Bearer "+token)
	code, body, err := httpGet(client, req)
	if err != nil {
		t.Fatal(err)
	}
	return code, body
}

// seedGraphReady applies the sample graph (namespace shop) and waits for Ready.
func seedGraphReady(t *testing.T, c *testenv.Cluster) {
	t.Helper()
	if _, err := c.Kubectl(ctx, "get", "namespace", "shop"); err != nil {
		kubectl(t, c, "create", "namespace", "shop")
	}
	kubectl(t, c, "apply", "--server-side", "-f", filepath.Join(testenv.Root(), "config", "samples", "policy_v1alpha1_servicegraph.yaml"))
	kubectl(t, c, "wait", "--for=condition=Ready", "servicegraph/shop", "-n", "shop", "--timeout=90s")
}

// restrictedPodAdmitted checks that Pod Security admission, enforcing the restricted standard in
// the namespace, admits a pod of the Deployment's template (it only warns about workloads).
func restrictedPodAdmitted(t *testing.T, c *testenv.Cluster, d *appsv1.Deployment) {
	t.Helper()
	pod := map[string]any{"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{"name": "manager-pss-check", "namespace": d.Namespace, "labels": d.Spec.Template.Labels},
		"spec":     d.Spec.Template.Spec}
	data, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "pod.json")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	out := kubectl(t, c, "create", "--dry-run=server", "-f", file)
	if !strings.Contains(out, "created (server dry run)") || strings.Contains(out, "PodSecurity") {
		t.Fatalf("a pod of the manager's template in %s: %s", d.Namespace, out)
	}
}
