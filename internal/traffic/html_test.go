package traffic

import (
	"bytes"
	"encoding/xml"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/graph"
)

// writeHTML names a directory to write the test pages into, to look at them in a browser.
var writeHTML = flag.String("write-html", "", "write the test pages into this directory")

// fixture is what an audit judges: the policies, the inventory, the graphs and the flows seen.
type fixture struct {
	judge  Judge
	inv    *Inventory
	graphs []*graph.Graph
	flows  []Flow
}

func (x fixture) audit(flows []Flow) *Report { return Audit(flows, x.inv, x.judge, x.graphs) }

// pictured is an audit with every verdict: a graph of shop (and a peer in payments) compiled as
// Enforce applies it, and flows that it allows, refuses at L4 and at authorization, refuses for
// their plain text, cannot judge (HTTP without its path against a rule on paths), and edges no
// flow used.
func pictured(t *testing.T) (*Report, fixture) {
	t.Helper()
	web, api := "web", "api"
	judge, g := compiled(t, &v1alpha1.ServiceGraph{ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: "shop"},
		Spec: v1alpha1.ServiceGraphSpec{
			Services: []v1alpha1.Service{{Name: web}, {Name: api}, {Name: "database"}, {Name: "legacy"}, {Name: "worker"}, {Name: "batch"}, {Name: "cache"},
				{Name: "gateway", Namespace: "payments"}},
			External: []v1alpha1.External{{Name: "ingress", Namespaces: &v1alpha1.ExternalNamespaces{Names: []string{"istio-ingress"}}}},
			Edges: []string{"ingress->" + web + ":8080", web + "->" + api + ":8080", api + "->database:5432", "legacy->" + api + ":8080",
				web + "->database:5432", api + "->cache:6379", "worker->" + api + ":9090/jobs", "batch->" + api + ":9090/jobs", api + "->payments/gateway:443"},
		}})
	wl := func(ns, name string, meshed bool, ports ...int32) Workload {
		w := Workload{Namespace: ns, Name: name, Labels: map[string]string{"app": name}, ServiceAccount: name, Meshed: meshed}
		for _, p := range ports {
			w.Ports = append(w.Ports, corev1.ContainerPort{ContainerPort: p})
		}
		return w
	}
	inv := &Inventory{Workloads: []Workload{wl("shop", web, true, 8080), wl("shop", api, true, 8080, 9090), wl("shop", "database", true, 5432),
		wl("shop", "legacy", false, 9000), wl("shop", "worker", true), wl("shop", "batch", true), wl("shop", "cache", true, 6379),
		wl("payments", "gateway", true, 443)}}
	flow := func(from, to string, port int32, count float64, sec Security) Flow {
		f := Flow{From: Party{Namespace: "shop", Workload: from}, To: Party{Namespace: "shop", Workload: to}, Protocol: corev1.ProtocolTCP,
			Port: port, Count: count, Security: sec, Source: "access-log", First: t0, Last: t0.Add(time.Hour)}
		if sec == MutualTLS {
			f.From.Principal = "cluster.local/ns/shop/sa/" + from
		}
		return f
	}
	http := func(f Flow, paths ...string) Flow {
		f.HTTP, f.Paths, f.Methods = true, paths, []string{"POST"}
		return f
	}
	gateway := flow(api, "gateway", 443, 7, MutualTLS)
	gateway.To.Namespace = "payments"
	flows := []Flow{
		{From: Party{Principal: "cluster.local/ns/istio-ingress/sa/gateway"}, To: Party{Namespace: "shop", Workload: web}, Protocol: corev1.ProtocolTCP,
			Port: 8080, Count: 50, Security: MutualTLS, Source: "access-log"},
		flow(web, api, 8080, 1200, MutualTLS),
		flow(api, "database", 5432, 30, MutualTLS),
		flow("legacy", api, 8080, 4, Plaintext),
		flow("database", api, 8080, 3, MutualTLS),
		http(flow("worker", api, 9090, 9, MutualTLS), "/admin"),
		http(flow("batch", api, 9090, 2, MutualTLS)),
		{From: Party{IP: "10.9.9.9"}, To: Party{Namespace: "shop", Workload: web}, Protocol: corev1.ProtocolTCP, Port: 8080, Count: 1, Security: Plaintext, Source: "access-log"},
		gateway,
	}
	x := fixture{judge, inv, []*graph.Graph{g}, flows}
	return x.audit(flows), x
}

