package traffic

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"

	"github.com/servicegraph/servicegraph-operator/internal/semantics"
)

// Istio's standard metrics (istio/proxy istio_stats.cc): requests of HTTP and gRPC, connections
// of TCP. Only series reported by the destination carry the caller's real principal and whether
// it came in mutual TLS (connection_security_policy), and so do a waypoint's (reporter="waypoint",
// istio/istio#50225): in ambient mode a request through a waypoint is reported once, by the
// waypoint, with its caller; the destination's ztunnel reports the waypoint as the caller.
const (
	metricRequests    = "istio_requests_total"
	metricConnections = "istio_tcp_connections_opened_total"
)

// istioLabels are what a flow is grouped by: the default labels that name its ends and security,
// and the ones Istio's Telemetry API can add (destination_port, request_path, request_method),
// empty when a series lacks them.
var istioLabels = []string{"source_workload", "source_workload_namespace", "source_principal", "source_app",
	"destination_workload", "destination_workload_namespace", "destination_service_name",
	"connection_security_policy", "request_protocol", "destination_port", "request_path", "request_method"}

// Prometheus reads Istio's standard metrics from a Prometheus server.
type Prometheus struct {
	API promv1.API
	// Window is how far back to look; Now when (zero: the query's own now).
	Window time.Duration
	Now    time.Time
}

// NewPrometheus is a source for a Prometheus server's URL, with an HTTP round tripper of the
// caller's (authentication, TLS), nil for the default.
func NewPrometheus(url string, rt promapi.Config) (*Prometheus, error) {
	rt.Address = url
	c, err := promapi.NewClient(rt)
	if err != nil {
		return nil, err
	}
	return &Prometheus{API: promv1.NewAPI(c)}, nil
}

// Flows reads the flows into or out of the namespaces over the window: one query for the counts,
// and, unless countsOnly, one for what Istio's dry-run policies would refuse and one each for when
// each flow was first and last seen (at a five-minute resolution).
func (p *Prometheus) Flows(ctx context.Context, namespaces []string, countsOnly bool) ([]Flow, error) {
	counts, err := p.query(ctx, CountQuery(namespaces, p.Window))
	if err != nil {
		return nil, err
	}
	flows := make([]Flow, 0, len(counts))
	index := map[string]int{}
	for _, s := range counts {
		f := flowOf(s.Metric)
		f.Count = float64(s.Value)
		index[seriesKey(s.Metric)] = len(flows)
		flows = append(flows, f)
	}
	if countsOnly {
		return flows, nil
	}
	denials, err := p.dryRunFlows(ctx, namespaces)
	if err != nil {
		return nil, err
	}
	if len(flows) == 0 {
		return denials, nil
	}
	for _, q := range []struct {
		agg string
		set func(*Flow, time.Time)
	}{{"min", func(f *Flow, t time.Time) { f.First = t }}, {"max", func(f *Flow, t time.Time) { f.Last = t }}} {
		seen, err := p.query(ctx, seenQuery(q.agg, namespaces, p.Window))
		if err != nil {
			return nil, err
		}
		for _, s := range seen {
			if i, ok := index[seriesKey(s.Metric)]; ok {
				q.set(&flows[i], time.Unix(int64(s.Value), 0).UTC())
			}
		}
	}
	return append(flows, denials...), nil
}

func (p *Prometheus) query(ctx context.Context, q string) (model.Vector, error) {
	v, _, _, err := p.API.Query(ctx, q, p.Now)
	if err != nil {
		return nil, fmt.Errorf("prometheus: %w", err)
	}
	vec, ok := v.(model.Vector)
	if !ok {
		return nil, fmt.Errorf("prometheus: %s returned %s, not a vector", q, v.Type())
	}
	return vec, nil
}

// CountQuery is one PromQL query for every flow into or out of the namespaces over a window:
// requests and connections, as reported by their destination, grouped by istioLabels.
func CountQuery(namespaces []string, window time.Duration) string {
	return strings.Join(perSelector(namespaces, func(sel string) string {
		return fmt.Sprintf("sum by (%s) (increase(%s[%s])) > 0", strings.Join(istioLabels, ","), sel, promDuration(window))
	}), " or ")
}

// seenQuery is when each flow was first (min) or last (max) seen: the times, every five minutes
// over the window, at which its ten-minute increase was positive (ten, so that two samples fall in
// it at scrape intervals up to five minutes).
func seenQuery(agg string, namespaces []string, window time.Duration) string {
	return strings.Join(perSelector(namespaces, func(sel string) string {
		return fmt.Sprintf("%s by (%s) (%s_over_time((timestamp(sum by (%s) (increase(%s[10m])) > 0))[%s:5m]))",
			agg, strings.Join(istioLabels, ","), agg, strings.Join(istioLabels, ","), sel, promDuration(window))
	}), " or ")
}

// perSelector builds one expression per metric and direction (into the namespaces, out of them).
func perSelector(namespaces []string, expr func(selector string) string) []string {
	re := namespaceRegex(namespaces)
	var out []string
	for _, m := range []string{metricRequests, metricConnections} {
		for _, side := range []string{"destination_workload_namespace", "source_workload_namespace"} {
			out = append(out, "("+expr(fmt.Sprintf(`%s{reporter=~"destination|waypoint",%s=~%q}`, m, side, re))+")")
		}
	}
	return out
}

func namespaceRegex(namespaces []string) string {
	quoted := make([]string, len(namespaces))
	for i, ns := range namespaces {
		quoted[i] = regexp.QuoteMeta(ns)
	}
	return strings.Join(quoted, "|")
}

// promDuration writes a window as Prometheus reads it.
func promDuration(d time.Duration) string {
	if d <= 0 {
		d = time.Hour
	}
	return model.Duration(d).String()
}

func seriesKey(m model.Metric) string {
	parts := make([]string, len(istioLabels))
	for i, l := range istioLabels {
		parts[i] = string(m[model.LabelName(l)])
	}
	return strings.Join(parts, "|")
}

// flowOf reads a series' labels: Istio writes "unknown" for what it does not know.
func flowOf(m model.Metric) Flow {
	get := func(l string) string {
		v := string(m[model.LabelName(l)])
		if v == "unknown" {
			return ""
		}
		return v
	}
	f := Flow{
		From: Party{Namespace: get("source_workload_namespace"), Workload: get("source_workload"), Principal: strings.TrimPrefix(get("source_principal"), semantics.SpiffePrefix)},
		// source_app is the caller's pods' app label (or app.kubernetes.io/name): what selects
		// them when they are no workload of the inventory.
		To:       Party{Namespace: get("destination_workload_namespace"), Workload: get("destination_workload")},
		Protocol: corev1.ProtocolTCP,
		Service:  get("destination_service_name"),
		Source:   "prometheus",
	}
	if app := get("source_app"); app != "" {
		f.From.Labels = map[string]string{"app": app}
	}
	if f.Service == "PassthroughCluster" || f.Service == "BlackHoleCluster" || f.Service == "InboundPassthroughCluster" {
		f.Service = ""
	}
	if n, err := strconv.Atoi(get("destination_port")); err == nil && n > 0 && n < 65536 {
		f.Port = int32(n)
	}
	switch p := get("request_protocol"); p {
	case "http", "grpc":
		f.HTTP = true
		if path, _, _ := strings.Cut(get("request_path"), "?"); path != "" {
			f.Paths = []string{path}
		}
		if method := get("request_method"); method != "" {
			f.Methods = []string{method}
		}
	}
	switch get("connection_security_policy") {
	case string(MutualTLS):
		f.Security = MutualTLS
	case "none":
		f.Security = Plaintext
	}
	return f
}
