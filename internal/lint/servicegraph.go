package lint

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/compiler"
	"github.com/servicegraph/servicegraph-operator/internal/eval"
	"github.com/servicegraph/servicegraph-operator/internal/graph"
	"github.com/servicegraph/servicegraph-operator/internal/outcome"
	"github.com/servicegraph/servicegraph-operator/internal/semantics"
)

// builtGraph is a ServiceGraph as written and as the compiler sees it: some rules need what the
// user wrote (was a protocol stated?), others the normalised graph (defaults, resolved namespaces).
type builtGraph struct {
	spec *v1alpha1.ServiceGraph
	*graph.Graph
}

var graphChecks = []check[*builtGraph]{
	httpFieldsUnstated,
	httpFieldsOnTCPElsewhere,
	permissiveGraph,
	dnsOff,
	fanInToAll,
	sharedServiceAccount,
	unmeshedCallers,
	hostsByAddress,
}

// buildErrorRules maps the graph's build errors to rules; other kinds are SG001.
var buildErrorRules = map[graph.Kind]*Rule{
	graph.KindUndeclared:        ruleUndeclaredService,
	graph.KindDuplicate:         ruleDuplicateEdge,
	graph.KindSelfEdge:          ruleSelfEdge,
	graph.KindHTTPOnNonHTTPPort: ruleHTTPOnTCP,
}

// checkGraph reports a graph's build errors, or, when it builds, runs the graph checks: they
// need the normalised graph, and a graph that does not build has its errors to fix first.
func checkGraph(sg *v1alpha1.ServiceGraph, opts Options) []problem {
	g, err := graph.Build(sg)
	var list graph.ErrorList
	switch {
	case errors.As(err, &list):
		out := make([]problem, len(list))
		for i, e := range list {
			out[i] = ruleFor(e).problemf("%s", e.Error())
		}
		return out
	case err != nil:
		return []problem{ruleInvalidGraph.problemf("%v", err)}
	}
	return runChecks(graphChecks, &builtGraph{spec: sg, Graph: g}, opts)
}

func ruleFor(e graph.Error) *Rule {
	if r, ok := buildErrorRules[e.Kind]; ok {
		return r
	}
	return ruleInvalidGraph
}

// httpFieldsUnstated finds connections with paths or methods on a port whose protocol is left
// out. The compiler takes it as HTTP, but what Istio parses is decided by the Service port's name
// or appProtocol, which the graph cannot see: stating it makes the intent reviewable.
func httpFieldsUnstated(g *builtGraph, _ Options) []problem {
	var out []problem
	for _, c := range g.spec.Spec.Connections {
		if len(c.Paths) == 0 && len(c.Methods) == 0 {
			continue
		}
		e := graph.Edge{From: c.From, To: c.To, Paths: c.Paths, Methods: c.Methods}
		var unstated []string
		for _, p := range c.Ports {
			e.Ports = append(e.Ports, graph.Port{Port: p.Port, Protocol: p.Protocol})
			if p.Protocol == "" {
				unstated = append(unstated, p.Port.String())
			}
		}
		if len(unstated) > 0 {
			out = append(out, ruleHTTPUnstated.problemf(
				"connection %q: port %s has no protocol but the connection has paths or methods; if Istio sees TCP there, they never match and the connection allows nothing",
				e.String(), strings.Join(unstated, ", ")))
		}
	}
	return out
}

// destPort is a port of a destination service.
type destPort struct{ namespace, service, port string }

// httpFieldsOnTCPElsewhere finds compact edges whose path makes a port HTTP while another edge
// reaches the same port as plain TCP: one of the two is wrong about the port, and if it is TCP
// the path never matches.
func httpFieldsOnTCPElsewhere(g *builtGraph, _ Options) []problem {
	tcp := map[destPort]*graph.Edge{}
	for i := range g.Edges {
		e := &g.Edges[i]
		for _, p := range e.Ports {
			k := destPort{e.ToNamespace, e.To, p.Port.String()}
			if _, seen := tcp[k]; !seen && p.Protocol == v1alpha1.ProtocolTCP {
				tcp[k] = e
			}
		}
	}
	var out []problem
	for _, s := range g.spec.Spec.Edges {
		e, err := graph.ParseEdge(s)
		if err != nil || len(e.Paths) == 0 {
			continue // the graph built, so only an edge without a path is left here
		}
		to, _ := g.Service(e.To)
		for _, p := range e.Ports {
			if other, ok := tcp[destPort{to.Namespace, e.To, p.Port.String()}]; ok {
				out = append(out, ruleHTTPUnstated.problemf(
					"edge %q: the path makes port %s of %s HTTP, but edge %q reaches it as plain TCP; if Istio sees TCP there, the path never matches and this edge allows nothing",
					s, p.Port.String(), e.To, g.written(*other)))
			}
		}
	}
	return out
}

// written renders a graph edge as the user would write it: without the namespace of a local
// destination, which the graph fills in.
func (g *builtGraph) written(e graph.Edge) string {
	if e.ToNamespace == g.Namespace {
		e.ToNamespace = ""
	}
	return e.String()
}

