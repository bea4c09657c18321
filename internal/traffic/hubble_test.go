package traffic

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/compiler"
)

// pod is one workload of an inventory built from what a sample says.
func pod(ns, name, sa, ip string, labels map[string]string, ports ...int32) Workload {
	w := Workload{Namespace: ns, Name: name, ServiceAccount: sa, IPs: []string{ip}, Labels: labels, Meshed: true}
	for _, p := range ports {
		w.Ports = append(w.Ports, corev1.ContainerPort{ContainerPort: p, Protocol: corev1.ProtocolTCP})
	}
	return w
}

func readHubble(t *testing.T, files ...string) ([]Flow, string) {
	t.Helper()
	return readHubbleFrom(t, nil, files...)
}

// readHubbleFrom reads standard input from stdin.
func readHubbleFrom(t *testing.T, stdin io.Reader, files ...string) ([]Flow, string) {
	t.Helper()
	var warn bytes.Buffer
	flows, err := (&Hubble{Files: files, Warn: &warn, Stdin: stdin}).Flows(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return flows, warn.String()
}

// compiles holds a proposal to what users get: a valid ServiceGraph the compiler takes.
func compiles(t *testing.T, p *Proposal) string {
	t.Helper()
	out := string(p.Write())
	sg := &v1alpha1.ServiceGraph{}
	if err := yaml.UnmarshalStrict([]byte(out), sg); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if _, err := compiler.Compile(sg, compiler.DefaultOptions(), compiler.Facts{}); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return out
}

// Cilium's exporter documentation: an ICMPv6 router solicitation (no port) and xwing's SYN to the
// deathstar on port 80, dropped by policy, both behind a field mask without labels. The graph it
// implies: xwing->deathstar:80, marked as only ever refused; the deathstar is found by its address
// (the flow names the pod, not its Deployment).
func TestHubbleSampleCiliumExport(t *testing.T) {
	flows, warn := readHubble(t, "testdata/hubble/cilium-docs-export.json")
	if len(flows) != 1 || !strings.Contains(warn, "1 without a port") {
		t.Fatalf("flows %v, warnings %q", flows, warn)
	}
	f := flows[0]
	if f.From.String() != "default/xwing" || f.From.IP != "10.244.1.60" || f.To.String() != "default/deathstar-7848d6c4d5-th9v2" ||
		f.To.IP != "10.244.1.5" || f.Protocol != corev1.ProtocolTCP || f.Port != 80 || f.Count != 1 || f.Security != Unknown ||
		f.Source != "hubble (every attempt refused: DROPPED POLICY_DENIED)" || !f.First.Equal(time.Date(2023, 8, 21, 12, 12, 18, 510175415, time.UTC)) {
		t.Errorf("flow %+v", f)
	}
	inv := &Inventory{Workloads: []Workload{
		pod("default", "xwing", "default", "10.244.1.60", map[string]string{"app": "xwing"}),
		pod("default", "deathstar", "default", "10.244.1.5", map[string]string{"app": "deathstar"}, 80),
	}}
	p := Discover(flows, inv, []string{"default"}, t0)[0]
	if len(p.Edges) != 1 || p.Edges[0].From != "xwing" || p.Edges[0].To != "deathstar" || len(p.Edges[0].Ports) != 1 || p.Edges[0].Ports[0] != 80 {
		t.Fatalf("edges %+v", p.Edges)
	}
	out := compiles(t, p)
	for _, want := range []string{"- xwing->deathstar:80", "port observed", "seen by hubble (every attempt refused: DROPPED POLICY_DENIED)", "first 2023-08-21T12:12:18Z"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in\n%s", want, out)
		}
	}
}

// Microsoft's AKS network flow logs test: two reply packets from kapinger-good:8080 back to
// kapinger-bad's port 60778, then kapinger-bad's FIN to kapinger-good:8080. The graph it implies:
// kapinger-bad->kapinger-good:8080 only; the replies are no edge the other way round.
func TestHubbleSampleAKS(t *testing.T) {
	flows, warn := readHubble(t, "testdata/hubble/aks-network-flow-logs.json")
	if len(flows) != 1 || !strings.Contains(warn, "2 replies") {
		t.Fatalf("flows %v, warnings %q", flows, warn)
	}
	f := flows[0]
	if f.From.String() != "default/kapinger-bad" || f.To.String() != "default/kapinger-good" || f.Port != 8080 || f.Count != 1 ||
		f.From.Labels["server"] != "bad" || f.To.Labels["app"] != "kapinger" || f.To.IP != "10.0.1.13" || f.Source != "hubble" {
		t.Errorf("flow %+v", f)
	}
	inv := &Inventory{Workloads: []Workload{
		pod("default", "kapinger-good", "default", "10.0.1.13", map[string]string{"app": "kapinger", "server": "good"}, 8080),
		pod("default", "kapinger-bad", "default", "10.0.1.178", map[string]string{"app": "kapinger", "server": "bad"}),
	}}
	p := Discover(flows, inv, []string{"default"}, t0)[0]
	out := compiles(t, p)
	if len(p.Edges) != 1 || !strings.Contains(out, "- kapinger-bad->kapinger-good:8080") || strings.Contains(out, "60778") {
		t.Errorf("edges %+v\n%s", p.Edges, out)
	}
}

