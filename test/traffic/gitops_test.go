package traffic_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/graph"
	"github.com/servicegraph/servicegraph-operator/test/promtest"
	"github.com/servicegraph/servicegraph-operator/test/testenv"
)

// gateStep is the step of the pull-request check that audits the overlays.
const gateStep = "Audit the overlays against each environment's observed traffic"

// TestGitOpsGate runs the audit step of examples/ci/servicegraph.yaml, as written there, against
// three environments: a real API server holding each overlay's pods and Services, and a real
// Prometheus holding the connections each environment's workloads made (their graphs' edges, on
// the port and path Istio's Telemetry API tags). As shipped, every overlay is covered and the
// check passes; a pull request that drops an edge staging's traffic uses fails it, naming the
// connection in the comment; the same change in an overlay still in Audit is commented, not gated.
func TestGitOpsGate(t *testing.T) {
	root := testenv.Root()
	script := ciStep(t, filepath.Join(root, "examples", "ci", "servicegraph.yaml"), gateStep)
	cluster, err := testenv.StartCluster(false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cluster.Stop() })
	c, err := client.New(cluster.Config, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	shipped := renderOverlays(t, filepath.Join(root, "examples", "gitops"), nil)
	now := time.Now()
	var series []promtest.Series
	for _, sg := range shipped {
		createWorkloads(t, c, sg)
		series = append(series, edgeSeries(t, sg, now.Add(-3*time.Hour), now.Add(-10*time.Minute))...)
	}
	prom, err := promtest.Start(promtest.Options{Backfill: series})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prom.Stop)
	cli := filepath.Join(t.TempDir(), "bin", "servicegraph")
	build := exec.Command("go", "build", "-o", cli, "./cmd/servicegraph")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}

	code, comment := runGate(t, script, cli, prom.URL, cluster.Kubeconfig, shipped)
	if code != 0 || strings.Count(comment, "nothing observed would be refused") != len(shipped) {
		t.Errorf("as shipped: exit %d, comment:\n%s", code, comment)
	}

	dropLoadgen := func(dir string) {
		edit(t, filepath.Join(dir, "overlays", "staging", "kustomization.yaml"), "    - op: add\n      path: /spec/edges/-\n      value: loadgen->api:8080\n", "")
	}
	changed := renderOverlays(t, filepath.Join(root, "examples", "gitops"), dropLoadgen)
	code, comment = runGate(t, script, cli, prom.URL, cluster.Kubeconfig, changed)
	t.Logf("the comment on a pull request that drops staging's loadgen->api:8080:\n%s", comment)
	if code != 1 || !strings.Contains(comment, "`shop-staging/loadgen -> shop-staging/api TCP/8080`") ||
		!strings.Contains(comment, "**gate: the overlay is in Enforce and its audit exited 1**") || strings.Count(comment, "nothing observed would be refused") != 2 {
		t.Errorf("an edge staging uses dropped: exit %d, comment:\n%s", code, comment)
	}

	inAudit := renderOverlays(t, filepath.Join(root, "examples", "gitops"), func(dir string) {
		dropLoadgen(dir)
		edit(t, filepath.Join(dir, "overlays", "staging", "kustomization.yaml"), "  patch: |-\n", "  patch: |-\n    - op: add\n      path: /spec/enforcement\n      value: Audit\n")
	})
	code, comment = runGate(t, script, cli, prom.URL, cluster.Kubeconfig, inAudit)
	if code != 0 || !strings.Contains(comment, "`shop-staging/loadgen -> shop-staging/api TCP/8080`") || !strings.Contains(comment, "_in Audit: not gated (exit 1)_") {
		t.Errorf("the same change in Audit: exit %d, comment:\n%s", code, comment)
	}
}

// ciStep is the shell script of a GitHub Actions step, with the pull request's number filled in.
func ciStep(t *testing.T, workflow, name string) string {
	t.Helper()
	data, err := os.ReadFile(workflow)
	if err != nil {
		t.Fatal(err)
	}
	var wf struct {
		Jobs map[string]struct {
			Steps []struct{ Name, Run string }
		}
	}
	if err := yaml.Unmarshal(data, &wf); err != nil {
		t.Fatal(err)
	}
	for _, job := range wf.Jobs {
		for _, s := range job.Steps {
			if s.Name == name {
				return strings.ReplaceAll(s.Run, "${{ github.event.pull_request.number }}", "42")
			}
		}
	}
	t.Fatalf("%s has no step %q", workflow, name)
	return ""
}

// renderOverlays renders each overlay of a copy of the GitOps example, changed first by change.
func renderOverlays(t *testing.T, example string, change func(dir string)) map[string]*v1alpha1.ServiceGraph {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "gitops")
	if err := os.CopyFS(dir, os.DirFS(example)); err != nil {
		t.Fatal(err)
	}
	if change != nil {
		change(dir)
	}
	overlays, err := filepath.Glob(filepath.Join(dir, "overlays", "*"))
	if err != nil || len(overlays) == 0 {
		t.Fatalf("no overlays: %v", err)
	}
	out := map[string]*v1alpha1.ServiceGraph{}
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	for _, o := range overlays {
		resources, err := k.Run(filesys.MakeFsOnDisk(), o)
		if err != nil {
			t.Fatal(err)
		}
		rendered, err := resources.AsYaml()
		if err != nil {
			t.Fatal(err)
		}
		sg := &v1alpha1.ServiceGraph{}
		if err := yaml.UnmarshalStrict(rendered, sg); err != nil {
			t.Fatalf("%s: %v", o, err)
		}
		out[filepath.Base(o)] = sg
	}
	return out
}

