package cli

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	goldenfile "github.com/servicegraph/servicegraph-operator/internal/golden"
)

// run runs the command line and returns its exit status, stdout and stderr.
func run(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := Main(args, strings.NewReader(stdin), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// golden compares got with testdata/<name>, or rewrites it under -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	goldenfile.Check(t, filepath.Join("testdata", name), got)
}

// A directory: every manifest below it, non-ServiceGraph documents and other files skipped, graphs
// sorted by namespace and name, a graph without namespace in "default", Lists looked into.
func TestCompileDirectory(t *testing.T) {
	code, stdout, stderr := run(t, "", "compile", "-f", "testdata/graphs")
	if code != ExitOK || stderr != "" {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	golden(t, "graphs.golden.yaml", stdout)
}

// Invalid input: exit 1, every error on stderr naming the file, the graph and the edge, and
// nothing on stdout.
func TestCompileInvalid(t *testing.T) {
	code, stdout, stderr := run(t, "", "compile", "-f", "testdata/invalid")
	if code != ExitInvalid || stdout != "" {
		t.Fatalf("exit %d, stdout %q; want 1 and nothing", code, stdout)
	}
	golden(t, "invalid.golden.txt", stderr)
}

// Standard input and a file give the same output; so do a file given twice (a duplicate graph is
// an error, not silently merged).
func TestCompileStdin(t *testing.T) {
	sample, err := os.ReadFile("testdata/graphs/shop.yaml")
	if err != nil {
		t.Fatal(err)
	}
	_, fromFile, _ := run(t, "", "compile", "-f", "testdata/graphs/shop.yaml")
	code, fromStdin, stderr := run(t, string(sample), "compile", "-f", "-")
	if code != ExitOK || fromStdin != fromFile || fromFile == "" {
		t.Errorf("stdin: exit %d, stderr %q, output differs from the file's: %v", code, stderr, fromStdin != fromFile)
	}
	code, stdout, stderr := run(t, string(sample), "compile", "-f", "-", "-f", "testdata/graphs/shop.yaml")
	want := "testdata/graphs/shop.yaml: ServiceGraph shop/shop: also defined in <stdin>\n"
	if code != ExitInvalid || stdout != "" || stderr != want {
		t.Errorf("duplicate: exit %d stdout %q stderr %q, want %q", code, stdout, stderr, want)
	}
}

func TestCompileFlags(t *testing.T) {
	code, stdout, _ := run(t, "", "compile", "--istio=false", "-f", "testdata/graphs/shop.yaml")
	if code != ExitOK || strings.Contains(stdout, "istio") || !strings.Contains(stdout, "kind: NetworkPolicy") {
		t.Errorf("--istio=false: exit %d, output:\n%s", code, stdout)
	}
	code, stdout, _ = run(t, "", "compile", "--trust-domain", "mesh.example", "-f", "testdata/graphs/shop.yaml")
	if code != ExitOK || !strings.Contains(stdout, "- mesh.example/ns/shop/sa/web\n") {
		t.Errorf("--trust-domain: exit %d, output:\n%s", code, stdout)
	}
	for _, flags := range [][]string{{"-o", "json"}, {"--output", "json"}, {"--output=json"}, {"-output=yaml", "-o=json"}} {
		code, stdout, _ = run(t, "", append(append([]string{"compile"}, flags...), "-f", "testdata/graphs/shop.yaml")...)
		if code != ExitOK || !strings.HasPrefix(stdout, "{\n  \"apiVersion\": \"v1\",\n  \"items\": [") {
			t.Errorf("%v: exit %d, output:\n%.200s", flags, code, stdout)
		}
	}
	code, stdout, _ = run(t, "", "compile", "--output", "yaml", "--istio=true", "-f", "testdata/graphs/shop.yaml")
	if code != ExitOK || !strings.HasPrefix(stdout, "---\n") || !strings.Contains(stdout, "kind: PeerAuthentication") {
		t.Errorf("--output yaml --istio=true: exit %d, output:\n%.200s", code, stdout)
	}
}

func TestUsage(t *testing.T) {
	tests := []struct {
		args       []string
		code       int
		wantStderr string
	}{
		{nil, ExitUsage, "Usage: servicegraph COMMAND"},
		{[]string{"frobnicate"}, ExitUsage, `unknown command "frobnicate"`},
		{[]string{"compile"}, ExitUsage, "-f is required"},
		{[]string{"compile", "-f", "x", "extra"}, ExitUsage, `unexpected argument "extra"`},
		{[]string{"compile", "--bogus"}, ExitUsage, "flag provided but not defined: -bogus"},
		{[]string{"compile", "-o", "xml", "-f", "x"}, ExitUsage, `-o must be yaml or json, not "xml"`},
		{[]string{"compile", "--output", "xml", "-f", "x"}, ExitUsage, `-o must be yaml or json, not "xml"`},
		{[]string{"compile", "-h"}, ExitOK, "Usage: servicegraph compile"},
		{[]string{"compile", "-f", "testdata/does-not-exist.yaml"}, ExitInvalid, "stat testdata/does-not-exist.yaml: no such file or directory"},
		{[]string{"compile", "-f", "testdata/graphs/payments/notes.txt"}, ExitInvalid, "testdata/graphs/payments/notes.txt:1: not a Kubernetes object"},
		{[]string{"compile", "-f", "testdata/no-graph.yaml"}, ExitInvalid, "no ServiceGraph found in testdata/no-graph.yaml"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, stdout, stderr := run(t, "", tc.args...)
			if code != tc.code || stdout != "" || !strings.Contains(stderr, tc.wantStderr) {
				t.Errorf("exit %d (want %d), stdout %q, stderr:\n%s\nwant it to contain %q", code, tc.code, stdout, stderr, tc.wantStderr)
			}
		})
	}
	if code, stdout, _ := run(t, "", "help"); code != ExitOK || !strings.Contains(stdout, "compile") || !strings.Contains(stdout, "lint") || !strings.Contains(stdout, "graph") {
		t.Errorf("help: exit %d, stdout %q", code, stdout)
	}
}

// The namespace a graph compiles into is never a silent guess: -n gives it to objects that name
// none, a mismatch is refused as kubectl refuses it, and a graph with neither is an error.
func TestCompileNamespace(t *testing.T) {
	const unnamespaced = "apiVersion: policy.servicegraph.io/v1alpha1\nkind: ServiceGraph\nmetadata: {name: shop}\nspec:\n  services: [{name: web}, {name: api}]\n  edges: [web->api:8080]\n"
	code, stdout, stderr := run(t, unnamespaced, "compile", "-f", "-")
	want := "<stdin>:1: ServiceGraph shop: no metadata.namespace, and no -n: the namespace is in every principal and policy the graph makes, so say which (kubectl apply would use its context's)\n"
	if code != ExitInvalid || stdout != "" || stderr != want {
		t.Errorf("without a namespace: exit %d, stdout %q, stderr:\n%s\nwant:\n%s", code, stdout, stderr, want)
	}
	for _, flag := range []string{"-n", "--namespace"} {
		code, stdout, stderr = run(t, unnamespaced, "compile", flag, "payments", "-f", "-")
		if code != ExitOK || !strings.Contains(stdout, "principals:\n        - cluster.local/ns/payments/sa/web") || strings.Contains(stdout, "namespace: default") {
			t.Errorf("%s payments: exit %d, stderr %q, stdout:\n%s", flag, code, stderr, stdout)
		}
	}
	namespaced := strings.Replace(unnamespaced, "{name: shop}", "{name: shop, namespace: shop}", 1)
	code, _, stderr = run(t, namespaced, "compile", "-n", "payments", "-f", "-")
	want = `<stdin>:1: ServiceGraph shop/shop: the namespace of the object, "shop", does not match the namespace "payments" given with -n` + "\n"
	if code != ExitInvalid || stderr != want {
		t.Errorf("a mismatch: exit %d, stderr:\n%s\nwant:\n%s", code, stderr, want)
	}
	// lint and graph read the same way.
	for _, cmd := range []string{"lint", "graph"} {
		if code, stdout, stderr := run(t, unnamespaced, cmd, "-f", "-"); code == ExitOK || !strings.Contains(stdout+stderr, "no metadata.namespace, and no -n") {
			t.Errorf("%s without a namespace: exit %d, output:\n%s%s", cmd, code, stdout, stderr)
		}
	}
}

// Two graphs for one namespace would be two namespace-wide PeerAuthentications and default-denies;
// the operator applies the oldest and reports Conflict, and the CLI says so up front.
func TestCompileTwoGraphsForOneNamespace(t *testing.T) {
	const graphs = "apiVersion: policy.servicegraph.io/v1alpha1\nkind: ServiceGraph\nmetadata: {name: shop, namespace: shop}\nspec:\n  services: [{name: web}, {name: api}]\n  edges: [web->api:8080]\n" +
		"---\napiVersion: policy.servicegraph.io/v1alpha1\nkind: ServiceGraph\nmetadata: {name: more, namespace: shop}\nspec:\n  services: [{name: api}, {name: db}]\n  edges: [api->db:5432]\n"
	code, stdout, stderr := run(t, graphs, "compile", "-f", "-")
	want := `<stdin>: ServiceGraph shop/shop: the namespace already has ServiceGraph "more" (<stdin>): the operator applies only the oldest graph of a namespace and reports the others as Conflict; put the services and edges in one graph` + "\n"
	if code != ExitInvalid || stdout != "" || stderr != want {
		t.Errorf("exit %d, stdout %q, stderr:\n%s\nwant:\n%s", code, stdout, stderr, want)
	}
	code, stdout, _ = run(t, graphs, "lint", "-f", "-")
	if code != ExitFindings || !strings.Contains(stdout, `error SG014 ServiceGraph shop/more: the namespace already has ServiceGraph "shop" (<stdin>:1)`) {
		t.Errorf("lint: exit %d, stdout:\n%s", code, stdout)
	}
}

// A forgotten "/" between a port and a path is refused with what was meant.
func TestCompileForgottenSlash(t *testing.T) {
	const graph = "apiVersion: policy.servicegraph.io/v1alpha1\nkind: ServiceGraph\nmetadata: {name: shop, namespace: shop}\nspec:\n  services: [{name: api}, {name: database}]\n  edges: [api -> database:5432data]\n"
	want := `<stdin>: ServiceGraph shop/shop: edge "api -> database:5432data": column 17: port "5432data": did you mean 5432/data? A port name that starts with a port number is refused: it is most likely a forgotten "/"` + "\n"
	if code, stdout, stderr := run(t, graph, "compile", "-f", "-"); code != ExitInvalid || stdout != "" || stderr != want {
		t.Errorf("exit %d, stdout %q, stderr:\n%s\nwant:\n%s", code, stdout, stderr, want)
	}
	if code, stdout, _ := run(t, graph, "lint", "-f", "-"); code != ExitFindings || !strings.Contains(stdout, "did you mean 5432/data?") {
		t.Errorf("lint: exit %d, stdout:\n%s", code, stdout)
	}
}

// check, offline, on the seed graph and the policies beside it: every layer's verdict and who
// decided, and the exit status a CI assertion reads.
func TestCheckGolden(t *testing.T) {
	var out strings.Builder
	for _, args := range [][]string{
		{"web", "api:8080"},
		{"web", "database:5432/data"},
		{"api", "database:5432/data", "--method", "POST"},
		{"api", "database:5432"},
		{"api", "database:5432/admin/users"},
		{"monitoring/prometheus", "api:9090"},
		{"monitoring/prometheus", "api:8080"},
		{"203.0.113.9", "web:8080"},
		{"app=web", "app=api:8080"},
		{"monitoring/app=prometheus", "api:9090"},
		{"web", "api:8080", "--output", "json"},
	} {
		code, stdout, stderr := run(t, "", append(append([]string{"check"}, args...), "-f", "testdata/check/shop.yaml", "-n", "shop")...)
		fmt.Fprintf(&out, "$ servicegraph check %s\n%s[exit %d]%s\n", strings.Join(args, " "), stdout, code, stderr)
	}
	golden(t, "check/shop.golden.txt", out.String())
	for _, tc := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"web", "ghost:80"}, ExitUsage, `no service or workload "ghost"`},
		{[]string{"web"}, ExitUsage, "want FROM and TO:PORT[/PATH], got 1 arguments"},
		{[]string{"web", "api"}, ExitUsage, `"api": want TO:PORT[/PATH]`},
		{[]string{"web", "api:http"}, ExitUsage, `shop/api has no container port named "http"`},
		{[]string{"app in (web,api)", "database:5432"}, ExitUsage, `"app in (web,api)" matches workloads that differ (shop/api, shop/web)`},
		{[]string{"=web", "api:8080"}, ExitUsage, `"=web": not a name nor a label selector`},
	} {
		code, _, stderr := run(t, "", append(append([]string{"check"}, tc.args...), "-f", "testdata/check/shop.yaml", "-n", "shop")...)
		if code != tc.code || !strings.Contains(stderr, tc.stderr) {
			t.Errorf("check %v: exit %d, stderr %q; want %d and %q", tc.args, code, stderr, tc.code, tc.stderr)
		}
	}
}

