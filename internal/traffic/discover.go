package traffic

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/semantics"
)

// Proposal is the ServiceGraph the flows imply for one namespace, with the evidence behind each
// part; Write prints it as YAML with the evidence as comments.
type Proposal struct {
	Name, Namespace string
	Services        []ProposedService
	External        []ProposedExternal
	Edges           []ProposedEdge
	// TODO are flows the proposal does not turn into an edge (an unknown caller, no port): never
	// an invented allow, a comment for the reviewer.
	TODO []string
	// Base is the existing graph the proposal adds to (see Against), nil for a new graph.
	Base *v1alpha1.ServiceGraph
}

// ProposedService is a workload the graph names: a local service, or a peer of another namespace.
type ProposedService struct {
	Name, Namespace string
	Labels          map[string]string
	ServiceAccount  string
}

// ProposedExternal is a caller outside the inventory: the pods of namespaces known by identity, or
// an address.
type ProposedExternal struct {
	Name       string
	Namespaces []string
	CIDRs      []string
	Unmeshed   bool
	Why        string
}

// ProposedEdge is one allowed connection and why.
type ProposedEdge struct {
	From, To       string
	Ports          []int32
	Protocol       corev1.Protocol
	Paths, Methods []string
	Evidence       string
	// Ambiguous marks ports listed because the source could not say which one was used.
	Ambiguous bool
}

// maxPaths bounds the paths an edge lists: more, and the edge allows every path (said so).
const maxPaths = 20

// Discover proposes, for each namespace, the graph its observed flows imply: a service per
// workload that receives or sends traffic there (its pods' labels and ServiceAccount), peers in
// other namespaces, external peers for identified namespaces and addresses outside the
// inventory, and an edge per flow with its ports (observed, or what the destination's Service
// says) and HTTP paths and methods when seen. A flow with an unknown caller or no port is a TODO.
func Discover(flows []Flow, inv *Inventory, namespaces []string, now time.Time) []*Proposal {
	var out []*Proposal
	for _, ns := range namespaces {
		p := &Proposal{Name: ns, Namespace: ns}
		wider, merged := inv.canonical(flows)
		d := discovery{p: p, inv: wider, now: now, names: map[string]string{}}
		for _, f := range merged {
			d.flow(f)
		}
		slices.SortFunc(p.Services, func(a, b ProposedService) int { return cmp.Compare(a.Name, b.Name) })
		slices.SortFunc(p.External, func(a, b ProposedExternal) int { return cmp.Compare(a.Name, b.Name) })
		slices.SortFunc(p.Edges, func(a, b ProposedEdge) int {
			return cmp.Or(cmp.Compare(a.From, b.From), cmp.Compare(a.To, b.To), slices.Compare(a.Ports, b.Ports))
		})
		slices.Sort(p.TODO)
		out = append(out, p)
	}
	return out
}

type discovery struct {
	p   *Proposal
	inv *Inventory
	now time.Time
	// names maps a party's key to its name in the graph.
	names map[string]string
}

// flow turns one flow that touches the namespace into an edge, or a TODO.
func (d *discovery) flow(f Flow) {
	ns := d.p.Namespace
	from, to := d.inv.find(f.From), d.inv.find(f.To)
	local := func(w *Workload, p Party) bool { return w != nil && w.Namespace == ns || w == nil && p.Namespace == ns }
	if !local(from, f.From) && !local(to, f.To) || f.Port == 53 || from != nil && from.Waypoint() {
		return // not this namespace's, DNS (spec.allowDNS), or a waypoint's second hop
	}
	if f.DryRun != "" {
		d.p.TODO = append(d.p.TODO, dryRunWhat(f)+": find the caller in the proxy's rbac debug log or access log")
		return
	}
	if to == nil {
		d.todo(f, "the destination is outside the inventory: declare it as an external peer (hosts or an address range) if it must stay reachable")
		return
	}
	choice := d.inv.Ports(f, to)
	if len(choice.Ports) == 0 {
		d.todo(f, choice.Why)
		return
	}
	caller, why := d.caller(f, from)
	if caller == "" {
		d.todo(f, why)
		return
	}
	e := ProposedEdge{From: caller, To: d.service(to), Ports: choice.Ports, Protocol: cmp.Or(f.Protocol, corev1.ProtocolTCP),
		Methods: slices.Clone(f.Methods), Ambiguous: choice.Ambiguous()}
	e.Paths = slices.Clone(f.Paths)
	if len(e.Paths) > maxPaths {
		e.Paths = nil
		why += fmt.Sprintf("; %d paths seen, too many to list: every path allowed", len(f.Paths))
	}
	e.Evidence = evidence(f, choice, why)
	d.p.Edges = append(d.p.Edges, e)
}

