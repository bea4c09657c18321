package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/graph"
	"github.com/servicegraph/servicegraph-operator/test/bench/graphgen"
	"github.com/servicegraph/servicegraph-operator/test/promtest"
	"github.com/servicegraph/servicegraph-operator/test/testenv"
)

// trafficNamespace holds the traffic benchmark's workloads.
const trafficNamespace = "traffic"

// trafficWindow is how much history the series span (a sample every five minutes), and what the
// commands are asked about.
const trafficWindow = time.Hour

// trafficResult is what discover and audit cost over a large namespace's history.
type trafficResult struct {
	Services, Edges, Series, Samples int
	// Backfill is how long promtool took to write the series into blocks and the server to start.
	Backfill        time.Duration
	Discover, Audit cliRun
}

// cliRun is one run of the servicegraph binary against the real Prometheus.
type cliRun struct {
	Wall, CPU time.Duration
	// MaxRSS is the command's peak resident memory.
	MaxRSS float64
	// Queries and QueryTime are what the Prometheus server counts for its query endpoint meanwhile.
	Queries   int
	QueryTime time.Duration
	// Outcome says what the command found.
	Outcome string
}

// benchTraffic backfills a real Prometheus with Istio's series for every edge of a generated graph
// (seriesTotal spread evenly over the edges: the response codes and revisions a busy mesh
// reports), then times the CLI's discover over the namespace and audit of the graph, each a
// process of its own so its peak memory is its own.
func benchTraffic(ctx context.Context, services, seriesTotal int, seed uint64) (trafficResult, error) {
	sg := graphgen.Graph("bench", trafficNamespace, services, seed)
	dir, err := os.MkdirTemp("", "bench-traffic-")
	if err != nil {
		return trafficResult{}, err
	}
	defer os.RemoveAll(dir)
	cli := filepath.Join(dir, "servicegraph")
	build := exec.CommandContext(ctx, "go", "build", "-o", cli, "./cmd/servicegraph")
	build.Dir = testenv.Root()
	if out, err := build.CombinedOutput(); err != nil {
		return trafficResult{}, fmt.Errorf("building the CLI: %w\n%s", err, out)
	}
	manifests, graphFile := filepath.Join(dir, "workloads.yaml"), filepath.Join(dir, "graph.yaml")
	if err := writeWorkloads(manifests, sg); err != nil {
		return trafficResult{}, err
	}
	if err := writeYAML(graphFile, sg); err != nil {
		return trafficResult{}, err
	}
	now := time.Now()
	series, err := istioSeries(sg, seriesTotal, now)
	if err != nil {
		return trafficResult{}, err
	}
	res := trafficResult{Services: services, Edges: len(sg.Spec.Edges), Series: len(series)}
	for _, s := range series {
		res.Samples += len(s.Samples)
	}
	start := time.Now()
	prom, err := promtest.Start(promtest.Options{Backfill: series})
	if err != nil {
		return res, err
	}
	defer prom.Stop()
	res.Backfill = time.Since(start)
	since := "--since=" + model.Duration(trafficWindow+10*time.Minute).String()
	if res.Discover, err = timeCLI(ctx, prom.URL, cli, "discover", "--prometheus", prom.URL, "-n", trafficNamespace, "-f", manifests, since); err != nil {
		return res, err
	}
	if res.Audit, err = timeCLI(ctx, prom.URL, cli, "audit", "--prometheus", prom.URL, "-f", graphFile, "-f", manifests, since, "-o", "json"); err != nil {
		return res, err
	}
	return res, nil
}

// timeCLI runs the CLI and reads its resource use and the queries Prometheus served meanwhile.
func timeCLI(ctx context.Context, promURL, cli string, args ...string) (cliRun, error) {
	before, err := queryStats(promURL)
	if err != nil {
		return cliRun{}, err
	}
	cmd := exec.CommandContext(ctx, cli, args...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return cliRun{}, err
	}
	peak := watchPeakRSS(cmd.Process.Pid)
	_ = cmd.Wait()
	run := cliRun{Wall: time.Since(start), MaxRSS: <-peak}
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		return run, fmt.Errorf("servicegraph %s exited %d: %s", args[0], code, stderr.String())
	}
	run.CPU = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	after, err := queryStats(promURL)
	if err != nil {
		return run, err
	}
	run.Queries, run.QueryTime = after.count-before.count, after.time-before.time
	run.Outcome, err = outcome(args[0], stdout.String())
	return run, err
}