// One connection written three ways: protojson's proto names in the exporter's wrapper,
// protojson's lowerCamelCase as a bare flow, and a Go struct through encoding/json (enum numbers,
// {"value": ...} wrappers, {seconds, nanos} times). All read the same.
func TestHubbleSpellings(t *testing.T) {
	lines := []string{
		`{"flow":{"time":"2026-12-01T10:00:00Z","verdict":"FORWARDED","IP":{"source":"10.0.0.1","destination":"10.0.0.2"},"l4":{"TCP":{"source_port":40000,"destination_port":8080,"flags":{"SYN":true}}},"source":{"namespace":"shop","labels":["k8s:app=web","k8s:io.cilium.k8s.policy.serviceaccount=web-sa","k8s:io.kubernetes.pod.namespace=shop","k8s:io.cilium.k8s.namespace.labels.team=a","k8s:io.cilium.k8s.policy.cluster=default"],"pod_name":"web-5d8f7c9b6d-x2x9z","workloads":[{"name":"web","kind":"Deployment"}]},"destination":{"namespace":"shop","labels":["k8s:app=api"],"pod_name":"api-0"},"Type":"L3_L4","traffic_direction":"INGRESS","is_reply":false},"node_name":"n1","time":"2026-12-01T10:00:00Z"}`,
		`{"time":"2026-12-01T10:00:00Z","verdict":"FORWARDED","IP":{"source":"10.0.0.1","destination":"10.0.0.2"},"l4":{"TCP":{"sourcePort":40000,"destinationPort":8080}},"source":{"namespace":"shop","labels":["k8s:app=web","k8s:io.cilium.k8s.policy.serviceaccount=web-sa"],"podName":"web-5d8f7c9b6d-x2x9z","workloads":[{"name":"web-5d8f7c9b6d","kind":"ReplicaSet"}]},"destination":{"namespace":"shop","labels":["k8s:app=api"],"podName":"api-0"},"Type":"L3_L4","trafficDirection":"INGRESS","isReply":false}`,
		`{"Time":{"seconds":1796119200},"Verdict":1,"IP":{"Source":"10.0.0.1","Destination":"10.0.0.2"},"L4":{"TCP":{"SourcePort":40000,"DestinationPort":8080}},"Source":{"Namespace":"shop","Labels":["k8s:app=web","k8s:io.cilium.k8s.policy.serviceaccount=web-sa"],"PodName":"web-5d8f7c9b6d-x2x9z","Workloads":[{"Name":"web","Kind":"Deployment"}]},"Destination":{"Namespace":"shop","Labels":["k8s:app=api"],"PodName":"api-0"},"Type":1,"IsReply":{"value":false}}`,
	}
	var first Flow
	for i, line := range lines {
		flows := hubbleLines(t, line)
		if len(flows) != 1 {
			t.Fatalf("%d: flows %v", i, flows)
		}
		f := flows[0]
		if f.From.String() != "shop/web" || f.From.ServiceAccount != "web-sa" || len(f.From.Labels) != 1 || f.From.Labels["app"] != "web" ||
			f.To.String() != "shop/api-0" || f.Port != 8080 || f.Count != 1 || !f.First.Equal(t0) {
			t.Errorf("%d: flow %+v", i, f)
		}
		if i == 0 {
			first = f
		} else if f.String() != first.String() {
			t.Errorf("%d: %s, want %s", i, f, first)
		}
	}
}