func parseHTML(t *testing.T, page []byte) *html.Node {
	t.Helper()
	doc, err := html.Parse(bytes.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// elements lists the elements of a tag ("" for any) under n, in document order.
func elements(n *html.Node, tag string) []*html.Node {
	var out []*html.Node
	for c := range n.Descendants() {
		if c.Type == html.ElementNode && (tag == "" || c.Data == tag) {
			out = append(out, c)
		}
	}
	return out
}

func attr(n *html.Node, key string) (string, bool) {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val, true
		}
	}
	return "", false
}

func text(n *html.Node) string {
	var b strings.Builder
	for c := range n.Descendants() {
		if c.Type == html.TextNode {
			b.WriteString(c.Data)
		}
	}
	return b.String()
}

// withAttr lists the elements carrying an attribute, by its value.
func withAttr(doc *html.Node, key string) map[string][]*html.Node {
	out := map[string][]*html.Node{}
	for _, n := range elements(doc, "") {
		if v, ok := attr(n, key); ok {
			out[v] = append(out[v], n)
		}
	}
	return out
}

// Every finding is a curve and a table row with its verdict, both naming the same edge; every
// curve joins two drawn nodes; the page fetches nothing and runs nothing.
func TestHTMLStructure(t *testing.T) {
	r, _ := pictured(t)
	if len(r.Refused) != 3 || len(r.Plaintext) != 1 || len(r.Undecided) != 1 || len(r.Unused) != 2 || len(r.AllowedFlows) != 4 {
		t.Fatalf("the fixture no longer has every verdict:\n%s", r.Text())
	}
	page := r.HTML()
	if *writeHTML != "" {
		_ = os.WriteFile(*writeHTML+"/audit.html", page, 0o600)
	}
	doc := parseHTML(t, page)
	edges := map[string]string{} // data-edge → data-verdict, of the curves
	for _, g := range elements(doc, "g") {
		if id, ok := attr(g, "data-edge"); ok {
			v, _ := attr(g, "data-verdict")
			if _, dup := edges[id]; dup {
				t.Errorf("two curves named %s", id)
			}
			edges[id] = v
			if len(elements(g, "path")) != 1 || len(elements(g, "text")) != 1 {
				t.Errorf("curve %s: want a path and a label", id)
			}
		}
	}
	nodes := withAttr(doc, "data-node")
	for _, g := range elements(doc, "g") {
		if _, ok := attr(g, "data-edge"); ok {
			from, _ := attr(g, "data-from")
			to, _ := attr(g, "data-to")
			if len(nodes[from]) != 1 || len(nodes[to]) != 1 {
				t.Errorf("curve %s joins %q and %q, not drawn nodes", text(g), from, to)
			}
		}
	}
	rows := map[Verdict]int{}
	for _, tr := range elements(doc, "tr") {
		id, ok := attr(tr, "data-edge")
		if !ok {
			continue
		}
		v, _ := attr(tr, "data-verdict")
		rows[Verdict(v)]++
		if edges[id] != v {
			t.Errorf("row %q names curve %q, drawn as %q", v, id, edges[id])
		}
	}
	want := map[Verdict]int{VerdictRefused: len(r.Refused), VerdictPlaintext: len(r.Plaintext), VerdictUndecided: len(r.Undecided),
		VerdictUnused: len(r.Unused), VerdictAllowed: len(r.AllowedFlows)}
	if fmt.Sprint(rows) != fmt.Sprint(want) {
		t.Errorf("rows by verdict %v, want %v", rows, want)
	}
	if len(edges) != len(r.Refused)+len(r.Plaintext)+len(r.Undecided)+len(r.Unused)+len(r.AllowedFlows) {
		t.Errorf("%d curves for %v", len(edges), want)
	}
	for id, v := range map[string]Verdict{
		"shop/web->shop/api:8080":          VerdictAllowed,
		"ingress->shop/web:8080":           VerdictAllowed,
		"shop/api->payments/gateway:443":   VerdictAllowed,
		"shop/database->shop/api:8080":     VerdictRefused,
		"shop/worker->shop/api:9090/admin": VerdictRefused,
		"10.9.9.9->shop/web:8080":          VerdictRefused,
		"shop/legacy->shop/api:8080":       VerdictPlaintext,
		"shop/batch->shop/api:9090":        VerdictUndecided,
		"shop/web->shop/database:5432":     VerdictUnused,
		"shop/api->shop/cache:6379":        VerdictUnused,
	} {
		if edges[id] != string(v) {
			t.Errorf("curve %s is %q, want %q (curves: %v)", id, edges[id], v, edges)
		}
	}
	for ns, want := range map[string]int{"shop": 7, "payments": 1, Outside: 2} {
		if got := len(withAttr(doc, "data-namespace")[ns]); got != want+1 { // the nodes and the box
			t.Errorf("namespace %s: %d elements, want %d nodes and its box", ns, got, want)
		}
	}
	if got := len(withAttr(doc, "data-legend-verdict")); got != len(Verdicts) {
		t.Errorf("%d legend entries", got)
	}
	p := withAttr(doc, "data-covered")["false"]
	if len(p) != 1 || text(p[0]) != r.Summary(10) {
		t.Errorf("summary paragraph %v, want %q", p, r.Summary(10))
	}
	selfContained(t, doc)
}

