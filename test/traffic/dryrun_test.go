package traffic_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/servicegraph/servicegraph-operator/test/promtest"
	"github.com/servicegraph/servicegraph-operator/test/testenv"
	"github.com/servicegraph/servicegraph-operator/test/traffic"
)

// Istio's dry-run series (the labels of the docs' sample: httpbin's sidecar, a dry-run DENY
// policy, the listener of port 80) served by a real Prometheus next to sleep's requests to
// httpbin: discover proposes the edge Istio's metrics show and a TODO for the dry-run denials,
// audit lists them as Istio's own cross-check beside its verdict.
func TestDryRunThroughPrometheus(t *testing.T) {
	now := time.Now()
	start, end := now.Add(-2*time.Hour), now.Add(-5*time.Minute)
	denied := map[string]string{"app": "httpbin", "authz_dry_run_action": "deny", "authz_dry_run_result": "denied", "instance": "10.44.1.27:15020",
		"istio_io_rev": "default", "job": "kubernetes-pods", "kubernetes_namespace": "foo", "kubernetes_pod_name": "httpbin-5b6c9f8d4-q2m8z",
		"pod_template_hash": "5b6c9f8d4", "security_istio_io_tlsMode": "istio", "service_istio_io_canonical_name": "httpbin",
		"service_istio_io_canonical_revision": "v1", "version": "v1"}
	requests := map[string]string{"reporter": "destination", "source_workload": "sleep", "source_workload_namespace": "foo",
		"source_principal": "spiffe://cluster.local/ns/foo/sa/sleep", "source_app": "sleep", "destination_workload": "httpbin",
		"destination_workload_namespace": "foo", "destination_service_name": "httpbin", "connection_security_policy": "mutual_tls",
		"request_protocol": "http", "response_code": "200", "response_flags": "-"}
	server, err := promtest.Start(promtest.Options{Backfill: []promtest.Series{
		promtest.Counter("envoy_http_inbound_0_0_0_0_80_rbac", denied, start, end, time.Minute, 2),
		promtest.Counter("istio_requests_total", requests, start, end, time.Minute, 5),
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(server.Stop)
	manifests := filepath.Join(testenv.Root(), "internal", "cli", "testdata", "traffic", "httpbin.yaml")
	out, stderr, code := traffic.Run("discover", "--prometheus", server.URL, "-n", "foo", "-f", manifests, "--since", "3h")
	if code != 0 || !strings.Contains(out, "from: sleep") && !strings.Contains(out, "- sleep->httpbin:80") ||
		!strings.Contains(out, "# TODO: Istio's dry-run would refuse") || !strings.Contains(out, "to foo/httpbin port 80 (a dry-run DENY policy matched") {
		t.Fatalf("discover: exit %d\n%s%s", code, out, stderr)
	}
	graph := filepath.Join(t.TempDir(), "graph.yaml")
	if err := os.WriteFile(graph, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	out, stderr, code = traffic.Run("audit", "--prometheus", server.URL, "-f", graph, "-f", manifests, "--since", "3h", "-o", "json")
	var report struct {
		Covered     bool
		Observed    int
		IstioDryRun []struct{ Connection, Detail string }
	}
	if err := json.Unmarshal([]byte(out), &report); err != nil || code != 0 || !report.Covered || report.Observed != 1 || len(report.IstioDryRun) != 1 ||
		!strings.Contains(report.IstioDryRun[0].Detail, "foo/httpbin port 80") {
		t.Errorf("audit: exit %d (%v)\n%s%s", code, err, out, stderr)
	}
}
