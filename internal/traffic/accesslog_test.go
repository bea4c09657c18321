package traffic

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func readAccessLog(t *testing.T, files ...string) ([]Flow, string) {
	t.Helper()
	return readAccessLogFrom(t, nil, files...)
}

// readAccessLogFrom reads standard input from stdin.
func readAccessLogFrom(t *testing.T, stdin io.Reader, files ...string) ([]Flow, string) {
	t.Helper()
	var warn bytes.Buffer
	flows, err := (&AccessLog{Files: files, Warn: &warn, Stdin: stdin}).Flows(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return flows, warn.String()
}

// Istio's access-log task: sleep's outbound line and httpbin's inbound line for one request, in
// the default text format (no peer identity). The graph they imply: sleep->httpbin on the pod's
// port 80 (not the Service's 8000), GET /status/418, in mutual TLS (Istio's outbound_ SNI); the
// caller known by its address; the outbound line adds nothing.
func TestAccessLogSampleIstioDocs(t *testing.T) {
	flows, warn := readAccessLog(t, "testdata/accesslog/istio-docs-sleep.log", "testdata/accesslog/istio-docs-httpbin.log")
	if len(flows) != 1 || !strings.Contains(warn, "istio-docs-sleep.log: skipped 1 not inbound") {
		t.Fatalf("flows %v, warnings %q", flows, warn)
	}
	f := flows[0]
	if f.From.IP != "10.44.1.23" || f.From.Principal != "" || f.To.IP != "10.44.1.27" || f.Port != 80 || f.Protocol != corev1.ProtocolTCP ||
		!f.HTTP || strings.Join(f.Paths, ",") != "/status/418" || strings.Join(f.Methods, ",") != "GET" || f.Count != 1 ||
		f.Security != MutualTLS || !f.First.Equal(time.Date(2020, 11, 25, 21, 26, 18, 409e6, time.UTC)) || f.Source != "access-log" {
		t.Errorf("flow %+v", f)
	}
	inv := &Inventory{
		Workloads: []Workload{
			pod("foo", "sleep", "sleep", "10.44.1.23", map[string]string{"app": "sleep"}),
			pod("foo", "httpbin", "httpbin", "10.44.1.27", map[string]string{"app": "httpbin"}, 80),
		},
		Services: []corev1.Service{{ObjectMeta: metav1.ObjectMeta{Name: "httpbin", Namespace: "foo"},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "httpbin"}, Ports: []corev1.ServicePort{{Port: 8000, TargetPort: intstr.FromInt32(80)}}}}},
	}
	p := Discover(flows, inv, []string{"foo"}, t0)[0]
	if len(p.Edges) != 1 || p.Edges[0].From != "sleep" || p.Edges[0].To != "httpbin" || len(p.Edges[0].Ports) != 1 || p.Edges[0].Ports[0] != 80 {
		t.Fatalf("edges %+v", p.Edges)
	}
	out := compiles(t, p)
	for _, want := range []string{"- from: sleep\n    to: httpbin\n    ports:\n    - port: 80\n    paths: [/status/418]\n    methods: [GET]",
		"1 request; first 2020-11-25T21:26:18Z", "mutual TLS", "port observed", "seen by access-log"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in\n%s", want, out)
		}
	}
}

