package traffic

import (
	"os"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"

	"github.com/servicegraph/servicegraph-operator/internal/graph"
)

// Istio's dry-run task: httpbin's sidecar counted one request its dry-run DENY policy matched, on
// the listener of port 80. The flow it implies has no caller: discover makes it a TODO, audit lists
// it as Istio's own cross-check, neither invents an edge nor a verdict.
func TestDryRunSampleIstioDocs(t *testing.T) {
	data, err := os.ReadFile("testdata/prometheus/istio-docs-dry-run.txt")
	if err != nil {
		t.Fatal(err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	var flows []Flow
	for name, family := range families {
		for _, m := range family.GetMetric() {
			metric := model.Metric{model.MetricNameLabel: model.LabelValue(name)}
			for _, l := range m.GetLabel() {
				metric[model.LabelName(l.GetName())] = model.LabelValue(l.GetValue())
			}
			if metric["authz_dry_run_result"] != "denied" { // what DryRunQuery selects
				continue
			}
			metric["listener_port"] = "80" // what DryRunQuery reads from the name
			f, ok := dryRunFlow(metric, m.GetUntyped().GetValue())
			if !ok {
				t.Fatalf("%v is not read", metric)
			}
			flows = append(flows, f)
		}
	}
	if len(flows) != 1 || flows[0].Port != 80 || flows[0].To.IP != "10.44.1.11" || flows[0].To.Namespace != "foo" || flows[0].DryRun != "deny" || flows[0].Count != 1 {
		t.Fatalf("flows %+v", flows)
	}
	inv := &Inventory{Workloads: []Workload{
		{Namespace: "foo", Name: "httpbin", Labels: map[string]string{"app": "httpbin", "version": "v1"}, ServiceAccount: "httpbin", IPs: []string{"10.44.1.11"},
			Ports: []corev1.ContainerPort{{ContainerPort: 80}}, Meshed: true},
		{Namespace: "foo", Name: "sleep", Labels: map[string]string{"app": "sleep"}, ServiceAccount: "sleep", Meshed: true},
	}}
	p := Discover(flows, inv, []string{"foo"}, t0)[0]
	if len(p.Edges) != 0 || len(p.TODO) != 1 || !strings.Contains(p.TODO[0], "Istio's dry-run would refuse 1 request to foo/httpbin port 80 (a dry-run DENY policy matched") {
		t.Errorf("edges %v, TODO %q", p.Edges, p.TODO)
	}
	judge, g := seed(t, "web->api:8080")
	r := Audit(flows, inv, judge, []*graph.Graph{g})
	if r.Flows != 0 || !r.Covered() || len(r.DryRun) != 1 || !strings.Contains(string(r.Text()), "Istio's own dry-run") || !strings.Contains(string(r.JSON()), `"istioDryRun"`) {
		t.Errorf("flows %d, dry run %v\n%s", r.Flows, r.DryRun, r.Text())
	}
	// Labels alone find the pod when the scrape target's address is not one of the inventory.
	flows[0].To.IP = ""
	if _, c := inv.canonical(flows); c[0].To.Workload != "httpbin" {
		t.Errorf("canonical %+v", c)
	}
}

func TestDryRunQuery(t *testing.T) {
	names := DryRunNamesQuery([]string{"shop", "a.b"}, "1d")
	q := DryRunQuery([]string{"envoy_http_inbound_0_0_0_0_80_rbac", "envoy_http_inbound_10_1_2_3_8080_rbac", "envoy_http_outbound_0_0_0_0_80_rbac"}, []string{"shop", "a.b"}, "1d")
	for _, want := range []string{`authz_dry_run_result="denied"`, `kubernetes_namespace=~"shop|a\\.b"`, `namespace=~"shop|a\\.b"`, "[1d]"} {
		if !strings.Contains(q, want) || !strings.Contains(names, want) {
			t.Errorf("no %s in\n%s\n%s", want, names, q)
		}
	}
	for _, want := range []string{`increase(envoy_http_inbound_0_0_0_0_80_rbac{`, `"listener_port", "80"`, `"listener_port", "8080"`} {
		if !strings.Contains(q, want) {
			t.Errorf("no %s in %s", want, q)
		}
	}
	if strings.Contains(q, "outbound") || DryRunQuery([]string{"envoy_http_outbound_0_0_0_0_80_rbac"}, []string{"shop"}, "1d") != "" {
		t.Errorf("an outbound listener asked: %s", q)
	}
	for port, want := range map[string]bool{"80": true, "0": false, "99999": false, "": false} {
		if _, ok := dryRunFlow(model.Metric{"listener_port": model.LabelValue(port), "authz_dry_run_action": "allow"}, 1); ok != want {
			t.Errorf("port %q read %v, want %v", port, ok, want)
		}
	}
}