// Whether a caller has a sidecar: a pod to be created in an injected namespace will have one, a
// pod that exists (it has a UID) has one only when its containers or annotations say so.
func TestCheckInjection(t *testing.T) {
	const objects = `apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio-injection: enabled}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: strict, namespace: shop}
spec: {mtls: {mode: STRICT}}
---
apiVersion: v1
kind: Pod
metadata: {name: db, namespace: shop, labels: {app: db}}
spec: {containers: [{name: db, image: db, ports: [{containerPort: 5432}]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: new, namespace: shop}
spec: {containers: [{name: app, image: app}]}
---
apiVersion: v1
kind: Pod
metadata: {name: old, namespace: shop, uid: 6f1c1d52-0d0e-4c1a-9a57-3e1f0b8d2c11}
spec: {containers: [{name: app, image: app}]}
---
apiVersion: v1
kind: Pod
metadata: {name: injected, namespace: shop, uid: 0a5e6c8e-9d0b-4d5e-8f0e-1c2b3a4d5e6f}
spec: {containers: [{name: app, image: app}, {name: istio-proxy, image: proxyv2}]}
---
apiVersion: v1
kind: Pod
metadata: {name: worker-x7k2p, namespace: shop, labels: {app: worker}}
spec: {containers: [{name: app, image: app}]}
---
apiVersion: v1
kind: Pod
metadata: {name: worker-q9d4m, namespace: shop, labels: {app: worker}}
spec: {containers: [{name: app, image: app}]}
`
	// Replicas are alike: a selector matching both stands for either.
	for from, want := range map[string]int{"new": ExitAllowed, "old": ExitDenied, "injected": ExitAllowed, "app=worker": ExitAllowed} {
		code, stdout, stderr := run(t, objects, "check", from, "db:5432", "-f", "-", "-n", "shop")
		if code != want {
			t.Errorf("%s: exit %d, want %d\n%s%s", from, code, want, stdout, stderr)
		}
	}
}