// selfContained fails on anything a browser would fetch or run.
func selfContained(t *testing.T, doc *html.Node) {
	t.Helper()
	csp := false
	for _, n := range elements(doc, "") {
		if n.Data == "script" || n.Data == "link" || n.Data == "img" || n.Data == "iframe" || n.Data == "object" {
			t.Errorf("element <%s> in a page that must not fetch or run", n.Data)
		}
		for _, a := range n.Attr {
			if a.Key == "src" || a.Key == "href" || strings.HasPrefix(a.Key, "on") || a.Key == "style" {
				t.Errorf("attribute %s=%q on <%s>", a.Key, a.Val, n.Data)
			}
			if strings.Contains(a.Val, "url(") && a.Val != "url(#arrow-"+strings.TrimPrefix(a.Val, "url(#arrow-") {
				t.Errorf("a url() other than a marker: %s=%q", a.Key, a.Val)
			}
		}
		if v, _ := attr(n, "http-equiv"); v == "Content-Security-Policy" {
			c, _ := attr(n, "content")
			csp = strings.Contains(c, "default-src 'none'")
		}
		if n.Data == "style" && (strings.Contains(text(n), "url(") || strings.Contains(text(n), "@import")) {
			t.Errorf("style fetches: %s", text(n))
		}
	}
	if !csp {
		t.Error("no Content-Security-Policy forbidding fetches")
	}
}