// JSON lines with Istio's default keys plus the peer SAN: the caller's principal when the
// certificate names one (the SPIFFE one of several), plain text when the key is there but empty,
// unknown when the format lacks it; TCP lines without a method; a request an AuthorizationPolicy
// refused, kept and marked; IPv6; the query left out of the path; outbound lines, the proxy's own
// log lines and jq's pretty-printing.
func TestAccessLogJSON(t *testing.T) {
	line := func(fields string) string {
		return `{"start_time":"2026-12-01T10:00:00.000Z","route_name":"default","protocol":"HTTP/1.1","response_code":200,"response_flags":"-","bytes_received":0,` + fields + `}`
	}
	content := strings.Join([]string{
		line(`"method":"GET","path":"/items?page=2","upstream_cluster":"inbound|8080||","downstream_local_address":"10.1.0.5:8080","downstream_remote_address":"10.1.0.9:51000","requested_server_name":"outbound_.80_._.api.shop.svc.cluster.local","downstream_peer_uri_san":"spiffe://cluster.local/ns/shop/sa/web"`),
		line(`"method":"POST","path":"/cart","upstream_cluster":"inbound|8080||","downstream_local_address":"10.1.0.6:8080","downstream_remote_address":"10.1.0.9:51002","requested_server_name":"outbound_.80_._.api.shop.svc.cluster.local","downstream_peer_uri_san":"urn:example:web,spiffe://cluster.local/ns/shop/sa/web"`),
		line(`"method":"GET","path":"/healthz","upstream_cluster":"inbound|8080||","downstream_local_address":"10.1.0.5:8080","downstream_remote_address":"10.1.0.20:40000","requested_server_name":null,"downstream_peer_uri_san":null`),
		line(`"method":"GET","path":"/admin","upstream_cluster":"inbound|8080||","downstream_local_address":"10.1.0.5:8080","downstream_remote_address":"10.1.0.9:51004","response_code_details":"rbac_access_denied_matched_policy[none]","downstream_peer_uri_san":"spiffe://cluster.local/ns/shop/sa/web","response_code":403`),
		line(`"method":null,"path":null,"upstream_cluster":"inbound|5432||","downstream_local_address":"[fd00::7]:5432","downstream_remote_address":"[fd00::5]:33000","requested_server_name":"-","response_code_details":"rbac_access_denied_matched_policy[none]"`),
		line(`"method":"GET","path":"/v1","upstream_cluster":"outbound|80||api.shop.svc.cluster.local","downstream_local_address":"10.96.0.12:80","downstream_remote_address":"10.1.0.9:51000"`),
		line(`"method":null,"upstream_cluster":"InboundPassthroughClusterIpv4","downstream_local_address":"10.1.0.5:9100","downstream_remote_address":"10.1.0.30:41000","requested_server_name":null`),
		"2026-12-01T10:00:00.000000Z\tinfo\tEnvoy proxy is ready",
		"{\n  \"upstream_cluster\": \"inbound|8080||\",\n  \"downstream_local_address\": \"10.1.0.5:8080\",\n  \"downstream_remote_address\": \"10.1.0.9:51006\",\n  \"method\": \"GET\",\n  \"path\": \"/items\",\n  \"downstream_peer_uri_san\": \"spiffe://cluster.local/ns/shop/sa/web\"\n}",
	}, "\n") + "\n"
	in := strings.NewReader(content)
	flows, warn := readAccessLogFrom(t, in, "-")
	if !strings.Contains(warn, "access log -: skipped 1 not an access-log line (neither JSON nor Istio's text format), 1 not inbound") {
		t.Errorf("warnings %q", warn)
	}
	byKey := map[string]Flow{}
	for _, f := range flows {
		byKey[f.String()+" "+f.From.Principal] = f
	}
	web := "cluster.local/ns/shop/sa/web"
	want := map[string]func(Flow) bool{
		"cluster.local/ns/shop/sa/web -> 10.1.0.5 TCP/8080 " + web: func(f Flow) bool {
			return f.From.IP == "10.1.0.9" && f.Security == MutualTLS && f.Count == 3 && strings.Join(f.Paths, ",") == "/admin,/items" &&
				strings.Join(f.Methods, ",") == "GET" && f.Source == "access-log" && f.First.Equal(t0)
		},
		"cluster.local/ns/shop/sa/web -> 10.1.0.6 TCP/8080 " + web: func(f Flow) bool { return f.Count == 1 && f.Paths[0] == "/cart" },
		"10.1.0.20 -> 10.1.0.5 TCP/8080 ":                          func(f Flow) bool { return f.Security == Plaintext && f.Paths[0] == "/healthz" },
		"fd00::5 -> fd00::7 TCP/5432 ": func(f Flow) bool {
			return !f.HTTP && f.Count == 1 && f.Security == Unknown && f.Source == "access-log (every attempt refused: rbac_access_denied_matched_policy[none])"
		},
		"10.1.0.30 -> 10.1.0.5 TCP/9100 ": func(f Flow) bool { return !f.HTTP && f.Security == Unknown },
	}
	if len(flows) != len(want) {
		t.Errorf("%d flows, want %d: %v", len(flows), len(want), flows)
	}
	for k, ok := range want {
		if f, seen := byKey[k]; !seen || !ok(f) {
			t.Errorf("%s: %+v (seen %v)", k, f, seen)
		}
	}

	// The caller by principal, the destination by address: the inventory places both.
	inv := &Inventory{Workloads: []Workload{
		pod("shop", "web", "web", "10.1.0.9", map[string]string{"app": "web"}),
		pod("shop", "api", "api", "10.1.0.5", map[string]string{"app": "api"}, 8080),
	}}
	inv.Workloads[0].IPs = append(inv.Workloads[0].IPs, "fd00::5")
	inv.Workloads[1].IPs = append(inv.Workloads[1].IPs, "10.1.0.6")
	inv.Workloads = append(inv.Workloads, pod("shop", "db", "db", "fd00::7", map[string]string{"app": "db"}, 5432))
	p := Discover(flows, inv, []string{"shop"}, t0)[0]
	out := compiles(t, p)
	for _, want := range []string{"from: web\n    to: api", "- web->db:5432", "seen by access-log (every attempt refused: rbac_access_denied_matched_policy[none])",
		"addr-10-1-0-20", "PLAIN TEXT"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in\n%s", want, out)
		}
	}
}

