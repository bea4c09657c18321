package browser_test

import (
	"bytes"
	"context"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/cli"
	"github.com/servicegraph/servicegraph-operator/internal/compiler"
	"github.com/servicegraph/servicegraph-operator/internal/eval"
	"github.com/servicegraph/servicegraph-operator/internal/graph"
	"github.com/servicegraph/servicegraph-operator/internal/traffic"
	"github.com/servicegraph/servicegraph-operator/test/browser"
)

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

// shop is a world to audit: the graph compiled as Enforce applies it (the judge behind `check`),
// the workloads of shop and a peer's in payments.
type shop struct {
	judge  *eval.Cluster
	inv    *traffic.Inventory
	graphs []*graph.Graph
}

func newShop(t *testing.T) shop {
	t.Helper()
	sg := &v1alpha1.ServiceGraph{ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: "shop"},
		Spec: v1alpha1.ServiceGraphSpec{
			Services: []v1alpha1.Service{{Name: "web"}, {Name: "api"}, {Name: "database"}, {Name: "legacy"}, {Name: "worker"}, {Name: "batch"},
				{Name: "cache"}, {Name: "gateway", Namespace: "payments"}},
			External: []v1alpha1.External{{Name: "ingress", Namespaces: &v1alpha1.ExternalNamespaces{Names: []string{"istio-ingress"}}}},
			Edges: []string{"ingress->web:8080", "web->api:8080", "api->database:5432", "legacy->api:8080", "web->database:5432",
				"api->cache:6379", "worker->api:9090/jobs", "batch->api:9090/jobs", "api->payments/gateway:443"},
		}}
	res, err := compiler.Compile(sg, compiler.DefaultOptions(), compiler.Facts{})
	if err != nil {
		t.Fatal(err)
	}
	c := &eval.Cluster{}
	for _, o := range res.Objects() {
		c.Add(o)
	}
	wl := func(ns, name string, meshed bool, ports ...int32) traffic.Workload {
		w := traffic.Workload{Namespace: ns, Name: name, Labels: map[string]string{"app": name}, ServiceAccount: name, Meshed: meshed}
		for _, p := range ports {
			w.Ports = append(w.Ports, corev1.ContainerPort{ContainerPort: p})
		}
		return w
	}
	inv := &traffic.Inventory{Workloads: []traffic.Workload{wl("shop", "web", true, 8080), wl("shop", "api", true, 8080, 9090),
		wl("shop", "database", true, 5432), wl("shop", "legacy", false, 9000), wl("shop", "worker", true), wl("shop", "batch", true),
		wl("shop", "cache", true, 6379), wl("payments", "gateway", true, 443)}}
	return shop{c, inv, []*graph.Graph{res.Graph}}
}

func flow(from, to string, port int32, count float64, sec traffic.Security) traffic.Flow {
	f := traffic.Flow{From: traffic.Party{Namespace: "shop", Workload: from}, To: traffic.Party{Namespace: "shop", Workload: to},
		Protocol: corev1.ProtocolTCP, Port: port, Count: count, Security: sec, Source: "access-log", First: t0, Last: t0.Add(time.Hour)}
	if sec == traffic.MutualTLS {
		f.From.Principal = "cluster.local/ns/shop/sa/" + from
	}
	return f
}

// request makes a flow HTTP requests, with the paths seen (none: the source did not say).
func request(f traffic.Flow, paths ...string) traffic.Flow {
	f.HTTP, f.Paths, f.Methods = true, paths, []string{"POST"}
	return f
}

// allowedFlows are what the graph lets through, from the ingress gateway (known by its identity)
// to a peer in payments.
func allowedFlows() []traffic.Flow {
	toGateway := flow("api", "gateway", 443, 7, traffic.MutualTLS)
	toGateway.To.Namespace = "payments"
	return []traffic.Flow{
		{From: traffic.Party{Principal: "cluster.local/ns/istio-ingress/sa/gateway"}, To: traffic.Party{Namespace: "shop", Workload: "web"},
			Protocol: corev1.ProtocolTCP, Port: 8080, Count: 50, Security: traffic.MutualTLS, Source: "access-log"},
		flow("web", "api", 8080, 1200, traffic.MutualTLS),
		flow("api", "database", 5432, 30, traffic.MutualTLS),
		toGateway,
	}
}

