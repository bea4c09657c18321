package traffic

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/servicegraph/servicegraph-operator/test/promtest"
)

// The metrics and the values Istio writes (istio/proxy source/extensions/filters/http/istio_stats).
const (
	requestsTotal     = "istio_requests_total"
	connectionsOpened = "istio_tcp_connections_opened_total"
	unknown           = "unknown"
	latest            = "latest"
	cluster           = "Kubernetes"
	trustDomain       = "spiffe://cluster.local"
)

// Series are what Istio's proxies report for the flows from start to end, one sample a minute,
// as Prometheus scrapes them: each flow as its destination's proxy reports it (the caller's
// principal and connection_security_policy) and as its caller's reports it (principal unknown)
// when the caller has a proxy; the Telemetry tags where the destination's namespace turns them on;
// the labels Prometheus's pod scrape adds. Series alike (two ports Istio cannot tell apart) add up.
func (s *Scenario) Series(start, end time.Time) []promtest.Series {
	type acc struct {
		name      string
		labels    map[string]string
		perMinute float64
	}
	byKey := map[string]*acc{}
	var order []string
	emit := func(name string, labels map[string]string, perMinute float64) {
		key := name + fmt.Sprint(sortedPairs(labels))
		if a, ok := byKey[key]; ok {
			a.perMinute += perMinute
			return
		}
		byKey[key] = &acc{name, labels, perMinute}
		order = append(order, key)
	}
	for _, f := range s.Flows {
		name := connectionsOpened
		if f.HTTP() {
			name = requestsTotal
		}
		paths := f.Paths
		if len(paths) == 0 {
			paths = []string{""}
		}
		share := f.PerMinute / float64(len(paths))
		waypoint := s.Waypoints[f.To.Namespace]
		if f.Caller != Meshed {
			waypoint = nil // only meshed callers are sent through the waypoint here
		}
		for _, path := range paths {
			if waypoint == nil {
				emit(name, s.labels(f, "destination", path), share)
			} else {
				emit(name, scrapedAt(s.labels(f, "waypoint", path), waypoint), share)
			}
			if f.Caller == Meshed || f.Caller == PlainText {
				emit(name, s.labels(f, "source", path), share)
			}
		}
		if waypoint != nil { // the second hop, as the destination's ztunnel sees it
			hop := Flow{From: waypoint, To: f.To, Caller: Meshed, Port: f.Port, Protocol: "tcp"}
			l := s.labels(hop, "destination", "")
			l["app"], l["namespace"], l["pod"] = "ztunnel", "istio-system", "ztunnel-x8q2v"
			emit(connectionsOpened, l, f.PerMinute)
		}
	}
	var out []promtest.Series
	for _, key := range order {
		a := byKey[key]
		out = append(out, promtest.Counter(a.name, a.labels, start, end, time.Minute, a.perMinute))
	}
	return out
}