// watchPeakRSS reads a process's peak resident memory (VmHWM: its own since exec; getrusage's
// ru_maxrss would also count the parent's pages the child shared before exec) every 20 ms until
// it ends, and sends the last reading.
func watchPeakRSS(pid int) <-chan float64 {
	out := make(chan float64, 1)
	go func() {
		var peak float64
		path := "/proc/" + strconv.Itoa(pid) + "/status"
		for {
			data, err := os.ReadFile(path)
			if err != nil {
				break
			}
			_, rest, ok := strings.Cut(string(data), "VmHWM:")
			if !ok {
				break // a zombie: it has exited
			}
			if f := strings.Fields(rest); len(f) > 0 {
				if kb, err := strconv.ParseFloat(f[0], 64); err == nil {
					peak = kb * 1024
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
		out <- peak
	}()
	return out
}

// outcome summarises what a command printed: the graph discover proposed, the audit's verdict.
func outcome(command string, out string) (string, error) {
	if command == "discover" {
		sg := &v1alpha1.ServiceGraph{}
		if err := yaml.Unmarshal([]byte(out), sg); err != nil {
			return "", fmt.Errorf("discover printed no graph: %w", err)
		}
		g, err := graph.Build(sg)
		if err != nil {
			return "", fmt.Errorf("discover's graph: %w", err)
		}
		return fmt.Sprintf("proposed %s services, %s edges, %d TODOs", count(len(sg.Spec.Services)), count(len(g.Edges)),
			strings.Count(out, "# TODO")), nil
	}
	var report struct {
		Covered            bool
		Observed, Allowed  int
		Refused, Undecided []json.RawMessage
		Unused             []string
	}
	if err := json.Unmarshal([]byte(out), &report); err != nil {
		return "", fmt.Errorf("audit printed no report: %w", err)
	}
	return fmt.Sprintf("%s flows judged, %s allowed, %d refused, %d undecided, %d unused", count(report.Observed),
		count(report.Allowed), len(report.Refused), len(report.Undecided), len(report.Unused)), nil
}

type promStats struct {
	count int
	time  time.Duration
}

// queryStats reads the server's own count and total duration of /api/v1/query requests.
func queryStats(promURL string) (promStats, error) {
	resp, err := http.Get(promURL + "/metrics")
	if err != nil {
		return promStats{}, err
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return promStats{}, err
	}
	var s promStats
	for _, m := range families["prometheus_http_request_duration_seconds"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "handler" && l.GetValue() == "/api/v1/query" {
				s.count += int(m.GetHistogram().GetSampleCount())
				s.time += time.Duration(m.GetHistogram().GetSampleSum() * float64(time.Second))
			}
		}
	}
	return s, nil
}

// istioSeries are the destination-reported series Istio's proxies would export for the graph's
// edges over the window: HTTP edges (those with a path) as istio_requests_total with the
// Telemetry API's request_path and request_method, the others as
// istio_tcp_connections_opened_total; each edge's series differ by response code or revision.
func istioSeries(sg *v1alpha1.ServiceGraph, total int, end time.Time) ([]promtest.Series, error) {
	g, err := graph.Build(sg)
	if err != nil {
		return nil, err
	}
	perEdge := max(1, total/max(1, len(g.Edges)))
	codes := []string{"200", "201", "204", "301", "304", "400", "401", "403", "404", "409", "429", "500", "502", "503", "504"}
	var out []promtest.Series
	for _, e := range g.Edges {
		for i := range perEdge {
			labels := map[string]string{
				"reporter": "destination", "source_workload": e.From, "source_workload_namespace": sg.Namespace,
				"source_principal": "spiffe://cluster.local/ns/" + sg.Namespace + "/sa/" + e.From, "source_app": e.From,
				"source_version": "v1", "source_canonical_service": e.From, "source_canonical_revision": "v" + strconv.Itoa(i/len(codes)+1),
				"source_cluster": "Kubernetes", "destination_workload": e.To, "destination_workload_namespace": sg.Namespace,
				"destination_principal": "spiffe://cluster.local/ns/" + sg.Namespace + "/sa/" + e.To, "destination_app": e.To,
				"destination_version": "v1", "destination_service": e.To + "." + sg.Namespace + ".svc.cluster.local",
				"destination_service_name": e.To, "destination_service_namespace": sg.Namespace, "destination_canonical_service": e.To,
				"destination_canonical_revision": "v1", "destination_cluster": "Kubernetes", "connection_security_policy": "mutual_tls",
				"response_flags": "-",
			}
			name := "istio_tcp_connections_opened_total"
			if len(e.Paths) > 0 {
				name = "istio_requests_total"
				labels["request_protocol"], labels["response_code"], labels["grpc_response_status"] = "http", codes[i%len(codes)], ""
				labels["request_path"], labels["request_method"] = strings.ReplaceAll(e.Paths[0], "*", "items"), "GET"
			} else {
				labels["request_protocol"], labels["response_code"] = "tcp", "0"
				labels["source_canonical_revision"] = "v" + strconv.Itoa(i+1)
			}
			out = append(out, promtest.Counter(name, labels, end.Add(-trafficWindow), end, 5*time.Minute, float64(1+i%7)))
		}
	}
	return out, nil
}

// writeWorkloads writes a Deployment and a Service per graph service: the pods' labels and
// ServiceAccount as the graph selects them, the container port its edges reach.
func writeWorkloads(path string, sg *v1alpha1.ServiceGraph) error {
	var docs []string
	ns := &corev1.Namespace{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
		ObjectMeta: metav1.ObjectMeta{Name: sg.Namespace, Labels: map[string]string{"istio-injection": "enabled"}}}
	objs := []any{ns}
	for i, s := range sg.Spec.Services {
		labels := map[string]string{"app": s.Name}
		port := int32(8080 + i%8)
		objs = append(objs,
			&appsv1.Deployment{TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
				ObjectMeta: metav1.ObjectMeta{Name: s.Name, Namespace: sg.Namespace},
				Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec: corev1.PodSpec{ServiceAccountName: s.Name, Containers: []corev1.Container{{Name: "app", Image: "app",
						Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: port}}}}}}}},
			&corev1.Service{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
				ObjectMeta: metav1.ObjectMeta{Name: s.Name, Namespace: sg.Namespace},
				Spec:       corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(port)}}}})
	}
	for _, o := range objs {
		data, err := yaml.Marshal(o)
		if err != nil {
			return err
		}
		docs = append(docs, string(data))
	}
	return os.WriteFile(path, []byte(strings.Join(docs, "---\n")), 0o600)
}

func writeYAML(path string, o any) error {
	data, err := yaml.Marshal(o)
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o600)
}

func (r *report) trafficRows() []row {
	t := r.traffic
	if t.Services == 0 {
		return nil
	}
	scale := fmt.Sprintf("%s services, %s edges, %s series (%s samples over %s)", count(t.Services), count(t.Edges), count(t.Series),
		count(t.Samples), trafficWindow)
	describe := func(c cliRun) string {
		return fmt.Sprintf("%s wall, %s CPU, peak RSS %s; %d Prometheus queries taking %s on the server; %s",
			duration(c.Wall), duration(c.CPU), bytes(c.MaxRSS), c.Queries, duration(c.QueryTime), c.Outcome)
	}
	return []row{
		{measurement: "`servicegraph discover` over " + scale, result: describe(t.Discover)},
		{measurement: "`servicegraph audit` of the graph over the same series", result: describe(t.Audit)},
	}
}