// refusingFlows add every other verdict: refused at L4 (a caller with no edge, an unknown
// address) and at authorization (a path no rule allows), plain text under STRICT, undecided (a
// request seen without its path, against a rule on paths).
func refusingFlows() []traffic.Flow {
	return append(allowedFlows(),
		flow("database", "api", 8080, 3, traffic.MutualTLS),
		request(flow("worker", "api", 9090, 9, traffic.MutualTLS), "/admin"),
		flow("legacy", "api", 8080, 4, traffic.Plaintext),
		request(flow("batch", "api", 9090, 2, traffic.MutualTLS)),
		traffic.Flow{From: traffic.Party{IP: "10.9.9.9"}, To: traffic.Party{Namespace: "shop", Workload: "web"}, Protocol: corev1.ProtocolTCP,
			Port: 8080, Count: 1, Security: traffic.Plaintext, Source: "access-log"},
	)
}

func (s shop) audit(flows []traffic.Flow) *traffic.Report {
	return traffic.Audit(flows, s.inv, s.judge, s.graphs)
}

// writePage writes the report's page where the browser will read it.
func writePage(t *testing.T, page []byte) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "audit.html")
	if err := os.WriteFile(file, page, 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

func requireChromium(t *testing.T) {
	t.Helper()
	if err := browser.Require(); err != nil {
		t.Fatal(err) // never a skip: make test installs it (make chromium)
	}
}

// quiet fails on anything the page wrote to the console: it has no script, so a message is a
// blocked fetch or a broken page.
func quiet(t *testing.T, res *browser.Result) {
	t.Helper()
	for _, line := range res.Console {
		t.Errorf("console: %s", line)
	}
}

// dom lists the elements of the browser's DOM with an attribute, by its value.
func dom(t *testing.T, serialised []byte, key string) map[string][]*html.Node {
	t.Helper()
	doc, err := html.Parse(bytes.NewReader(serialised))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]*html.Node{}
	for n := range doc.Descendants() {
		for _, a := range n.Attr {
			if a.Key == key {
				out[a.Val] = append(out[a.Val], n)
			}
		}
	}
	return out
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

// The DOM Chromium builds from the page holds every curve, node, row and legend entry the
// drawing has, with its verdict: the markup parses as intended (nothing dropped or nested
// elsewhere) and loads without a console message.
func TestAuditPageDOM(t *testing.T) {
	requireChromium(t)
	r := newShop(t).audit(refusingFlows())
	d := r.Draw()
	res, err := browser.DumpDOM(context.Background(), writePage(t, r.HTML()))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("chromium --dump-dom: %v", res.Took.Round(time.Millisecond))
	quiet(t, res)
	edges := dom(t, res.Stdout, "data-edge")
	for _, e := range d.Edges {
		var curve, rows int
		for _, n := range edges[e.ID] {
			switch {
			case attr(n, "data-verdict") != string(e.Verdict):
				t.Errorf("%s is %q in the DOM, want %q", e.ID, attr(n, "data-verdict"), e.Verdict)
			case n.Data == "g" && n.Parent != nil && n.Parent.Data == "svg":
				curve++
			case n.Data == "tr":
				rows++
			}
		}
		if curve != 1 || rows != 1 {
			t.Errorf("%s (%s): %d curves in the SVG and %d table rows in the DOM, want one of each", e.ID, e.Verdict, curve, rows)
		}
	}
	nodes := dom(t, res.Stdout, "data-node")
	for _, n := range d.Nodes {
		if len(nodes[n.ID]) != 1 || attr(nodes[n.ID][0], "data-x") == "" {
			t.Errorf("node %s: %d in the DOM", n.ID, len(nodes[n.ID]))
		}
	}
	if len(edges) != len(d.Edges) || len(nodes) != len(d.Nodes) || len(dom(t, res.Stdout, "data-legend-verdict")) != len(traffic.Verdicts) {
		t.Errorf("the DOM has %d edges and %d nodes, the drawing %d and %d", len(edges), len(nodes), len(d.Edges), len(d.Nodes))
	}
	verdicts := map[string]bool{}
	for _, e := range d.Edges {
		verdicts[string(e.Verdict)] = true
	}
	if len(verdicts) != len(traffic.Verdicts) {
		t.Errorf("the fixture draws verdicts %v, want all of %v", verdicts, traffic.Verdicts)
	}
}

// Names from the traffic source stay text in the browser's DOM: no element comes out of them.
func TestAuditPageEscapesInBrowser(t *testing.T) {
	requireChromium(t)
	const name, ip = "<script>alert(1)</script>", `"><img src=x onerror=alert(3)>`
	evil := request(flow(name, "api", 8080, 5, traffic.MutualTLS), `/x"><svg onload=alert(2)>`)
	evil.From.Principal = ""
	outsider := traffic.Flow{From: traffic.Party{IP: ip}, To: evil.To, Protocol: corev1.ProtocolTCP, Port: 8080, Count: 1}
	r := newShop(t).audit(append(refusingFlows(), evil, outsider))
	res, err := browser.DumpDOM(context.Background(), writePage(t, r.HTML()))
	if err != nil {
		t.Fatal(err)
	}
	quiet(t, res)
	doc, err := html.Parse(bytes.NewReader(res.Stdout))
	if err != nil {
		t.Fatal(err)
	}
	for n := range doc.Descendants() {
		if n.Type == html.ElementNode && (n.Data == "script" || n.Data == "img" || attr(n, "onload") != "" || attr(n, "onerror") != "") {
			t.Errorf("the browser built <%s %v> from a name", n.Data, n.Attr)
		}
	}
	nodes := dom(t, res.Stdout, "data-node")
	if len(nodes["shop/"+name]) != 1 || len(nodes[ip]) != 1 {
		t.Errorf("the names are not nodes of the DOM: %q", slices.Sorted(maps.Keys(nodes)))
	}
}

// Through the command line: `servicegraph audit -o html` of Istio's access-log sample against a
// graph that lacks the edge it needs, loaded in Chromium.
func TestAuditCommandHTML(t *testing.T) {
	requireChromium(t)
	dir := t.TempDir()
	graphFile := filepath.Join(dir, "graph.yaml")
	if err := os.WriteFile(graphFile, []byte(`apiVersion: policy.servicegraph.io/v1alpha1
kind: ServiceGraph
metadata: {name: foo, namespace: foo}
spec:
  services: [{name: httpbin}, {name: sleep}]
  edges: [httpbin->sleep:8080]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := cli.Main([]string{"audit", "-o", "html", "--access-log", "../../internal/traffic/testdata/accesslog/istio-docs-httpbin.log",
		"-f", graphFile, "-f", "../../internal/cli/testdata/traffic/httpbin.yaml"}, strings.NewReader(""), &stdout, &stderr)
	if code != cli.ExitRefused {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	res, err := browser.DumpDOM(context.Background(), writePage(t, stdout.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	quiet(t, res)
	edges := dom(t, res.Stdout, "data-edge")
	for id, verdict := range map[string]string{"foo/sleep->foo/httpbin:80/status/418": "refused", "foo/httpbin->foo/sleep:8080": "unused"} {
		if len(edges[id]) != 2 || attr(edges[id][0], "data-verdict") != verdict {
			t.Errorf("%s: %d elements, want a %s curve and its row; the DOM has %v", id, len(edges[id]), verdict, edges)
		}
	}
}