// caller names the graph's peer for a flow's source: a service for a workload of the inventory,
// an external peer by namespace for an identity without one, by address for an address; "" and
// why when nothing identifies it.
func (d *discovery) caller(f Flow, from *Workload) (string, string) {
	switch {
	case from != nil:
		return d.service(from), ""
	case f.From.Principal != "":
		_, ns, _, _ := semantics.ParsePrincipal(f.From.Principal)
		if ns == "" {
			return "", "the caller's identity " + f.From.Principal + " names no namespace"
		}
		return d.external(ProposedExternal{Name: "ns-" + ns, Namespaces: []string{ns}, Why: "callers of namespace " + ns + " (by identity; no workload of the inventory runs as " + f.From.Principal + ")"}), ""
	case f.From.Namespace != "":
		return d.external(ProposedExternal{Name: "ns-" + f.From.Namespace, Namespaces: []string{f.From.Namespace},
			Why: "callers of namespace " + f.From.Namespace + " (no workload of the inventory is " + f.From.String() + ")"}), ""
	case f.From.IP != "":
		a, err := netip.ParseAddr(f.From.IP)
		if err != nil {
			return "", "the caller's address " + f.From.IP + " is not one"
		}
		return d.external(ProposedExternal{Name: "addr-" + strings.NewReplacer(".", "-", ":", "-").Replace(a.String()),
			CIDRs: []string{netip.PrefixFrom(a, a.BitLen()).String()}, Unmeshed: f.Security != MutualTLS, Why: "an address outside the inventory"}), ""
	}
	why := "an unknown caller (no workload, identity or address): Istio reports callers outside the mesh so"
	if f.Security == Plaintext {
		why += " (it sent plain text: no sidecar)"
	}
	return "", why + "; declare them as an external peer (an address range or namespaces, unmeshed: true for plain text) if they must keep working"
}

// service names a workload in the graph, declaring it on first use.
func (d *discovery) service(w *Workload) string {
	key := w.Namespace + "/" + w.Name
	if name, ok := d.names[key]; ok {
		return name
	}
	name := d.unique(dnsLabel(w.Name))
	d.names[key] = name
	s := ProposedService{Name: name, Labels: stableLabels(w.Labels), ServiceAccount: w.Account()}
	if w.Namespace != d.p.Namespace {
		s.Namespace = w.Namespace
	}
	d.p.Services = append(d.p.Services, s)
	return name
}

// external declares an external peer once.
func (d *discovery) external(x ProposedExternal) string {
	if name, ok := d.names["external/"+x.Name]; ok {
		return name
	}
	x.Name = d.unique(dnsLabel(x.Name))
	d.names["external/"+x.Name] = x.Name
	d.p.External = append(d.p.External, x)
	return x.Name
}

// unique makes a name unused by the graph's services and peers.
func (d *discovery) unique(name string) string {
	taken := slices.Collect(maps.Values(d.names))
	out := name
	for i := 2; slices.Contains(taken, out); i++ {
		out = strings.TrimRight(name[:min(len(name), 60)], "-") + "-" + strconv.Itoa(i)
	}
	return out
}

func (d *discovery) todo(f Flow, why string) {
	d.p.TODO = append(d.p.TODO, fmt.Sprintf("%s: %s (%s)", f, why, count(f)))
}

// noisyLabels are set per pod or by the mesh, never a workload's selector.
var noisyLabels = []string{"pod-template-hash", "controller-revision-hash", "statefulset.kubernetes.io/pod-name",
	"apps.kubernetes.io/pod-index", "batch.kubernetes.io/controller-uid", "controller-uid", "security.istio.io/tlsMode",
	"service.istio.io/canonical-name", "service.istio.io/canonical-revision"}

func stableLabels(l map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range l {
		if !slices.Contains(noisyLabels, k) {
			out[k] = v
		}
	}
	return out
}

// dnsLabel turns a workload name into a graph service name: lower case, dots to dashes, at most
// 63 characters.
func dnsLabel(s string) string {
	s = strings.ToLower(strings.ReplaceAll(s, ".", "-"))
	if len(s) > validation.DNS1123LabelMaxLength {
		s = strings.TrimRight(s[:validation.DNS1123LabelMaxLength], "-")
	}
	return s
}

func count(f Flow) string {
	what := "connection"
	if f.HTTP {
		what = "request"
	}
	// Prometheus extrapolates increase() to the window's edges: a count is an estimate, whole.
	n := math.Round(f.Count)
	if n != 1 {
		what += "s"
	}
	return fmt.Sprintf("%s %s", strconv.FormatFloat(n, 'f', -1, 64), what)
}

// evidence is an edge's comment: how much traffic, when, how secured, where its port comes from.
func evidence(f Flow, choice PortChoice, note string) string {
	parts := []string{count(f)}
	if !f.First.IsZero() {
		parts = append(parts, "first "+f.First.UTC().Format(time.RFC3339)+", last "+f.Last.UTC().Format(time.RFC3339))
	}
	switch f.Security {
	case MutualTLS:
		parts = append(parts, "mutual TLS")
	case Plaintext:
		parts = append(parts, "PLAIN TEXT: STRICT mutual TLS refuses this caller until it is meshed (or declared unmeshed)")
	}
	parts = append(parts, choice.Why)
	if note != "" {
		parts = append(parts, note)
	}
	parts = append(parts, "seen by "+f.Source)
	return strings.Join(parts, "; ")
}