func permissiveGraph(g *builtGraph, _ Options) []problem {
	if g.MTLS != v1alpha1.MTLSPermissive {
		return nil
	}
	return []problem{rulePermissiveGraph.problemf("spec.mtls is PERMISSIVE: pods of namespace %s also accept plaintext, which carries no identity", g.Namespace)}
}

// dnsOff finds a graph that drops the DNS allowance while its local services call others: the
// default-deny egress it applies would block their name lookups.
func dnsOff(g *builtGraph, _ Options) []problem {
	if g.AllowDNS {
		return nil
	}
	callers := map[string]bool{}
	for _, e := range g.Edges {
		if from, _ := g.Service(e.From); g.Local(from) {
			callers[e.From] = true
		}
	}
	if len(callers) == 0 {
		return nil
	}
	return []problem{ruleNoDNS.problemf("spec.allowDNS is false: default-deny egress blocks the DNS lookups of %s, which call other services",
		joinAnd(slices.Sorted(maps.Keys(callers))))}
}

// minFanIn is the number of services from which "everyone calls it" says something: with two,
// the one caller is trivially everyone.
const minFanIn = 3

// workloads are the graph's services, without its external peers.
func (g *builtGraph) workloads() []graph.Service {
	return slices.DeleteFunc(slices.Clone(g.Services), func(s graph.Service) bool { return s.External != nil })
}

func fanInToAll(g *builtGraph, _ Options) []problem {
	services := g.workloads()
	if len(services) < minFanIn {
		return nil
	}
	callers := map[string]map[string]bool{}
	for _, e := range g.Edges {
		if from, _ := g.Service(e.From); from.External != nil {
			continue
		}
		if callers[e.To] == nil {
			callers[e.To] = map[string]bool{}
		}
		callers[e.To][e.From] = true
	}
	var out []problem
	for _, s := range services {
		if len(callers[s.Name]) == len(services)-1 {
			out = append(out, ruleFanInToAll.problemf("every other service of the graph (%s) may call %s",
				joinAnd(slices.Sorted(maps.Keys(callers[s.Name]))), s.Name))
		}
	}
	return out
}

func sharedServiceAccount(g *builtGraph, _ Options) []problem {
	users := map[string][]string{} // namespace/serviceAccount → services, in name order
	for _, s := range g.workloads() {
		sa := s.Namespace + "/" + s.ServiceAccount
		users[sa] = append(users[sa], s.Name)
	}
	var out []problem
	for _, sa := range slices.Sorted(maps.Keys(users)) {
		if names := users[sa]; len(names) > 1 {
			out = append(out, ruleSharedServiceAccount.problemf("services %s share ServiceAccount %s: each may make the others' calls",
				joinAnd(names), sa))
		}
	}
	return out
}

// unmeshedCallers finds the plain-text exceptions unmeshed external callers open: on those ports
// the destination accepts plain text, and Istio checks no identity, so only the NetworkPolicy (and
// source addresses, for cidrs) stands between the port and whoever reaches it.
func unmeshedCallers(g *builtGraph, _ Options) []problem {
	if g.Mesh != v1alpha1.MeshIstio {
		return nil
	}
	var out []problem
	for _, e := range g.Edges {
		from, _ := g.Service(e.From)
		if from.External == nil || !from.External.Unmeshed {
			continue
		}
		guard := "only its NetworkPolicy restricts who connects"
		if len(from.External.CIDRs) > 0 {
			guard = "only source addresses restrict who connects"
		}
		out = append(out, ruleUnmeshedCaller.problemf("edge %q: %s accepts plain text without an identity on %s from unmeshed %s; %s",
			g.written(e), e.To, portList(e.Ports), e.From, guard))
	}
	return out
}

// hostsByAddress finds external hosts without cidrs: a NetworkPolicy cannot match a name, so the
// egress rule allows the edge's ports to every address outside the cluster's ranges.
func hostsByAddress(g *builtGraph, _ Options) []problem {
	var out []problem
	for _, s := range g.Services {
		if x := s.External; x != nil && len(x.Hosts) > 0 && len(x.CIDRs) == 0 {
			out = append(out, ruleHostsAnyAddress.problemf("external %q (%s) has no cidrs: the NetworkPolicy allows its edges' ports to every address outside the manager's --cluster-cidrs (to every address when that flag is unset); only Istio's REGISTRY_ONLY Sidecar limits the names",
				s.Name, strings.Join(x.Hosts, ", ")))
		}
	}
	return out
}

func portList(ports []graph.Port) string {
	names := make([]string, len(ports))
	for i, p := range ports {
		names[i] = p.Port.String()
	}
	return "port " + strings.Join(names, ", ")
}

// joinAnd lists names as "a, b and c".
func joinAnd(names []string) string {
	if len(names) == 1 {
		return names[0]
	}
	return fmt.Sprintf("%s and %s", strings.Join(names[:len(names)-1], ", "), names[len(names)-1])
}