// check reads the pods of the workload kinds lint reads: a CronJob's (from its jobTemplate) and a
// bare ReplicaSet's, selected here by NetworkPolicies that the verdict names.
func TestCheckReplicaSetAndCronJob(t *testing.T) {
	const objects = `apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop, labels: {app: web}}
spec: {containers: [{name: web, image: web}]}
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: report, namespace: shop}
spec:
  schedule: "0 * * * *"
  jobTemplate:
    spec:
      template:
        metadata: {labels: {app: report}}
        spec: {restartPolicy: OnFailure, containers: [{name: report, image: report, ports: [{containerPort: 8080}]}]}
---
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: cache, namespace: shop}
spec:
  selector: {matchLabels: {app: cache}}
  template:
    metadata: {labels: {app: cache}}
    spec: {containers: [{name: cache, image: cache, ports: [{containerPort: 6379}]}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: report-from-web, namespace: shop}
spec:
  podSelector: {matchLabels: {app: report}}
  policyTypes: [Ingress]
  ingress: [{from: [{podSelector: {matchLabels: {app: web}}}], ports: [{port: 8080}]}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: cache-deny-all, namespace: shop}
spec: {podSelector: {matchLabels: {app: cache}}, policyTypes: [Ingress]}
`
	for _, tc := range []struct {
		to, want string
		code     int
	}{
		{"report:8080", "ingress        allowed  NetworkPolicy shop/report-from-web spec.ingress[0]", ExitAllowed},
		{"app=report:8080", "ingress        allowed  NetworkPolicy shop/report-from-web spec.ingress[0]", ExitAllowed},
		{"cache:6379", "ingress        DENIED   no rule allows it (NetworkPolicies selecting shop/cache for ingress: cache-deny-all)", ExitDenied},
	} {
		code, stdout, stderr := run(t, objects, "check", "web", tc.to, "-f", "-", "-n", "shop")
		if code != tc.code || !strings.Contains(stdout, tc.want) {
			t.Errorf("check web %s: exit %d, want %d and a line %q\n%s%s", tc.to, code, tc.code, tc.want, stdout, stderr)
		}
	}
}