// A file with no access-log line fails, naming its first line; a JSON line that does not parse
// fails with its file and line.
func TestAccessLogMalformed(t *testing.T) {
	for _, tc := range []struct{ content, want string }{
		{"2026-12-01T10:00:00Z info starting\n2026-12-01T10:00:01Z info ready\n", ":1: not an access-log line, and no line of the file is"},
		{`{"upstream_cluster":"inbound|80||","downstream_local_address":"10.0.0.1:80"}` + "\n" + `{"upstream_cluster":"inbound|80||",,}` + "\n", ":2: not JSON"},
		{`{"upstream_cluster":"inbound|80||","downstream_local_address":80}` + "\n", ":1: json: cannot unmarshal number"},
	} {
		name := writeTemp(t, tc.content)
		_, err := (&AccessLog{Files: []string{name}}).Flows(context.Background(), nil)
		if err == nil || !strings.Contains(err.Error(), name+tc.want) {
			t.Errorf("%q: %v, want %q", tc.content, err, tc.want)
		}
	}
	// Lines without the destination's address are skipped, not an error.
	flows, warn := readAccessLog(t, writeTemp(t, `{"upstream_cluster":"inbound|80||","downstream_local_address":"-"}`+"\n"))
	if len(flows) != 0 || !strings.Contains(warn, "1 without the destination's address") {
		t.Errorf("flows %v, warnings %q", flows, warn)
	}
}

// The registry names both file sources; opening checks the files.
func TestFileSourcesRegistered(t *testing.T) {
	open := map[string]func(string, SourceOptions) (Source, error){}
	for _, k := range Sources {
		open[k.Flag] = k.Open
	}
	for flag, file := range map[string]string{"flows": "testdata/hubble/aks-network-flow-logs.json", "access-log": "testdata/accesslog/istio-docs-httpbin.log"} {
		if open[flag] == nil {
			t.Fatalf("no --%s", flag)
		}
		src, err := open[flag](file, SourceOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if flows, err := src.Flows(context.Background(), []string{"default", "foo"}); err != nil || len(flows) != 1 {
			t.Errorf("--%s: %v %v", flag, flows, err)
		}
		if _, err := open[flag](file+",testdata/none.json", SourceOptions{}); err == nil {
			t.Errorf("--%s: a missing file opened", flag)
		}
	}
}