// protocolMismatchFindings checks each graph of the input against the Services of its namespace in
// the input, with the function the operator uses: an edge with HTTP paths or methods to a port a
// Service declares as another protocol is refused by Istio.
func protocolMismatchFindings(objs []Object) []Finding {
	services := servicesByNamespace(objs)
	var out []Finding
	for _, o := range objs {
		sg, ok := o.Object.(*v1alpha1.ServiceGraph)
		if !ok || len(services[sg.Namespace]) == 0 {
			continue
		}
		g, err := graph.Build(sg)
		if err != nil {
			continue // SG001-SG005 report it
		}
		var problems []problem
		for _, m := range compiler.ProtocolMismatches(g, services[sg.Namespace]) {
			problems = append(problems, ruleProtocolMismatch.problemf("%s", m))
		}
		out = append(out, locate(o, problems)...)
	}
	return out
}

// OneGraphPerNamespace is the problem of a second ServiceGraph in a namespace: each graph writes
// the namespace's default-deny and its PeerAuthentication, so the operator lets the oldest apply
// and reports the others as Conflict.
func OneGraphPerNamespace(first, where string) error {
	return fmt.Errorf("the namespace already has ServiceGraph %q (%s): the operator applies only the oldest graph of a namespace and reports the others as Conflict; put the services and edges in one graph", first, where)
}

// graphsPerNamespaceFindings reports every ServiceGraph of the input after the first of its
// namespace.
func graphsPerNamespaceFindings(objs []Object) []Finding {
	first := map[string]Object{}
	var out []Finding
	for _, o := range objs {
		if _, ok := o.Object.(*v1alpha1.ServiceGraph); !ok {
			continue
		}
		f, seen := first[o.Object.GetNamespace()]
		switch {
		case !seen:
			first[o.Object.GetNamespace()] = o
		case f.Object.GetName() != o.Object.GetName():
			err := OneGraphPerNamespace(f.Object.GetName(), fmt.Sprintf("%s:%d", f.File, f.Line))
			out = append(out, locate(o, []problem{ruleTwoGraphs.problemf("%v", err)})...)
		}
	}
	return out
}

// servicesByNamespace reads the input's Services.
func servicesByNamespace(objs []Object) map[string][]compiler.KubeService {
	services := map[string][]compiler.KubeService{}
	for _, o := range objs {
		if svc, ok := o.Object.(*corev1.Service); ok {
			services[svc.Namespace] = append(services[svc.Namespace], compiler.KubeServiceOf(svc))
		}
	}
	return services
}

// ambientNamespaces are the input's namespaces labelled for ambient mode.
func ambientNamespaces(objs []Object) map[string]bool {
	out := map[string]bool{}
	for _, o := range objs {
		if ns, ok := o.Object.(*corev1.Namespace); ok && semantics.NamespaceDataplane(ns.Labels) == semantics.DataplaneAmbient {
			out[ns.Name] = true
		}
	}
	return out
}

// wideningFindings judges, for the active graph of each namespace (the first of the input), the
// NetworkPolicies, AuthorizationPolicies and PeerAuthentications beside it that it does not
// generate, with the operator's own evaluation.
func wideningFindings(objs []Object, made map[Object]bool) []Finding {
	graphs := map[string]*v1alpha1.ServiceGraph{}
	pods := map[string][]metav1.PartialObjectMetadata{}
	for _, o := range objs {
		switch x := o.Object.(type) {
		case *v1alpha1.ServiceGraph:
			if graphs[x.Namespace] == nil {
				graphs[x.Namespace] = x
			}
		case *corev1.PodTemplate:
			pods[x.Namespace] = append(pods[x.Namespace], metav1.PartialObjectMetadata{TypeMeta: x.TypeMeta,
				ObjectMeta: metav1.ObjectMeta{Namespace: x.Namespace, Name: x.Name, Labels: x.Template.Labels}})
		}
	}
	var out []Finding
	for ns, sg := range graphs {
		d, err := compiler.Compile(sg, compiler.DefaultOptions(), compiler.Facts{})
		if err != nil {
			continue // SG001 says why
		}
		foreign := &eval.Cluster{}
		where := map[string]Object{}
		for _, o := range objs {
			if o.Object.GetNamespace() != ns || made[o] {
				continue
			}
			before := len(foreign.NetworkPolicies) + len(foreign.PeerAuthentications) + len(foreign.AuthorizationPolicies)
			foreign.Add(o.Object)
			if len(foreign.NetworkPolicies)+len(foreign.PeerAuthentications)+len(foreign.AuthorizationPolicies) > before {
				where[kindOf(o.Object)+" "+ns+"/"+o.Object.GetName()] = o
			}
		}
		for _, w := range outcome.GraphWidenings(d, compiler.DefaultOptions().TrustDomain, pods[ns], foreign) {
			out = append(out, locate(where[w.Object], []problem{ruleWidensGraph.problemf("widens ServiceGraph %s/%s at %s: it opens %s, which the graph refuses",
				sg.Namespace, sg.Name, w.Layer, w.Example)})...)
		}
	}
	return out
}
