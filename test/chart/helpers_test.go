package chart

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/servicegraph/servicegraph-operator/test/testenv"
)

var (
	ctx      = context.Background()
	chartDir = filepath.Join(testenv.Root(), "charts", "servicegraph-operator")
	// manager is the manager binary built from the working tree (TestMain); the chart's image holds
	// the same program, and there is no container runtime to run the image itself.
	manager string
)

func TestMain(m *testing.M) {
	ctrllog.SetLogger(logr.Discard()) // envtest logs through controller-runtime; the tests log what matters
	dir, err := os.MkdirTemp("", "servicegraph-chart-")
	if err == nil {
		manager, err = testenv.BuildManager(dir)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// helmBinary is $HELM, or the Helm `make helm` builds at the version hack/tools/helm/go.mod pins.
func helmBinary(t *testing.T) string {
	t.Helper()
	if h := os.Getenv("HELM"); h != "" {
		return h
	}
	data, err := os.ReadFile(filepath.Join(testenv.Root(), "hack", "tools", "helm", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	var version string
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "require" && f[1] == "helm.sh/helm/v4" {
			version = f[2]
		}
	}
	bin := filepath.Join(testenv.Root(), "bin", "helm", version, "helm")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("no Helm at %s: run `make helm` first", bin)
	}
	return bin
}

// helm runs the Helm CLI (with its caches in a temporary HOME) and returns its standard output.
func helm(t *testing.T, args ...string) string {
	t.Helper()
	out, err := helmErr(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func helmErr(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(helmBinary(t), args...)
	home := helmHome(t)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"), "HELM_DATA_HOME="+filepath.Join(home, "data"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("helm %s: %w\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

// helmHome keeps Helm's repository cache and plugins away from the user's own.
func helmHome(*testing.T) string { return filepath.Join(filepath.Dir(manager), "helm") }

// parseDocs reads every object of a multi-document YAML stream.
func parseDocs(t *testing.T, text string) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(text), 4096)
	for {
		var obj map[string]any
		if err := dec.Decode(&obj); errors.Is(err, io.EOF) {
			return out
		} else if err != nil {
			t.Fatalf("parsing rendered YAML: %v", err)
		}
		if obj != nil {
			out = append(out, &unstructured.Unstructured{Object: obj})
		}
	}
}

// key names an object by kind, namespace and name.
func key(o *unstructured.Unstructured) string {
	return o.GetKind() + " " + o.GetNamespace() + "/" + o.GetName()
}

// byKey indexes objects by key, failing on a duplicate.
func byKey(t *testing.T, objs []*unstructured.Unstructured) map[string]*unstructured.Unstructured {
	t.Helper()
	out := map[string]*unstructured.Unstructured{}
	for _, o := range objs {
		if _, dup := out[key(o)]; dup {
			t.Fatalf("rendered twice: %s", key(o))
		}
		out[key(o)] = o
	}
	return out
}

// helmLabels are the labels the chart adds to config/default's (templates/_helpers.tpl).
var helmLabels = []string{"helm.sh/chart", "app.kubernetes.io/managed-by", "app.kubernetes.io/instance", "app.kubernetes.io/version"}

// withoutHelmLabels drops exactly the labels Helm's conventions add.
func withoutHelmLabels(o *unstructured.Unstructured) *unstructured.Unstructured {
	o = o.DeepCopy()
	labels := o.GetLabels()
	for _, l := range helmLabels {
		delete(labels, l)
	}
	o.SetLabels(labels)
	if len(labels) == 0 {
		unstructured.RemoveNestedField(o.Object, "metadata", "labels")
	}
	return o
}

// kustomize renders a config/ directory with the kubectl built at the API server's version (the
// kustomize `kubectl apply -k` runs).
func kustomize(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	out, err := exec.Command(testenv.Kubectl(), "kustomize", filepath.Join(testenv.Root(), "config", dir)).Output()
	if err != nil {
		t.Fatalf("kubectl kustomize config/%s: %v", dir, err)
	}
	return parseDocs(t, string(out))
}

// eventually retries check until it succeeds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, timeout, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// httpGet sends a request and returns the status code and body.
func httpGet(client *http.Client, req *http.Request) (int, string, error) {
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}
