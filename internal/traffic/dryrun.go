package traffic

import (
	"context"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"

	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
)

// Istio's own verdict on policies in dry-run (the `istio.io/dry-run` annotation, what Audit mode
// applies): Envoy's RBAC filter counts the requests a dry-run policy would refuse, and Istio's
// bootstrap turns the stat into the series envoy_http_<listener>_rbac with the tags
// authz_dry_run_action (allow: an ALLOW policy matched nothing; deny: a DENY policy matched) and
// authz_dry_run_result (istio/istio tools/packaging/common/envoy_bootstrap.json; Istio's task
// "Dry Run for Authorization Policy" shows one). The listener, hence the port, is in the metric's
// name; no label names the caller. Istio calls these results "for manual troubleshooting", not an
// API: they are a cross-check, never a verdict on a graph.

// dryRunMetric matches the inbound listeners' RBAC series, the port in the name's last number.
var dryRunMetric = regexp.MustCompile(`^envoy_http_inbound_.*_(\d+)_rbac$`)

// dryRunNamespaceLabels are where a scrape configuration puts a pod's namespace: Istio's sample
// configuration's, kube-prometheus'.
var dryRunNamespaceLabels = []string{"kubernetes_namespace", "namespace"}

// DryRunNamesQuery finds the listeners whose dry-run policies refused requests in the namespaces
// over the window: their series' names (increase() drops the name, which holds the port).
func DryRunNamesQuery(namespaces []string, window string) string {
	var parts []string
	for _, l := range dryRunNamespaceLabels {
		parts = append(parts, fmt.Sprintf(`count by (__name__) (last_over_time({__name__=~"envoy_http_inbound_.+_rbac",authz_dry_run_result="denied",%s=~%q}[%s]))`,
			l, namespaceRegex(namespaces), window))
	}
	return strings.Join(parts, " or ")
}

// DryRunQuery counts, for the listeners named, the requests dry-run policies refused in the
// namespaces over the window, by pod and action, each with its listener's port as a label.
func DryRunQuery(names []string, namespaces []string, window string) string {
	var parts []string
	for _, name := range names {
		match := dryRunMetric.FindStringSubmatch(name)
		if match == nil {
			continue
		}
		for _, l := range dryRunNamespaceLabels {
			parts = append(parts, fmt.Sprintf(`(label_replace(sum by (%s, instance, app, version, authz_dry_run_action) (increase(%s{authz_dry_run_result="denied",%s=~%q}[%s])), "listener_port", %q, "", "") > 0)`,
				l, name, l, namespaceRegex(namespaces), window, match[1]))
		}
	}
	return strings.Join(parts, " or ")
}

// dryRunFlow is a dry-run series as a flow without a caller: into the pod (its address, from the
// scrape target, and its app and version labels) on the listener's port.
func dryRunFlow(m model.Metric, count float64) (Flow, bool) {
	port, err := strconv.Atoi(string(m["listener_port"]))
	if err != nil || port <= 0 || port > 65535 {
		return Flow{}, false
	}
	to := Party{}
	for _, l := range dryRunNamespaceLabels {
		if to.Namespace == "" {
			to.Namespace = string(m[model.LabelName(l)])
		}
	}
	if host, _, err := net.SplitHostPort(string(m["instance"])); err == nil {
		to.IP = host
	}
	for _, l := range []model.LabelName{"app", "version"} {
		if v := string(m[l]); v != "" {
			if to.Labels == nil {
				to.Labels = map[string]string{}
			}
			to.Labels[string(l)] = v
		}
	}
	action := string(m["authz_dry_run_action"])
	if action != "allow" && action != "deny" {
		return Flow{}, false
	}
	return Flow{To: to, Protocol: corev1.ProtocolTCP, Port: int32(port), HTTP: true, Count: count, DryRun: action, Source: "istio-dry-run"}, true
}

// dryRunFlows reads Istio's dry-run denials of the namespaces.
func (p *Prometheus) dryRunFlows(ctx context.Context, namespaces []string) ([]Flow, error) {
	window := promDuration(p.Window)
	listeners, err := p.query(ctx, DryRunNamesQuery(namespaces, window))
	if err != nil || len(listeners) == 0 {
		return nil, err
	}
	var names []string
	for _, s := range listeners {
		names = append(names, string(s.Metric[model.MetricNameLabel]))
	}
	q := DryRunQuery(names, namespaces, window)
	if q == "" {
		return nil, nil
	}
	vec, err := p.query(ctx, q)
	if err != nil {
		return nil, err
	}
	var out []Flow
	for _, s := range vec {
		if f, ok := dryRunFlow(s.Metric, float64(s.Value)); ok {
			out = append(out, f)
		}
	}
	return out, nil
}

// dryRunWhat says what Istio's dry-run saw of a flow.
func dryRunWhat(f Flow) string {
	policy := map[string]string{"allow": "no dry-run ALLOW policy matched", "deny": "a dry-run DENY policy matched"}[f.DryRun]
	return fmt.Sprintf("Istio's dry-run would refuse %s to %s port %d (%s; the metric names no caller)", count(f), f.To, f.Port, policy)
}
