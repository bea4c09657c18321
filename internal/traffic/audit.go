package traffic

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/servicegraph/servicegraph-operator/internal/compiler"
	"github.com/servicegraph/servicegraph-operator/internal/eval"
	"github.com/servicegraph/servicegraph-operator/internal/graph"
	"github.com/servicegraph/servicegraph-operator/internal/semantics"
)

// Judge says what the policies do with one new connection: the evaluator behind `check`.
type Judge interface {
	Check(r eval.Request) eval.Verdict
}

// Finding is one observed flow the policies would refuse, or cannot judge.
type Finding struct {
	Flow Flow
	// Port is the destination port judged (one of the candidates when the source did not say).
	Port int32
	// Path is the HTTP path judged, "" when none.
	Path string
	// Layer refused it: L4, mTLS or authorization; By and Detail are the deciding step's.
	Layer, By, Detail string
}

func (f Finding) String() string {
	s := fmt.Sprintf("%s -> %s %s/%d", f.Flow.From, f.Flow.To, cmp.Or(f.Flow.Protocol, corev1.ProtocolTCP), f.Port)
	if f.Path != "" {
		s += " " + f.Path
	}
	return s
}

// Report is what the policies do with the observed traffic of a window.
type Report struct {
	// Flows counts the flows judged; Allowed those every layer lets through.
	Flows, Allowed int
	// Refused are flows a layer refuses; Plaintext the ones refused because their caller sends
	// plain text and STRICT mutual TLS refuses it.
	Refused, Plaintext []Finding
	// Undecided are flows the source says too little about to judge (an HTTP request without its
	// path, against a rule on paths; a destination outside the inventory).
	Undecided []Finding
	// DryRun are what Istio's own dry-run policies (those applied now, Audit mode's) would have
	// refused, by destination and port: a cross-check that names no caller, never a verdict here.
	DryRun []Finding
	// Unused are the declared edges no observed flow used: candidates to remove.
	Unused []string
	// AllowedFlows are the flows Allowed counts, each on its first candidate port; Graphs the
	// graphs judged. The picture (HTML) draws them.
	AllowedFlows []Finding
	Graphs       []*graph.Graph
	// Since is the window's start, Until its end.
	Since, Until time.Time
}

// Covered tells whether the graph lets every observed flow through.
func (r *Report) Covered() bool { return len(r.Refused) == 0 && len(r.Plaintext) == 0 }

// Audit judges every observed flow with the policies of a world (the graph compiled in Enforce
// mode and the workloads, as `check` sees them): each flow between workloads of the inventory is
// asked on its port (every candidate port when the source did not say; refused when one is) and,
// for HTTP, on each path seen. Then the graphs' declared edges no observed flow matches.
func Audit(flows []Flow, inv *Inventory, judge Judge, graphs []*graph.Graph) *Report {
	r := &Report{Graphs: graphs}
	used := map[string]bool{}
	indexes := make([]*edgeIndex, len(graphs))
	for i, g := range graphs {
		indexes[i] = newEdgeIndex(g)
	}
	inv, merged := inv.canonical(flows)
	for _, f := range merged {
		if f.DryRun != "" {
			r.DryRun = append(r.DryRun, Finding{Flow: f, Port: f.Port, Detail: dryRunWhat(f)})
			continue
		}
		from, to := inv.find(f.From), inv.find(f.To)
		if to == nil || from != nil && from.Waypoint() {
			continue // outside the namespaces judged, or a waypoint's second hop (it reported the request)
		}
		r.Flows++
		choice := inv.Ports(f, to)
		if len(choice.Ports) == 0 {
			r.Undecided = append(r.Undecided, Finding{Flow: f, Detail: choice.Why})
			continue
		}
		if refused, undecided := r.judge(f, from, to, choice.Ports, judge); !refused && !undecided {
			r.Allowed++
			r.AllowedFlows = append(r.AllowedFlows, Finding{Flow: f, Port: choice.Ports[0]})
		}
		// An edge the flow matches (its caller, destination and a port it may have used) is in
		// use whatever the verdict: a plain-text caller or a path outside the edge's is refused,
		// but the edge is not a candidate to remove.
		for _, x := range indexes {
			for _, e := range x.used(f, from, to, choice.Ports) {
				used[e] = true
			}
		}
	}
	for _, g := range graphs {
		for i := range g.Edges {
			// Connections to addresses and hosts outside the cluster are not judged (no source
			// here reports them with their destination): their edges are neither used nor unused.
			if to, ok := g.Service(g.Edges[i].To); ok && to.External != nil {
				continue
			}
			if e := g.Edges[i]; !used[g.Namespace+"/"+e.String()] {
				r.Unused = append(r.Unused, g.Namespace+": "+local(g, e))
			}
		}
	}
	for _, list := range [][]Finding{r.Refused, r.Plaintext, r.Undecided, r.AllowedFlows, r.DryRun} {
		slices.SortFunc(list, func(a, b Finding) int { return strings.Compare(a.String(), b.String()) })
	}
	slices.Sort(r.Unused)
	return r
}