// labels are a flow's series labels as one proxy reports them: Istio's default tag set
// (istio/proxy testdata/metric/{server,client}_request_total, tcp_{server,client}_connection_open,
// tcp_server_connection_open_without_mx), then the scrape's own.
func (s *Scenario) labels(f Flow, reporter, path string) map[string]string {
	l := map[string]string{"reporter": reporter, "response_flags": "-", "request_protocol": f.Protocol}
	switch {
	case f.From != nil && f.Caller != Unknown:
		app, version := workloadApp(f.From)
		l["source_workload"], l["source_workload_namespace"] = f.From.Name, f.From.Namespace
		l["source_app"], l["source_version"] = app, version
		l["source_canonical_service"], l["source_canonical_revision"] = canonical(f.From), latest
		l["source_cluster"] = cluster
	default: // no metadata exchange: nothing but, for PrincipalOnly, the certificate's identity
		for _, k := range []string{"source_workload", "source_workload_namespace", "source_app", "source_version", "source_canonical_service", "source_cluster"} {
			l[k] = unknown
		}
		l["source_canonical_revision"] = latest
	}
	app, version := workloadApp(f.To)
	svc := s.ServiceName(f)
	l["destination_workload"], l["destination_workload_namespace"] = f.To.Name, f.To.Namespace
	l["destination_app"], l["destination_version"] = app, version
	l["destination_canonical_service"], l["destination_canonical_revision"] = canonical(f.To), latest
	l["destination_service"] = svc + "." + f.To.Namespace + ".svc.cluster.local"
	l["destination_service_name"], l["destination_service_namespace"] = svc, f.To.Namespace
	l["destination_cluster"] = cluster
	// Only the destination says how the connection came in (connection_security_policy); the
	// principals are the certificates' of a mutual-TLS connection, which a caller's proxy knows for
	// TCP only (tcp_client_connection_open; client_request_total has both unknown).
	l["source_principal"], l["destination_principal"], l["connection_security_policy"] = unknown, unknown, unknown
	switch {
	case reporter == "source" && f.Caller == Meshed && !f.HTTP():
		l["source_principal"], l["destination_principal"] = principal(f.From), principal(f.To)
	case reporter == "source":
	case reporter == "waypoint": // istio/proxy server_waypoint_proxy_request_total, ..._connections_opened_total
		l["source_principal"], l["connection_security_policy"] = principal(f.From), "mutual_tls"
		if !f.HTTP() {
			l["destination_principal"] = principal(f.To)
		}
	case f.Caller == Meshed:
		l["source_principal"], l["destination_principal"], l["connection_security_policy"] = principal(f.From), principal(f.To), "mutual_tls"
	case f.Caller == PrincipalOnly:
		l["source_principal"], l["destination_principal"], l["connection_security_policy"] = "spiffe://"+f.Principal, principal(f.To), "mutual_tls"
	default:
		l["connection_security_policy"] = "none"
	}
	if f.HTTP() {
		l["response_code"], l["grpc_response_status"] = "200", ""
		if f.Protocol == "grpc" {
			l["grpc_response_status"] = "0"
		}
	}
	if reporter == "destination" && s.Telemetry[f.To.Namespace] {
		l["destination_port"] = fmt.Sprint(f.Port)
		if f.HTTP() {
			l["request_path"], l["request_method"] = path, f.Method
		}
	}
	// The scrape's labels: the reporting pod's (istio/istio#50225's waypoint series shows them).
	at := f.To
	if reporter == "source" {
		at = f.From
	}
	l["job"], l["namespace"], l["pod"] = "kubernetes-pods", at.Namespace, at.Name+"-7d9f5c6b8-x7k2p"
	l["instance"] = fmt.Sprintf("10.244.%d.%d:15020", len(at.Namespace)%250, len(at.Name)%250+1)
	return l
}

// scrapedAt gives a series the scrape labels of the waypoint's pod (istio/istio#50225 shows them).
func scrapedAt(l map[string]string, waypoint *Workload) map[string]string {
	l["namespace"], l["pod"] = waypoint.Namespace, waypoint.Name+"-7c6566694f-8drf8"
	l["gateway_istio_io_managed"], l["gateway_networking_k8s_io_gateway_name"] = "istio.io-mesh-controller", "waypoint"
	return l
}

// workloadApp are the app and version labels Istio reads from the pods, unknown when unset.
func workloadApp(w *Workload) (app, version string) {
	app, version = w.Labels["app"], w.Labels["version"]
	if app == "" {
		app = unknown
	}
	if version == "" {
		version = unknown
	}
	return app, version
}

// canonical is Istio's canonical service: the label app.kubernetes.io/name, else app, else the
// workload's name.
func canonical(w *Workload) string {
	for _, k := range []string{"service.istio.io/canonical-name", "app.kubernetes.io/name", "app"} {
		if v := w.Labels[k]; v != "" {
			return v
		}
	}
	return w.Name
}

func principal(w *Workload) string {
	return trustDomain + "/ns/" + w.Namespace + "/sa/" + w.ServiceAccount
}

func sortedPairs(l map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(l)) {
		b.WriteString(k + "=" + l[k] + ",")
	}
	return b.String()
}