func hubbleLines(t *testing.T, lines ...string) []Flow {
	t.Helper()
	name := filepath.Join(t.TempDir(), "flows.json")
	if err := os.WriteFile(name, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	flows, _ := readHubble(t, name)
	return flows
}

// flowLine writes a bare flow in proto names.
func flowLine(verdict, src string, sport int, dst string, dport int, extra string) string {
	return `{"verdict":"` + verdict + `","IP":{"source":"` + src + `","destination":"` + dst + `"},"l4":{"TCP":{"source_port":` +
		strconv.Itoa(sport) + `,"destination_port":` + strconv.Itoa(dport) + `}},"source":{"namespace":"shop","pod_name":"web"},` +
		`"destination":{"namespace":"shop","pod_name":"api"}` + extra + `}`
}

// Connections count once per 5-tuple whatever Cilium reports of them; replies, L7 responses,
// socket translations and the node's own probes are skipped; HTTP requests count each, with the path without its query.
func TestHubbleConnections(t *testing.T) {
	flows := hubbleLines(t,
		flowLine("FORWARDED", "10.0.0.1", 40000, "10.0.0.2", 8080, `,"time":"2026-12-01T10:00:00Z"`),
		flowLine("FORWARDED", "10.0.0.1", 40000, "10.0.0.2", 8080, `,"time":"2026-12-01T10:05:00Z","trace_observation_point":"TO_ENDPOINT"`),
		flowLine("FORWARDED", "10.0.0.1", 40001, "10.0.0.2", 8080, `,"time":"2026-12-01T09:55:00Z"`),
		flowLine("FORWARDED", "10.0.0.2", 8080, "10.0.0.1", 40000, `,"is_reply":true`),
		flowLine("FORWARDED", "10.0.0.2", 8080, "10.0.0.1", 40001, `,"reply":true`),
		flowLine("TRANSLATED", "10.0.0.1", 40002, "10.96.0.10", 80, `,"Type":"SOCK"`),
		flowLine("DROPPED", "10.0.0.1", 40003, "10.0.0.2", 9090, `,"drop_reason_desc":"POLICY_DENIED"`),
		flowLine("AUDIT", "10.0.0.1", 40004, "10.0.0.2", 9091, ``),
		flowLine("FORWARDED", "10.0.0.1", 40005, "10.0.0.2", 80, `,"Type":"L7","l7":{"type":"REQUEST","http":{"method":"GET","url":"http://api.shop:80/v1/items?page=2"}}`),
		flowLine("FORWARDED", "10.0.0.1", 40005, "10.0.0.2", 80, `,"Type":"L7","l7":{"type":"REQUEST","http":{"method":"POST","url":"http://api.shop:80/v1/cart"}}`),
		flowLine("FORWARDED", "10.0.0.2", 80, "10.0.0.1", 40005, `,"Type":"L7","l7":{"type":"RESPONSE","http":{"code":200,"url":"http://api.shop:80/v1/cart"}}`),
		flowLine("FORWARDED", "10.0.0.1", 40006, "10.0.0.2", 80, `,"Type":"L7","l7":{"type":"RESPONSE","http":{"code":200}}`),
		`{"verdict":"FORWARDED","IP":{"source":"fd00::1","destination":"fd00::2"},"l4":{"UDP":{"source_port":5353,"destination_port":53}},"source":{"namespace":"shop","pod_name":"web"},"destination":{"namespace":"kube-system","labels":["k8s:k8s-app=kube-dns"],"pod_name":"coredns-abc"}}`,
		`{"verdict":"FORWARDED","IP":{"source":"203.0.113.7","destination":"10.0.0.2"},"l4":{"TCP":{"source_port":5000,"destination_port":8080}},"source":{"identity":2,"labels":["reserved:world"]},"destination":{"namespace":"shop","pod_name":"api"}}`,
		`{"node_status":{"state_change":"NODE_CONNECTED","node_names":["n1"]}}`,
		`{"verdict":"FORWARDED","IP":{"source":"172.18.0.2","destination":"10.0.0.2"},"l4":{"TCP":{"source_port":6000,"destination_port":8081}},"source":{"identity":1,"labels":["reserved:host"]},"destination":{"namespace":"shop","pod_name":"api"}}`,
		`{"verdict":"FORWARDED","IP":{"source":"172.18.0.2","destination":"10.0.0.2"},"l4":{"TCP":{"source_port":6001,"destination_port":8081}},"source":{"identity":1},"destination":{"namespace":"shop","pod_name":"api"}}`,
	)
	byKey := map[string]Flow{}
	for _, f := range flows {
		byKey[f.String()] = f
	}
	want := map[string]func(Flow) bool{
		"shop/web -> shop/api TCP/8080": func(f Flow) bool {
			return f.Count == 2 && !f.HTTP && f.First.Equal(t0.Add(-5*time.Minute)) && f.Last.Equal(t0.Add(5*time.Minute)) && f.Source == "hubble"
		},
		"shop/web -> shop/api TCP/9090": func(f Flow) bool { return f.Source == "hubble (every attempt refused: DROPPED POLICY_DENIED)" },
		"shop/web -> shop/api TCP/9091": func(f Flow) bool { return f.Source == "hubble" },
		"shop/web -> shop/api TCP/80": func(f Flow) bool {
			return f.HTTP && f.Count == 2 && strings.Join(f.Paths, ",") == "/v1/cart,/v1/items" && strings.Join(f.Methods, ",") == "GET,POST"
		},
		"shop/web -> kube-system/coredns-abc UDP/53": func(f Flow) bool { return f.From.IP == "fd00::1" && f.To.Labels["k8s-app"] == "kube-dns" },
		"203.0.113.7 -> shop/api TCP/8080":           func(f Flow) bool { return !f.From.Known() && f.From.Labels == nil },
	}
	if len(flows) != len(want) {
		t.Errorf("%d flows, want %d: %v", len(flows), len(want), flows)
	}
	for k, ok := range want {
		if f, seen := byKey[k]; !seen || !ok(f) {
			t.Errorf("%s: %+v (seen %v)", k, f, seen)
		}
	}
	// Only the namespaces asked for.
	h := &Hubble{Files: []string{writeTemp(t, flowLine("FORWARDED", "10.0.0.1", 1, "10.0.0.2", 2, ""))}}
	if got, err := h.Flows(context.Background(), []string{"other"}); err != nil || len(got) != 0 {
		t.Errorf("other namespace: %v %v", got, err)
	}
}

func writeTemp(t *testing.T, content string) string {
	t.Helper()
	name := filepath.Join(t.TempDir(), "in")
	if err := os.WriteFile(name, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return name
}

// A pretty-printed stream (jq's) reads like one object per line; standard input works.
func TestHubblePrettyStdin(t *testing.T) {
	pretty := "{\n  \"flow\": {\n    \"IP\": {\"source\": \"10.0.0.1\", \"destination\": \"10.0.0.2\"},\n    \"l4\": {\"TCP\": {\"destination_port\": 8080}},\n" +
		"    \"source\": {\"namespace\": \"shop\", \"pod_name\": \"web\"},\n    \"destination\": {\"namespace\": \"shop\", \"pod_name\": \"api\"}\n  }\n}\n\n"
	in := strings.NewReader(pretty + flowLine("FORWARDED", "10.0.0.1", 2, "10.0.0.2", 9090, "") + "\n")
	flows, _ := readHubbleFrom(t, in, "-")
	if len(flows) != 2 || flows[0].Port != 8080 || flows[1].Port != 9090 {
		t.Errorf("flows %v", flows)
	}
}

// A line that is not a flow fails with the file and line; the error says what to write.
func TestHubbleMalformed(t *testing.T) {
	good := flowLine("FORWARDED", "10.0.0.1", 1, "10.0.0.2", 2, "")
	for _, tc := range []struct{ content, want string }{
		{good + "\n" + good + "\n{\"flow\": {\"IP\": }\n", ":3: not JSON"},
		{good + "\nMay  4 13:23:40.501: default/tiefighter:42690 -> default/deathstar:80 http-request FORWARDED\n", ":2: not a JSON flow: write flows with `hubble observe -o json`"},
		{"\n" + good + " trailing\n", ":2: not JSON: text after the JSON object"},
		{good + "\n{\"flow\": {\n  \"IP\": {}\n", ":2: the JSON object that starts here does not end"},
		{`{"flow":{"l4":{"TCP":{"destination_port":"eighty"}}}}` + "\n", ":1: json: cannot unmarshal"},
	} {
		name := writeTemp(t, tc.content)
		_, err := (&Hubble{Files: []string{name}}).Flows(context.Background(), nil)
		if err == nil || !strings.Contains(err.Error(), name+tc.want) {
			t.Errorf("%q: %v, want %q", tc.content, err, tc.want)
		}
	}
}

func TestFileArgs(t *testing.T) {
	a, b := writeTemp(t, ""), writeTemp(t, "")
	if files, err := fileArgs(a + ", -," + b + ","); err != nil || strings.Join(files, "|") != a+"|-|"+b {
		t.Errorf("%v %v", files, err)
	}
	if _, err := fileArgs(a + ",/nonexistent/flows.json"); err == nil || !strings.Contains(err.Error(), "/nonexistent/flows.json") {
		t.Errorf("missing file: %v", err)
	}
	if _, err := fileArgs(" , "); err == nil {
		t.Error("no file: no error")
	}
}

func TestFoldKeys(t *testing.T) {
	in := `{"source_port": 1, "url":"http://a/b_c?x_y=1", "esc\"_k": "v\\\"_w", "labels":["k8s:a_b=c_d"], "is_reply" :false}`
	want := `{"sourceport": 1, "url":"http://a/b_c?x_y=1", "esc\"k": "v\\\"_w", "labels":["k8s:a_b=c_d"], "isreply" :false}`
	if got := string(foldKeys([]byte(in))); got != want {
		t.Errorf("\n got %s\nwant %s", got, want)
	}
}

func TestReplicaSetOwner(t *testing.T) {
	for in, want := range map[string]string{"client-allow-7b78d7c957": "client-allow", "web-5d8f7c9b6d": "web", "web": "web", "my-app-v2": "my-app-v2", "cache-abc": "cache-abc"} {
		if got := replicaSetOwner(in); got != want {
			t.Errorf("%s: %s, want %s", in, got, want)
		}
	}
}