// local spells an edge as the graph's author wrote it: its own namespace unnamed.
func local(g *graph.Graph, e graph.Edge) string {
	if e.FromNamespace == g.Namespace {
		e.FromNamespace = ""
	}
	if e.ToNamespace == g.Namespace {
		e.ToNamespace = ""
	}
	return e.String()
}

// judge asks every port (and path) of a flow. A port is refused when one of its paths is, and
// undecided when the source says too little (a request without its path, against a rule on
// paths). A flow whose port the source did not say (several candidates) is refused when any
// candidate is, whatever the order: the gate fails closed, and the finding says on which ports it
// would pass.
func (r *Report) judge(f Flow, from, to *Workload, ports []int32, judge Judge) (refused, undecided bool) {
	var refusals, pending []Finding
	var passing []string
	for _, port := range ports {
		switch verdict, finding := r.judgePort(f, from, to, port, judge); verdict {
		case portRefused:
			refusals = append(refusals, finding)
		case portUndecided:
			pending = append(pending, finding)
		default:
			passing = append(passing, fmt.Sprint(port))
		}
	}
	switch {
	case len(refusals) > 0:
		finding := refusals[0]
		if len(passing) > 0 {
			finding.Detail = strings.TrimPrefix(finding.Detail+"; ", "; ") + fmt.Sprintf("allowed on %s: the source does not say which of the Service's ports was used",
				strings.Join(passing, ", "))
		}
		if finding.Layer == "mTLS" && f.Security == Plaintext {
			r.Plaintext = append(r.Plaintext, finding)
		} else {
			r.Refused = append(r.Refused, finding)
		}
		return true, false
	case len(pending) > 0:
		r.Undecided = append(r.Undecided, pending[0])
		return false, true
	}
	return false, false
}

type portVerdict int

const (
	portAllowed portVerdict = iota
	portRefused
	portUndecided
)