// The same report prints the same bytes, whatever order the source gave the flows in.
func TestHTMLDeterministic(t *testing.T) {
	r, x := pictured(t)
	want := r.HTML()
	if !bytes.Equal(want, r.HTML()) {
		t.Fatal("two prints of one report differ")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 5 {
		shuffled := slices.Clone(x.flows)
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		if got := x.audit(shuffled).HTML(); !bytes.Equal(got, want) {
			t.Fatalf("flows in another order print another page:\n%s", firstDiff(want, got))
		}
	}
}

func firstDiff(a, b []byte) string {
	al, bl := strings.Split(string(a), "\n"), strings.Split(string(b), "\n")
	for i := range min(len(al), len(bl)) {
		if al[i] != bl[i] {
			return fmt.Sprintf("line %d:\n- %s\n+ %s", i+1, al[i], bl[i])
		}
	}
	return fmt.Sprintf("%d lines, then %d", len(al), len(bl))
}

// Names and paths come from the traffic source: whatever they hold is text, never markup, in the
// page and in the SVG (which stays well-formed XML, so it can be cut out and saved as a file).
func TestHTMLEscapes(t *testing.T) {
	const name, path, ip = "<script>alert(1)</script>", `/x"><svg onload=alert(2)>`, `"><img src=x onerror=alert(3)>`
	_, x := pictured(t)
	evil := x.flows[1] // web -> api
	evil.From.Workload, evil.From.Principal = name, ""
	evil.HTTP, evil.Paths = true, []string{path}
	outsider := Flow{From: Party{IP: ip}, To: x.flows[1].To, Protocol: corev1.ProtocolTCP, Port: 8080, Count: 1, Source: "access-log"}
	r := x.audit(append(slices.Clone(x.flows), evil, outsider))
	page := r.HTML()
	doc := parseHTML(t, page)
	selfContained(t, doc)
	nodes := withAttr(doc, "data-node")
	for _, id := range []string{"shop/" + name, ip} {
		if len(nodes[id]) != 1 {
			t.Errorf("no node %q", id)
		}
	}
	found := false
	for id := range withAttr(doc, "data-edge") {
		found = found || strings.HasPrefix(id, "shop/"+name+"->shop/api:8080") || strings.HasPrefix(id, ip+"->")
	}
	if !found || !strings.Contains(text(doc), name) || !strings.Contains(text(doc), path) {
		t.Errorf("the names are not in the page as text")
	}
	for _, bad := range []string{"<script", "<img", "<svg onload"} {
		if bytes.Contains(page, []byte(bad)) {
			t.Errorf("%q in the page", bad)
		}
	}
	start, end := bytes.Index(page, []byte(`<svg class="picture"`)), bytes.Index(page, []byte("</svg>\n<main>"))
	dec := xml.NewDecoder(bytes.NewReader(page[start : end+len("</svg>")]))
	for {
		if _, err := dec.Token(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("the SVG is not well-formed XML: %v", err)
		}
	}
}

// Nothing observed and nothing declared is still a page, with a row that says so.
func TestHTMLEmpty(t *testing.T) {
	doc := parseHTML(t, (&Report{}).HTML())
	selfContained(t, doc)
	if !strings.Contains(text(doc), "no observed connection and no declared edge") || len(withAttr(doc, "data-legend-verdict")) != len(Verdicts) {
		t.Errorf("empty page:\n%s", (&Report{}).HTML())
	}
}

// At fifty services (one namespace of fifty, or five of ten) every node is inside its namespace's
// box, the boxes and nodes do not overlap, and the drawing stays a screen or two wide.
func TestDrawAtScale(t *testing.T) {
	for _, spread := range []int{1, 5} {
		r := &Report{}
		name := func(i int) Party {
			return Party{Namespace: fmt.Sprintf("ns%d", i%spread), Workload: fmt.Sprintf("service-%02d", i)}
		}
		for i := range 50 {
			for _, j := range []int{i + 1, i + 7} {
				f := Flow{From: name(i), To: name(j % 50), Protocol: corev1.ProtocolTCP, Port: 8080, Count: float64(i + j)}
				r.AllowedFlows = append(r.AllowedFlows, Finding{Flow: f, Port: 8080})
			}
		}
		r.Refused = append(r.Refused, Finding{Flow: Flow{From: name(3), To: name(3), Port: 9090, Count: 1}, Port: 9090}) // a call to itself
		d := r.Draw()
		if len(d.Nodes) != 50 || len(d.Groups) != spread || len(d.Edges) != 101 {
			t.Fatalf("%d nodes in %d groups, %d edges", len(d.Nodes), len(d.Groups), len(d.Edges))
		}
		if d.Width > 2600 || d.Height > 1600 {
			t.Errorf("spread %d: %dx%d", spread, d.Width, d.Height)
		}
		boxes := map[string]Rect{}
		for i, g := range d.Groups {
			boxes[g.Name] = g.Box
			if g.Box.X+g.Box.W > d.Width || g.Box.Y+g.Box.H > d.Height || g.Box.Y < d.Legend.Y+d.Legend.H {
				t.Errorf("box %s %+v outside %dx%d or over the legend", g.Name, g.Box, d.Width, d.Height)
			}
			for _, o := range d.Groups[:i] {
				if a, b := o.Box, g.Box; a.X < b.X+b.W && b.X < a.X+a.W && a.Y < b.Y+b.H && b.Y < a.Y+a.H {
					t.Errorf("boxes %s and %s overlap", o.Name, g.Name)
				}
			}
		}
		for i, n := range d.Nodes {
			if b := boxes[n.Group]; !b.Contains(n.X-n.R, n.Y-n.R) || !b.Contains(n.X+n.R, n.Y+n.R) {
				t.Errorf("node %s at %d,%d outside its box %+v", n.ID, n.X, n.Y, b)
			}
			for _, m := range d.Nodes[:i] {
				if dx, dy := n.X-m.X, n.Y-m.Y; dx*dx+dy*dy < (4*nodeR)*(4*nodeR) {
					t.Errorf("nodes %s and %s %d,%d apart", n.ID, m.ID, dx, dy)
				}
			}
		}
		if !bytes.Equal(r.HTML(), r.HTML()) {
			t.Error("not deterministic")
		}
		if *writeHTML != "" {
			_ = os.WriteFile(fmt.Sprintf("%s/scale-%d.html", *writeHTML, spread), r.HTML(), 0o600)
		}
	}
}