func edit(t *testing.T, path, old, replacement string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil || !strings.Contains(string(data), old) {
		t.Fatalf("%s holds no %q (%v)", path, old, err)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(string(data), old, replacement, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
}

// runGate runs the step in a directory holding rendered/ENV.yaml, with the environment's
// Prometheus and kubeconfig, the CLI and a gh that records the comment on PATH; it returns the
// step's exit status and the comment.
func runGate(t *testing.T, script, cli, promURL, kubeconfig string, overlays map[string]*v1alpha1.ServiceGraph) (int, string) {
	t.Helper()
	work := t.TempDir()
	if err := os.Mkdir(filepath.Join(work, "rendered"), 0o700); err != nil {
		t.Fatal(err)
	}
	for env, sg := range overlays {
		data, err := yaml.Marshal(sg)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(work, "rendered", env+".yaml"), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	kc, err := os.ReadFile(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	gh := filepath.Join(filepath.Dir(cli), "gh")
	comment := filepath.Join(work, "comment.md")
	stub := "#!/usr/bin/env bash\n# records the body of `gh pr comment NUMBER --body-file FILE`\n[ \"$1 $2 $3 $4\" = \"pr comment 42 --body-file\" ] && cp \"$5\" " + strconv.Quote(comment) + "\n"
	if err := os.WriteFile(gh, []byte(stub), 0o700); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", "-e", "-c", script)
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(cli)+":"+os.Getenv("PATH"), "GH_TOKEN=test")
	for env := range overlays {
		upper := strings.ToUpper(env)
		cmd.Env = append(cmd.Env, "PROMETHEUS_"+upper+"="+promURL, "KUBECONFIG_"+upper+"="+string(kc))
	}
	out, err := cmd.CombinedOutput()
	code := cmd.ProcessState.ExitCode()
	if err != nil && code <= 0 {
		t.Fatalf("the step did not run: %v\n%s", err, out)
	}
	body, err := os.ReadFile(comment)
	if err != nil {
		t.Fatalf("no comment posted: %v\n%s", err, out)
	}
	return code, string(body)
}

// createWorkloads puts a graph's pods (as an injected Deployment's, one each) and, for every
// destination, a Service on the ports its edges reach into the API server.
func createWorkloads(t *testing.T, c client.Client, sg *v1alpha1.ServiceGraph) {
	t.Helper()
	ctx := context.Background()
	g, err := graph.Build(sg)
	if err != nil {
		t.Fatal(err)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: sg.Namespace, Labels: map[string]string{"istio-injection": "enabled"}}}
	if err := c.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	ports := map[string][]int32{}
	for _, e := range g.Edges {
		for _, p := range e.Ports {
			if !slices.Contains(ports[e.To], p.Port.IntVal) {
				ports[e.To] = append(ports[e.To], p.Port.IntVal)
			}
		}
	}
	for _, s := range g.Services {
		if !g.Local(&s) {
			continue
		}
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: s.Name, Namespace: sg.Namespace, Labels: s.Labels,
			Annotations: map[string]string{"sidecar.istio.io/status": `{"containers":["istio-proxy"]}`}},
			Spec: corev1.PodSpec{ServiceAccountName: s.ServiceAccount, Containers: []corev1.Container{{Name: "app", Image: "app"}, {Name: "istio-proxy", Image: "proxyv2"}}}}
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: s.Name, Namespace: sg.Namespace}, Spec: corev1.ServiceSpec{Selector: s.Labels}}
		for _, p := range ports[s.Name] {
			pod.Spec.Containers[0].Ports = append(pod.Spec.Containers[0].Ports, corev1.ContainerPort{ContainerPort: p})
			svc.Spec.Ports = append(svc.Spec.Ports, corev1.ServicePort{Name: fmt.Sprint("p", p), Port: p, TargetPort: intstr.FromInt32(p)})
		}
		if err := c.Create(ctx, pod); err != nil {
			t.Fatal(err)
		}
		if len(svc.Spec.Ports) > 0 {
			if err := c.Create(ctx, svc); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// edgeSeries is what Istio reports for a graph's local edges: the destination's series, with the
// Telemetry API's destination_port (and request_path for an edge with one).
func edgeSeries(t *testing.T, sg *v1alpha1.ServiceGraph, start, end time.Time) []promtest.Series {
	t.Helper()
	g, err := graph.Build(sg)
	if err != nil {
		t.Fatal(err)
	}
	var out []promtest.Series
	for _, e := range g.Edges {
		from, ok := g.Service(e.From)
		if !ok || !g.Local(from) {
			continue
		}
		to, _ := g.Service(e.To)
		for _, p := range e.Ports {
			l := map[string]string{"reporter": "destination", "source_workload": e.From, "source_workload_namespace": sg.Namespace,
				"source_principal": "spiffe://cluster.local/ns/" + sg.Namespace + "/sa/" + from.ServiceAccount, "source_app": e.From,
				"destination_workload": e.To, "destination_workload_namespace": sg.Namespace, "destination_service_name": e.To,
				"destination_principal":      "spiffe://cluster.local/ns/" + sg.Namespace + "/sa/" + to.ServiceAccount,
				"connection_security_policy": "mutual_tls", "destination_port": fmt.Sprint(p.Port.IntVal), "response_flags": "-"}
			name := "istio_tcp_connections_opened_total"
			if len(e.Paths) > 0 {
				name, l["request_protocol"], l["response_code"], l["request_path"] = "istio_requests_total", "http", "200", e.Paths[0]
				if len(e.Methods) > 0 {
					l["request_method"] = e.Methods[0]
				}
			} else {
				l["request_protocol"] = "tcp"
			}
			out = append(out, promtest.Counter(name, l, start, end, time.Minute, 3))
		}
	}
	return out
}