// judgePort asks one port of a flow, each HTTP path seen on it.
func (r *Report) judgePort(f Flow, from, to *Workload, port int32, judge Judge) (portVerdict, Finding) {
	paths := []string{""} // TCP, or HTTP whose path the source did not see
	if f.HTTP && len(f.Paths) > 0 {
		paths = f.Paths
	}
	verdict, out := portAllowed, Finding{}
	for _, path := range paths {
		req := eval.Request{From: endpoint(f.From, from, f.Security), To: asWorkload(to, f.To.IP), Port: port, Protocol: cmp.Or(f.Protocol, corev1.ProtocolTCP)}
		if f.HTTP {
			req.HTTP = &eval.HTTP{Path: path, Method: first(f.Methods), Host: "-"}
		}
		v := judge.Check(req)
		if v.Allowed {
			continue
		}
		finding := Finding{Flow: f, Port: port, Path: path}
		for _, s := range v.Steps {
			if !s.Allowed {
				finding.Layer, finding.By, finding.Detail = layerName(s.Layer), s.By, s.Detail
				break
			}
		}
		if !strings.Contains(finding.Detail, "not evaluated") {
			return portRefused, finding
		}
		if verdict == portAllowed {
			verdict, out = portUndecided, finding
		}
	}
	return verdict, out
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

func layerName(l eval.Layer) string {
	for _, g := range eval.LayerGroups {
		if slices.Contains(g.Layers, l) {
			return g.Name
		}
	}
	return string(l)
}

// endpoint is a flow's caller as the evaluator takes it: the workload with the security the
// source saw (a plain-text caller presents no identity), or its address.
func endpoint(p Party, w *Workload, sec Security) eval.Endpoint {
	if w == nil {
		// A caller known by its identity only (Istio without metadata exchange) is a pod of its
		// principal's namespace, as the external peer discover proposes for it.
		if td, ns, sa, ok := semantics.ParsePrincipal(p.Principal); ok {
			return eval.Endpoint{Workload: &eval.Workload{Namespace: ns, Name: p.String(), ServiceAccount: sa, TrustDomain: td, Meshed: true}, IP: p.IP}
		}
		return eval.Endpoint{IP: cmp.Or(p.IP, "0.0.0.0")}
	}
	ew := asWorkload(w, p.IP)
	switch sec {
	case Plaintext:
		ew.Meshed = false
	case MutualTLS:
		ew.Meshed = true
	}
	return eval.Endpoint{Workload: ew, IP: ew.IP}
}

func asWorkload(w *Workload, ip string) *eval.Workload {
	if ip == "" && len(w.IPs) > 0 {
		ip = w.IPs[0]
	}
	return &eval.Workload{Namespace: w.Namespace, Name: w.Name, Labels: w.Labels, IP: ip, ServiceAccount: w.ServiceAccount,
		Meshed: w.Meshed, Ports: w.Ports}
}

// edgeIndex finds the edges of a graph an allowed flow used, without trying every edge for every
// flow: edges by destination service, and which services select a workload, remembered.
type edgeIndex struct {
	g        *graph.Graph
	byTo     map[string][]int
	services map[*Workload][]string
}

func newEdgeIndex(g *graph.Graph) *edgeIndex {
	x := &edgeIndex{g: g, byTo: map[string][]int{}, services: map[*Workload][]string{}}
	for i := range g.Edges {
		x.byTo[g.Edges[i].To] = append(x.byTo[g.Edges[i].To], i)
	}
	return x
}

// selecting names the graph's local services that stand for a workload.
func (x *edgeIndex) selecting(w *Workload) []string {
	if w == nil {
		return nil
	}
	names, ok := x.services[w]
	if !ok {
		for _, s := range x.g.Services {
			if selects(x.g, s.Name, w) {
				names = append(names, s.Name)
			}
		}
		x.services[w] = names
	}
	return names
}

// used names the graph's edges an allowed flow matches: from the service selecting the caller (or
// the external peer holding it) to the one selecting the destination, on a port of the flow's.
func (x *edgeIndex) used(f Flow, from, to *Workload, ports []int32) []string {
	g := x.g
	callers := x.selecting(from)
	var out []string
	for _, dest := range x.selecting(to) {
		for _, i := range x.byTo[dest] {
			e := &g.Edges[i]
			if e.ToNamespace != "" && e.ToNamespace != to.Namespace || !slices.Contains(callers, e.From) && !callerIs(g, e.From, f.From, from) {
				continue
			}
			for _, p := range e.Ports {
				if p.Named() && slices.ContainsFunc(to.Ports, func(cp corev1.ContainerPort) bool {
					return cp.Name == p.Port.StrVal && slices.Contains(ports, cp.ContainerPort)
				}) || !p.Named() && slices.Contains(ports, p.Port.IntVal) {
					out = append(out, g.Namespace+"/"+e.String())
					break
				}
			}
		}
	}
	return out
}

// callerIs tells whether an edge's caller stands for a flow's: a service selecting the caller's
// workload, or an external peer whose namespaces or ranges hold the caller.
func callerIs(g *graph.Graph, name string, p Party, w *Workload) bool {
	s, ok := g.Service(name)
	if !ok || s.External == nil {
		return selects(g, name, w)
	}
	x := s.External
	if _, ns, _, ok := semantics.ParsePrincipal(p.Principal); ok && slices.Contains(x.Namespaces, ns) || slices.Contains(x.Namespaces, p.Namespace) && p.Namespace != "" {
		return true
	}
	addr, err := netip.ParseAddr(p.IP)
	return err == nil && slices.ContainsFunc(x.CIDRs, func(c string) bool {
		prefix, err := netip.ParsePrefix(c)
		return err == nil && prefix.Contains(addr) && !slices.ContainsFunc(x.Except, func(e string) bool {
			ex, err := netip.ParsePrefix(e)
			return err == nil && ex.Contains(addr)
		})
	})
}

// selects tells whether a graph's service stands for a workload.
func selects(g *graph.Graph, name string, w *Workload) bool {
	s, ok := g.Service(name)
	return ok && w != nil && s.External == nil && s.Namespace == w.Namespace && compiler.Selects(s.Labels, w.Labels)
}
