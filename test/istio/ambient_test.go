package istio

// Ambient mode judged by Istio's own code: the policies the compiler generates for services whose
// pods run in ambient mode go through istiod's conversion for ztunnel (PolicyCollections), which a
// model of ztunnel's evaluation then runs (ztunnel_test.go), and through the policy selection and
// authorization builder of a waypoint, which the Envoy RBAC evaluator runs (rbacmatch_test.go).

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	rbacpb "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	"sigs.k8s.io/yaml"

	"istio.io/istio/pilot/pkg/config/kube/crd"
	"istio.io/istio/pilot/pkg/config/memory"
	"istio.io/istio/pilot/pkg/model"
	"istio.io/istio/pilot/pkg/security/authz/builder"
	"istio.io/istio/pilot/pkg/security/trustdomain"
	"istio.io/istio/pilot/pkg/serviceregistry/provider"
	"istio.io/istio/pkg/config"
	istiomesh "istio.io/istio/pkg/config/mesh"
	"istio.io/istio/pkg/config/mesh/meshwatcher"
	"istio.io/istio/pkg/config/schema/collections"
	istiolog "istio.io/istio/pkg/log"
	"istio.io/istio/pkg/workloadapi/security"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/compiler"
	"github.com/servicegraph/servicegraph-operator/internal/graph"
	"github.com/servicegraph/servicegraph-operator/internal/render"
	"github.com/servicegraph/servicegraph-operator/internal/semantics"
	"github.com/servicegraph/servicegraph-operator/test/world"
)

// ambientRandomWorlds is how many random worlds (fixed seeds) the ambient tests judge.
const ambientRandomWorlds = 150

// The callers no edge names: a principal of no service, and a connection without identity.
const (
	ambientStranger   = "spiffe://cluster.local/ns/nowhere/sa/stranger"
	ambientNoIdentity = ""
)

// ambientGraph is one namespace's graph, compiled for its namespace's facts.
type ambientGraph struct {
	sg    *v1alpha1.ServiceGraph
	facts compiler.Facts

	res     *compiler.Result
	g       *graph.Graph
	configs []config.Config // its Istio objects, as Istio's configuration parser reads them
	aps     []*securityv1.AuthorizationPolicy
	pas     []*securityv1.PeerAuthentication
}

// ambientCase is graphs judged together: a cluster's namespaces.
type ambientCase struct {
	name   string
	graphs []*ambientGraph
}

// ambientFacts is the seed's namespace in ambient mode: its Services (database's labelled as
// given), the kubelet's probe ports, and a waypoint, ready or not. A copy of the compiler's
// golden_test.go ambientFacts, the facts of the ambient goldens.
func ambientFacts(databaseLabels map[string]string, ready bool) compiler.Facts {
	svc := func(name string, port int32, labels map[string]string) compiler.KubeService {
		return compiler.KubeService{Name: name, Namespace: "shop", Selector: map[string]string{"app": name}, Labels: labels,
			Ports: []compiler.KubeServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(port)}}}
	}
	return compiler.Facts{
		NamespaceLabels: map[string]string{"istio.io/dataplane-mode": "ambient"},
		Services:        []compiler.KubeService{svc("web", 8080, nil), svc("api", 8080, nil), svc("database", 5432, databaseLabels)},
		ProbePorts:      map[string][]intstr.IntOrString{"api": {intstr.FromInt32(8080)}, "database": {intstr.FromString("health")}},
		Waypoints:       map[string]compiler.WaypointFacts{"waypoint": {Ready: ready, ServiceAccount: "waypoint"}},
	}
}

// ambientGoldenCases are the compiler's ambient goldens, with the facts golden_test.go gives them.
func ambientGoldenCases(t *testing.T) []ambientCase {
	mixed := ambientFacts(nil, true)
	mixed.NamespaceLabels = nil
	mixed.Dataplanes = map[string]semantics.Dataplane{"web": semantics.DataplaneAmbient, "api": semantics.DataplaneSidecar, "database": semantics.DataplaneAmbient}
	facts := map[string]compiler.Facts{
		"ambient":        ambientFacts(map[string]string{"istio.io/use-waypoint": "waypoint"}, true),
		"ambient-create": ambientFacts(nil, false),
		"ambient-mixed":  mixed,
	}
	var out []ambientCase
	for _, name := range slices.Sorted(maps.Keys(facts)) {
		sg := readGraph(t, filepath.Join(root, "internal", "compiler", "testdata", "input", name+".yaml"))
		out = append(out, ambientCase{name: "golden " + name, graphs: []*ambientGraph{{sg: sg, facts: facts[name]}}})
	}
	return out
}

// ambientRandomCases are random worlds (test/world) in ambient mode or mid-migration: per
// namespace, every service in ambient mode (the namespace's label, some pods keeping a sidecar),
// or a random subset (Facts.Dataplanes); a Kubernetes Service per service (now and then none)
// whose ports send to its edges' ports, under port numbers of their own or the same; a waypoint
// or none, ready or not, under its own name or another ServiceAccount; Services enrolled in it by
// their label or the namespace's, some opting out.
func ambientRandomCases() []ambientCase {
	rng := rand.New(rand.NewPCG(61, 2026))
	var out []ambientCase
	for i := range ambientRandomWorlds {
		w := world.Random(rng, world.Options{MaxServices: 16, Namespaces: 3})
		w.Istio = true
		c := ambientCase{name: fmt.Sprintf("world-%02d", i)}
		for _, sg := range w.Graphs(rng) {
			c.graphs = append(c.graphs, &ambientGraph{sg: sg, facts: ambientRandomFacts(rng, w, sg.Namespace)})
		}
		out = append(out, c)
	}
	return out
}

// ambientRandomFacts are one namespace's facts in a random world.
func ambientRandomFacts(rng *rand.Rand, w *world.World, ns string) compiler.Facts {
	f := compiler.Facts{Dataplanes: map[string]semantics.Dataplane{}, NamedPorts: map[string]map[string]int32{}}
	mode := rng.IntN(3)
	switch mode {
	case 0, 2:
		f.NamespaceLabels = map[string]string{semantics.LabelDataplaneMode: string(semantics.DataplaneAmbient)}
		if mode == 2 {
			f.NamespaceLabels[semantics.LabelUseWaypoint] = "waypoint"
		}
	}
	switch rng.IntN(4) {
	case 0:
	case 1:
		f.Waypoints = map[string]compiler.WaypointFacts{"waypoint": {Ready: false, ServiceAccount: "waypoint"}}
	case 2:
		f.Waypoints = map[string]compiler.WaypointFacts{"waypoint": {Ready: true, ServiceAccount: "waypoint"}}
	default:
		f.Waypoints = map[string]compiler.WaypointFacts{"waypoint": {Ready: true, ServiceAccount: "waypoint-identity"}}
	}
	for to, s := range w.Services {
		if s.Namespace != ns {
			continue
		}
		switch {
		case mode == 1 && rng.IntN(2) == 0, mode != 1 && rng.IntN(6) == 0:
			f.Dataplanes[s.Name] = semantics.DataplaneSidecar
		case mode == 1 || rng.IntN(2) == 0:
			f.Dataplanes[s.Name] = semantics.DataplaneAmbient
		}
		if rng.IntN(10) > 0 {
			f.NamedPorts[s.Name] = maps.Clone(world.NamedPorts) // else its pods declare no port name
		}
		if rng.IntN(8) == 0 {
			continue // no Service selects its pods
		}
		ks := compiler.KubeService{Name: s.Name, Namespace: ns, Selector: s.Labels()}
		switch r := rng.IntN(6); {
		case mode != 2 && r < 3:
			ks.Labels = map[string]string{semantics.LabelUseWaypoint: "waypoint"}
		case mode == 2 && r == 0:
			ks.Labels = map[string]string{semantics.LabelUseWaypoint: "none"}
		}
		// One Service port per port its edges name (as they name it), speaking the edges'
		// protocol: HTTP when an edge has a path.
		type key struct {
			port intstr.IntOrString
			l4   corev1.Protocol
		}
		protocols := map[key]string{}
		var order []key
		for _, e := range w.Edges {
			if e.To != to {
				continue
			}
			for _, p := range e.Ports {
				k := key{p.Port, world.L4(p.Protocol)}
				if _, ok := protocols[k]; !ok {
					order = append(order, k)
					protocols[k] = strings.ToLower(string(k.l4))
				}
				switch {
				case p.Protocol == v1alpha1.ProtocolHTTP || p.Protocol == "" && e.Path != "":
					protocols[k] = "http"
				case p.Protocol == v1alpha1.ProtocolGRPC && protocols[k] != "http":
					protocols[k] = "grpc"
				}
			}
		}
		for i, k := range order {
			sp := compiler.KubeServicePort{Name: fmt.Sprintf("%s-%d", protocols[k], i), Protocol: k.l4, Port: int32(20000 + i), TargetPort: k.port}
			if k.port.Type == intstr.Int && rng.IntN(3) == 0 {
				sp.Port, sp.TargetPort = k.port.IntVal, intstr.IntOrString{} // the target port defaults to the port
			}
			ks.Ports = append(ks.Ports, sp)
		}
		if len(ks.Ports) == 0 {
			ks.Ports = []compiler.KubeServicePort{{Name: "tcp-0", Protocol: corev1.ProtocolTCP, Port: 80, TargetPort: intstr.FromInt32(8080)}}
		}
		f.Services = append(f.Services, ks)
		if rng.IntN(6) == 0 {
			// A second Service in front of the same pods, on other port numbers, enrolled in the
			// same waypoint, in none, or by the namespace's label.
			alt := ks
			alt.Name = s.Name + "-alt"
			alt.Ports = nil
			for _, sp := range ks.Ports {
				sp.TargetPort = compiler.TargetPort(sp)
				sp.Port += 100
				alt.Ports = append(alt.Ports, sp)
			}
			switch rng.IntN(3) {
			case 1:
				alt.Labels = nil
			case 2:
				alt.Labels = map[string]string{semantics.LabelUseWaypoint: "waypoint"}
			}
			f.Services = append(f.Services, alt)
		}
	}
	return f
}

// compile compiles the graph for its facts and reads its Istio objects back as Istio's parser
// (config.Config) and the API server (the client-go types PolicyCollections takes) read them.
func (ag *ambientGraph) compile(t *testing.T, name string) {
	t.Helper()
	res, err := compiler.Compile(ag.sg, compiler.DefaultOptions(), ag.facts)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	ag.res, ag.g = res, res.Graph
	var istio []compiler.Object
	for _, obj := range res.Objects() {
		if strings.HasSuffix(obj.GetObjectKind().GroupVersionKind().Group, "istio.io") {
			istio = append(istio, obj)
		}
	}
	data, err := render.YAML(istio)
	if err != nil {
		t.Fatal(err)
	}
	configs, _, err := crd.ParseInputs(string(data))
	if err != nil || len(configs) != len(istio) {
		t.Fatalf("%s: Istio parsed %d of %d objects: %v", name, len(configs), len(istio), err)
	}
	for _, cfg := range configs {
		s, ok := collections.Pilot.FindByGroupVersionAliasesKind(cfg.GroupVersionKind)
		if !ok {
			t.Fatalf("%s: Istio knows no %v", name, cfg.GroupVersionKind)
		}
		if warning, err := s.ValidateConfig(cfg); err != nil || warning != nil {
			t.Errorf("%s: %s %s/%s: istiod's validation says %v (warning %v)", name, cfg.GroupVersionKind.Kind, cfg.Namespace, cfg.Name, err, warning)
		}
	}
	ag.configs = configs
	for _, obj := range istio {
		one, err := render.YAML([]compiler.Object{obj})
		if err != nil {
			t.Fatal(err)
		}
		aps, pas := ztunnelDecode(t, string(one))
		ag.aps, ag.pas = append(ag.aps, aps...), append(ag.pas, pas...)
	}
}

// ambientQuiet keeps Istio's informational logs (every krt collection's sync) out of the output.
func ambientQuiet(t *testing.T) {
	levels := map[*istiolog.Scope]istiolog.Level{}
	for _, s := range istiolog.Scopes() {
		levels[s] = s.GetOutputLevel()
		s.SetOutputLevel(istiolog.WarnLevel)
	}
	t.Cleanup(func() {
		for s, l := range levels {
			s.SetOutputLevel(l)
		}
	})
}

// ambientCounts are the figures the tests log.
type ambientCounts struct {
	cases, graphs, policies, converted, statuses, sidecarStatuses, targetRefs int
	ambient, through, problems, unresolved, ztunnelPairs, bypassChecks        int
	waypointServices, waypointPairs, waypointRequests, unlisted, untouched    int
	// reported counts the disagreements per case and service: the first few are printed in full.
	reported map[string]int
	errors   int
}

// ambientShown is how many disagreements of one kind, per case and service, are printed in full.
const ambientShown = 3

// fail reports a disagreement: in full for the first few of its key, counted after that.
func (n *ambientCounts) fail(t *testing.T, key, format string, args ...any) {
	t.Helper()
	if n.reported == nil {
		n.reported = map[string]int{}
	}
	n.errors++
	n.reported[key]++
	if n.reported[key] <= ambientShown {
		t.Errorf(format, args...)
	} else {
		t.Fail()
	}
}

// TestAmbientZtunnelAndWaypoint judges the compiler's ambient output with Istio's code, for the
// ambient goldens' inputs (with golden_test.go's facts) and random worlds in ambient mode or
// mid-migration:
//   - istiod's validation accepts every object without a warning;
//   - ztunnel: every generated AuthorizationPolicy and PeerAuthentication goes through istiod's
//     PolicyCollections; a policy with targetRefs yields nothing for ztunnel; the selector policy
//     of every service in ambient mode, and the namespace-wide ones of a namespace with such a
//     service, convert without a status (no ZtunnelAccepted warning such as UnsupportedValue);
//     then, for every service D in ambient mode, the converted policies ztunnel attaches to D's
//     pods decide every caller (every service's principal, the waypoint's, a stranger, none) on
//     every port of D's edges and one no edge uses: ztunnel admits exactly the callers of D's
//     layer-4 edges on their ports (a port name resolved through the container ports of D's pods,
//     Facts.NamedPorts: ztunnel reads numbers only), plus the waypoint on the edges' ports when
//     D's Service goes through one, and never the caller of an edge with paths or methods on that
//     edge's ports; an edge whose port name no pod declares stays closed;
//   - the compiler reports exactly the services in ambient mode with edges with paths or methods
//     that no ready waypoint serves (WaypointProblems) and the edges closed for a port name no
//     pod declares (UnresolvedPorts);
//   - waypoint: for every Service that goes through a waypoint W, the policies the waypoint
//     selects for it (targetRefs: Service, and the allow-nothing targeting Gateway W, never a
//     selector policy) go through Istio's authorization builder as the waypoint builds it (the
//     peer's principal from filter state), and the Envoy RBAC evaluator admits each edge into D for
//     exactly its caller on the Service ports that send to the edge's ports, with its paths and
//     methods; other callers, paths and ports are refused; a Service of W without rules is refused
//     everything.
func TestAmbientZtunnelAndWaypoint(t *testing.T) {
	ambientQuiet(t)
	var n ambientCounts
	for _, c := range append(ambientGoldenCases(t), ambientRandomCases()...) {
		ambientJudge(t, c, &n)
	}
	t.Logf("%d cases (%d graphs): %d AuthorizationPolicies and PeerAuthentications through istiod's PolicyCollections, %d converted for ztunnel, %d targetRefs policies left to waypoints, %d statuses (all on sidecar services' policies: %d)",
		n.cases, n.graphs, n.policies, n.converted, n.targetRefs, n.statuses, n.sidecarStatuses)
	t.Logf("ztunnel: %d workloads in ambient mode (%d through a waypoint, %d with layer-7 edges held closed, %d edges closed for an undeclared port name), %d (caller, port) pairs judged, %d layer-7 (caller, port) pairs checked refused",
		n.ambient, n.through, n.problems, n.unresolved, n.ztunnelPairs, n.bypassChecks)
	t.Logf("waypoint: %d Services judged, %d (caller, Service port) pairs, %d requests; %d Services without rules refused everything; %d Services of services no edge touches closed end to end by their ztunnel",
		n.waypointServices, n.waypointPairs, n.waypointRequests, n.unlisted, n.untouched)
	if n.errors > 0 {
		t.Errorf("%d disagreements with Istio (at most %d printed per case, service and kind)", n.errors, ambientShown)
	}
	if n.ambient < 300 || n.through < 100 || n.ztunnelPairs < 20000 || n.waypointRequests < 10000 || n.bypassChecks < 100 {
		t.Errorf("too little judged: %+v", n)
	}
}

// ambientJudge judges one case.
func ambientJudge(t *testing.T, c ambientCase, n *ambientCounts) {
	n.cases++
	var aps []*securityv1.AuthorizationPolicy
	var pas []*securityv1.PeerAuthentication
	var configs []config.Config
	for _, ag := range c.graphs {
		ag.compile(t, c.name+"/"+ag.sg.Namespace)
		aps, pas, configs = append(aps, ag.aps...), append(pas, ag.pas...), append(configs, ag.configs...)
		n.graphs++
	}
	n.policies += len(aps) + len(pas)
	z := ambientPolicyCollections(t, aps, pas)
	waypoints := ambientAuthorizationPolicies(t, configs)
	callers := ambientCallers(c)
	for _, ag := range c.graphs {
		where := c.name + "/" + ag.g.Namespace
		ambientNamespace := false
		for i := range ag.g.Services {
			if s := &ag.g.Services[i]; ag.g.Local(s) && ag.dataplane(s.Name) == semantics.DataplaneAmbient {
				ambientNamespace = true
			}
		}
		// What istiod makes of each AuthorizationPolicy for ztunnel.
		for _, ap := range ag.aps {
			wa, ok := z.byName(ap.Namespace, ap.Name)
			if len(ap.Spec.GetTargetRefs()) > 0 {
				n.targetRefs++
				if ok {
					n.fail(t, where+"/targetRefs", "%s: %s has targetRefs, yet istiod converts it for ztunnel: %v", where, ap.Name, wa.Authorization)
				}
				continue
			}
			if !ok || wa.Authorization == nil {
				n.fail(t, where+"/converted", "%s: istiod sends ztunnel nothing for %s (status %v)\n%s", where, ap.Name, wa.Binding.Status, ambientYAML(ap))
				continue
			}
			n.converted++
			if wa.Binding.Status == nil {
				continue
			}
			n.statuses++
			svc := ap.Labels["policy.servicegraph.io/service"]
			switch {
			case svc == "" && ambientNamespace, svc != "" && ag.dataplane(svc) == semantics.DataplaneAmbient:
				n.fail(t, where+"/status", "%s: istiod's ZtunnelAccepted for %s, which ztunnel enforces: %s: %s\n%s", where, ap.Name, wa.Binding.Status.Reason, wa.Binding.Status.Message, ambientYAML(ap))
			default:
				n.sidecarStatuses++ // a sidecar enforces it in full; ztunnel never sees its traffic
			}
		}
		// Each service in ambient mode: what the compiler reports, ztunnel, the waypoint.
		for i := range ag.g.Services {
			s := &ag.g.Services[i]
			if !ag.g.Local(s) || ag.dataplane(s.Name) != semantics.DataplaneAmbient {
				continue
			}
			n.ambient++
			if got := ag.res.Dataplanes[s.Name]; got != semantics.DataplaneAmbient {
				n.fail(t, where+"/dataplane", "%s: %s: the compiler says data plane %q, the facts ambient", where, s.Name, got)
			}
			w := ag.waypointOf(s.Name)
			if w.through {
				n.through++
			}
			reported := slices.ContainsFunc(ag.res.WaypointProblems, func(p compiler.WaypointProblem) bool { return p.Service == s.Name })
			// Layer-7 edges without a ready waypoint stay closed; so does the traffic of a service
			// (one the graph writes policies for) whose Services use waypoints it cannot follow.
			closed := ag.l7(s.Name) && !(w.through && ag.facts.Waypoints[w.name].Ready) || w.ambiguous && ag.touched(s.Name)
			if closed {
				n.problems++
			}
			if reported != closed {
				n.fail(t, where+"/problems", "%s: %s: WaypointProblems lists it: %v, want %v (layer-7 edges %v, waypoint %+v, facts %+v): %v", where, s.Name, reported, closed, ag.l7(s.Name), w, ag.facts.Waypoints, ag.res.WaypointProblems)
			}
			for _, e := range ag.edgesInto(s.Name) {
				_, open := ag.podPorts(&e)
				want := !open && (!ambientL7(&e) || w.through)
				reported := slices.ContainsFunc(ag.res.UnresolvedPorts, func(u string) bool { return strings.HasPrefix(u, "edge "+e.String()+":") })
				if !open {
					n.unresolved++
				}
				if reported != want {
					n.fail(t, where+"/unresolved", "%s: edge %s: UnresolvedPorts lists it: %v, want %v (NamedPorts %v): %v", where, e.String(), reported, want, ag.facts.NamedPorts[s.Name], ag.res.UnresolvedPorts)
				}
			}
			ag.judgeZtunnel(t, where, s, z, callers, w, n)
			if w.through {
				ag.judgeWaypoint(t, where, s, waypoints, z, callers, w, n)
			}
		}
		for _, name := range ag.res.Waypoints {
			ag.judgeUnlisted(t, where, name, waypoints, callers, n)
		}
	}
}

// dataplane is a local service's data plane as the facts give it: its pods', else its
// namespace's (ambient when labelled so), else a sidecar.
func (ag *ambientGraph) dataplane(name string) semantics.Dataplane {
	want := semantics.DataplaneSidecar
	if d, ok := ag.facts.Dataplanes[name]; ok {
		want = d
	} else if ag.facts.NamespaceLabels[semantics.LabelDataplaneMode] == string(semantics.DataplaneAmbient) {
		want = semantics.DataplaneAmbient
	}
	return want
}

// l7 tells whether an edge into the service has paths or methods.
func (ag *ambientGraph) l7(name string) bool {
	return slices.ContainsFunc(ag.edgesInto(name), func(e graph.Edge) bool { return ambientL7(&e) })
}

func ambientL7(e *graph.Edge) bool { return len(e.Paths) > 0 || len(e.Methods) > 0 }

func (ag *ambientGraph) edgesInto(name string) []graph.Edge {
	var out []graph.Edge
	for _, e := range ag.g.Edges {
		if e.To == name && e.ToNamespace == ag.g.Namespace {
			out = append(out, e)
		}
	}
	return out
}

// podPorts are the ports of an edge into a local service that a ztunnel or a waypoint sees (TCP:
// HTTP and GRPC run on it; UDP and SCTP never reach either), as the destination pod's port
// numbers: a name is resolved through the container ports its pods declare (Facts.NamedPorts).
// open is false when a name resolves to none: the edge stays closed (Result.UnresolvedPorts).
func (ag *ambientGraph) podPorts(e *graph.Edge) (ports []uint32, open bool) {
	for _, p := range e.Ports {
		if p.L4() != corev1.ProtocolTCP {
			continue
		}
		n, ok := ag.resolve(e.To, p.Port)
		if !ok {
			return nil, false
		}
		ports = append(ports, n)
	}
	return ports, true
}

// resolve is a port of a local service's pods as a number, false when no pod declares its name.
func (ag *ambientGraph) resolve(service string, p intstr.IntOrString) (uint32, bool) {
	if p.Type == intstr.String {
		n, ok := ag.facts.NamedPorts[service][p.StrVal]
		return uint32(n), ok
	}
	return uint32(p.IntVal), true
}

// ambientWaypoint is the waypoint a service's Services go through, as Istio picks it.
type ambientWaypoint struct {
	name      string
	principal string
	services  []compiler.KubeService
	// through is set when Istio sends the Services' traffic through it: every Service names it
	// (istio.io/use-waypoint on the Service, else on the namespace, or the label the operator
	// sets when the graph creates its waypoint) and it exists.
	through bool
	// ambiguous is set when the Services name different waypoints (or none), or one of another
	// namespace: the graph's policies cannot follow them, and traffic through such a waypoint is
	// refused.
	ambiguous bool
}

func (ag *ambientGraph) waypointOf(name string) ambientWaypoint {
	s, _ := ag.g.Service(name)
	var w ambientWaypoint
	names := map[string]bool{}
	for _, ks := range ag.facts.Services {
		if ks.Namespace != ag.g.Namespace || !compiler.Selects(ks.Selector, s.Labels) {
			continue
		}
		w.services = append(w.services, ks)
		labels := ks.Labels
		if _, ok := labels[semantics.LabelUseWaypoint]; !ok {
			labels = ag.facts.NamespaceLabels
		}
		wp := labels[semantics.LabelUseWaypoint]
		if wp == "none" {
			wp = ""
		}
		if wp != "" && labels[semantics.LabelUseWaypointNamespace] != "" && labels[semantics.LabelUseWaypointNamespace] != ag.g.Namespace {
			w.ambiguous = true
		}
		if wp == "" && ag.g.CreateWaypoint && ag.l7(name) {
			wp = ambientFirst(ag.g.Waypoint, ag.facts.NamespaceLabels[semantics.LabelUseWaypoint], compiler.DefaultWaypointName)
		}
		names[wp] = true
	}
	if len(names) > 1 {
		w.ambiguous = true
	}
	if len(names) != 1 || w.ambiguous {
		return w
	}
	for wp := range names {
		w.name = wp
	}
	facts, exists := ag.facts.Waypoints[w.name]
	w.through = w.name != "" && exists
	w.principal = "spiffe://" + compiler.DefaultTrustDomain + "/ns/" + ag.g.Namespace + "/sa/" + ambientFirst(facts.ServiceAccount, w.name)
	return w
}

// ambientFirst is the first value that is not empty.
func ambientFirst(values ...string) string {
	for _, v := range values {
		if v != "" {
			return v
		}
	}
	return ""
}

// ambientCallers are the candidate callers: every service's principal, every waypoint's, a
// stranger and no identity.
func ambientCallers(c ambientCase) []string {
	set := map[string]bool{ambientStranger: true}
	for _, ag := range c.graphs {
		for i := range ag.g.Services {
			if s := &ag.g.Services[i]; s.External == nil {
				set[callerOf(s)] = true
			}
		}
		for name, f := range ag.facts.Waypoints {
			set["spiffe://"+compiler.DefaultTrustDomain+"/ns/"+ag.g.Namespace+"/sa/"+ambientFirst(f.ServiceAccount, name)] = true
		}
	}
	return append(slices.Sorted(maps.Keys(set)), ambientNoIdentity)
}

// edgeCaller is the principal of an edge's caller; it fails on an external caller, which these
// tests do not model.
func (ag *ambientGraph) edgeCaller(t *testing.T, e *graph.Edge) string {
	from, _ := ag.g.Service(e.From)
	if from.External != nil {
		t.Fatalf("%s/%s: an external caller is not modelled here: %s", ag.g.Namespace, e.To, e.String())
	}
	return callerOf(from)
}

// judgeZtunnel decides every candidate caller on every port of the service's edges (and one no
// edge uses) with the converted policies ztunnel attaches to its pods.
func (ag *ambientGraph) judgeZtunnel(t *testing.T, where string, s *graph.Service, z *ztunnelConverted, callers []string, w ambientWaypoint, n *ambientCounts) {
	edges := ag.edgesInto(s.Name)
	portSet := map[uint32]bool{}
	for i := range edges {
		ports, _ := ag.podPorts(&edges[i])
		for _, p := range ports {
			portSet[p] = true
		}
	}
	unused := uint32(65000)
	for portSet[unused] {
		unused++
	}
	ports := append(slices.Sorted(maps.Keys(portSet)), unused)
	// want: who ztunnel must admit on which port.
	covers := func(e *graph.Edge, port uint32) bool {
		ps, _ := ag.podPorts(e)
		return slices.Contains(ps, port)
	}
	want := func(caller string, port uint32) (bool, string) {
		for i := range edges {
			e := &edges[i]
			if !ambientL7(e) && ag.edgeCaller(t, e) == caller && covers(e, port) {
				return true, "layer-4 edge " + e.String()
			}
		}
		if w.through && caller == w.principal {
			for i := range edges {
				if covers(&edges[i], port) {
					return true, "the waypoint " + w.name + ", for edge " + edges[i].String()
				}
			}
		}
		return false, "no layer-4 edge"
	}
	policies := z.attached(t, s.Namespace, s.Labels)
	for _, caller := range callers {
		for _, port := range ports {
			n.ztunnelPairs++
			conn := ztunnelConn{Principal: caller, SourceIP: netip.MustParseAddr("10.0.0.5"), DestIP: netip.MustParseAddr("10.0.1.10"), Port: port}
			got, why := ztunnelVerdict(policies, conn)
			if exp, reason := want(caller, port); got != exp {
				n.fail(t, where+"/"+s.Name+"/ztunnel", "%s: ztunnel in front of %s: %s: admitted %v (%s), want %v (%s)\nedges into %s: %v; waypoint %s %s (exists: %v)\npolicies ztunnel applies:\n%s",
					where, s.Name, conn, got, why, exp, reason, s.Name, ambientEdgeList(edges), w.name, w.principal, w.through, ambientDescribe(policies))
			}
		}
	}
	// Never the caller of an edge with paths or methods, directly, on that edge's ports.
	for i := range edges {
		e := &edges[i]
		if !ambientL7(e) {
			continue
		}
		caller := ag.edgeCaller(t, e)
		ps, _ := ag.podPorts(e)
		for _, port := range ps {
			legit := slices.ContainsFunc(edges, func(o graph.Edge) bool {
				ops, _ := ag.podPorts(&o)
				return !ambientL7(&o) && ag.edgeCaller(t, &o) == caller && slices.Contains(ops, port)
			})
			if legit {
				continue
			}
			n.bypassChecks++
			conn := ztunnelConn{Principal: caller, SourceIP: netip.MustParseAddr("10.0.0.5"), DestIP: netip.MustParseAddr("10.0.1.10"), Port: port}
			if got, why := ztunnelVerdict(policies, conn); got {
				n.fail(t, where+"/"+s.Name+"/bypass", "%s: ztunnel in front of %s admits the caller of %s directly on port %d (%s): it skips the waypoint's check of its paths and methods\npolicies:\n%s",
					where, s.Name, e.String(), port, why, ambientDescribe(policies))
			}
		}
	}
}

// ambientAuthorizationPolicies are the policies as istiod indexes them, with the mesh's default
// configuration (root namespace istio-system).
func ambientAuthorizationPolicies(t *testing.T, configs []config.Config) *model.AuthorizationPolicies {
	t.Helper()
	store := memory.Make(collections.Pilot)
	for _, c := range configs {
		if _, err := store.Create(c); err != nil {
			t.Fatal(err)
		}
	}
	env := &model.Environment{ConfigStore: store, Watcher: meshwatcher.NewTestWatcher(istiomesh.DefaultMeshConfig())}
	return model.GetAuthorizationPolicies(env)
}

// waypointFilters selects the policies a waypoint applies to traffic for a Service (none for the
// Gateway's own) and builds its RBAC filters as the waypoint does (the peer's principal from
// filter state). It returns the selected policies' names.
func waypointFilters(t *testing.T, pols *model.AuthorizationPolicies, namespace, waypoint, service string) (http, tcp []*rbacpb.RBAC, selected []string) {
	t.Helper()
	m := model.WorkloadPolicyMatcher{
		WorkloadNamespace: namespace,
		WorkloadLabels:    map[string]string{semantics.LabelGatewayName: waypoint},
		IsWaypoint:        true,
	}
	if service != "" {
		m = m.WithService(&model.Service{Attributes: model.ServiceAttributes{Name: service, Namespace: namespace, ServiceRegistry: provider.Kubernetes}})
	}
	res := pols.ListAuthorizationPolicies(m.WithRootNamespace(ztunnelRootNamespace))
	for _, list := range [][]model.AuthorizationPolicy{res.Custom, res.Deny, res.Allow, res.Audit} {
		for _, p := range list {
			selected = append(selected, p.Name)
		}
	}
	slices.Sort(selected)
	b := builder.New(trustdomain.NewBundle(compiler.DefaultTrustDomain, nil), &model.PushContext{AuthzPolicies: pols}, res, builder.Option{UseFilterState: true})
	var err error
	if http, err = httpFilters(b); err != nil {
		t.Fatal(err)
	}
	if tcp, err = tcpFilters(b); err != nil {
		t.Fatal(err)
	}
	return http, tcp, selected
}

// ambientExamplePath is a request path an Istio path pattern matches.
func ambientExamplePath(t *testing.T, p string) string {
	switch {
	case strings.ContainsAny(p, "{}"):
		t.Fatalf("path template %q is not modelled here", p)
	case p == "*":
		return "/anything"
	case strings.HasSuffix(p, "*"):
		return strings.TrimSuffix(p, "*") + "x"
	case strings.HasPrefix(p, "*"):
		return "/x" + strings.TrimPrefix(p, "*")
	}
	return p
}

// ambientPathMatches is Istio's path match: exact, prefix ("/a/*"), suffix ("*.js") or any ("*").
func ambientPathMatches(pattern, path string) bool {
	switch {
	case pattern == "*":
		return path != ""
	case strings.HasSuffix(pattern, "*"):
		return strings.HasPrefix(path, strings.TrimSuffix(pattern, "*"))
	case strings.HasPrefix(pattern, "*"):
		return strings.HasSuffix(path, strings.TrimPrefix(pattern, "*"))
	}
	return pattern == path
}

// ambientHTTPPort tells whether Istio reads a Service port as HTTP (its name's or appProtocol's
// prefix): the waypoint then runs its HTTP filters, else its TCP ones.
func ambientHTTPPort(sp compiler.KubeServicePort) bool {
	proto := ambientFirst(sp.AppProtocol, sp.Name)
	for _, prefix := range []string{"http", "grpc"} {
		if proto == prefix || strings.HasPrefix(proto, prefix+"-") || strings.HasPrefix(proto, prefix+"2") {
			return true
		}
	}
	return false
}

// judgeWaypoint runs, for each Service of a service in ambient mode that goes through a
// waypoint, the filters the waypoint builds for it, on every candidate caller, Service port, path
// and method.
func (ag *ambientGraph) judgeWaypoint(t *testing.T, where string, s *graph.Service, pols *model.AuthorizationPolicies, z *ztunnelConverted, callers []string, w ambientWaypoint, n *ambientCounts) {
	edges := ag.edgesInto(s.Name)
	if !ag.touched(s.Name) {
		ag.judgeUntouched(t, where, s, pols, z, callers, w, n)
		return
	}
	paths, methods := map[string]bool{"/zz-no-edge-names-this": true}, map[string]bool{"GET": true, "PATCH": true}
	for i := range edges {
		for _, p := range edges[i].Paths {
			paths[ambientExamplePath(t, p)] = true
		}
		for _, m := range edges[i].Methods {
			methods[m] = true
		}
	}
	denyAll := ag.g.Name + "-waypoint-deny-all"
	for _, ks := range w.services {
		n.waypointServices++
		http, tcp, selected := waypointFilters(t, pols, ag.g.Namespace, w.name, ks.Name)
		if !slices.Contains(selected, denyAll) {
			n.fail(t, where+"/selected", "%s: waypoint %s does not select %s for Service %s (it selects %v)", where, w.name, denyAll, ks.Name, selected)
		}
		for _, name := range selected {
			if ap := ag.ap(name); ap != nil && ap.Spec.GetSelector() != nil {
				n.fail(t, where+"/selected", "%s: waypoint %s selects the selector policy %s for Service %s", where, w.name, name, ks.Name)
			}
		}
		for _, sp := range ks.Ports {
			if sp.Protocol != "" && sp.Protocol != corev1.ProtocolTCP {
				continue // a waypoint takes TCP only
			}
			target, ok := ag.resolve(s.Name, compiler.TargetPort(sp))
			if !ok {
				continue // it sends to a port name no pod declares: no traffic
			}
			// reaches: the edges whose ports this Service port sends to.
			var reaches []graph.Edge
			for i := range edges {
				if ps, _ := ag.podPorts(&edges[i]); slices.Contains(ps, target) {
					reaches = append(reaches, edges[i])
				}
			}
			for _, caller := range callers {
				n.waypointPairs++
				if !ambientHTTPPort(sp) {
					n.waypointRequests++
					want := slices.ContainsFunc(reaches, func(e graph.Edge) bool { return !ambientL7(&e) && ag.edgeCaller(t, &e) == caller })
					r := envoyTCPReq(caller, envoyPort(uint32(sp.Port)))
					ag.checkWaypoint(t, where, s.Name, w, ks, sp, reaches, tcp, r, want, fmt.Sprintf("TCP to Service port %s/%d", sp.Name, sp.Port), n)
					continue
				}
				for _, path := range slices.Sorted(maps.Keys(paths)) {
					for _, method := range slices.Sorted(maps.Keys(methods)) {
						n.waypointRequests++
						want := slices.ContainsFunc(reaches, func(e graph.Edge) bool {
							return ag.edgeCaller(t, &e) == caller &&
								(len(e.Paths) == 0 || slices.ContainsFunc(e.Paths, func(p string) bool { return ambientPathMatches(p, path) })) &&
								(len(e.Methods) == 0 || slices.Contains(e.Methods, method))
						})
						r := envoyHTTPReq(caller, envoyPort(uint32(sp.Port)), envoyPath(path), envoyMethod(method))
						ag.checkWaypoint(t, where, s.Name, w, ks, sp, reaches, http, r, want, fmt.Sprintf("%s %s on Service port %s/%d", method, path, sp.Name, sp.Port), n)
					}
				}
			}
		}
	}
}

// touched tells whether an edge of the graph starts or ends at the service: the compiler writes
// policies only for such services.
func (ag *ambientGraph) touched(name string) bool {
	return slices.ContainsFunc(ag.g.Edges, func(e graph.Edge) bool {
		return e.To == name && e.ToNamespace == ag.g.Namespace || e.From == name && e.FromNamespace == ""
	})
}

// judgeUntouched: a service no edge touches gets no policy of its own, and when it is the only
// one through its waypoint, the waypoint selects no policy at all for its Service and lets
// everything through: the service stays closed only because its ztunnel refuses the waypoint
// (the namespace's allow-nothing). That is what is checked, end to end.
func (ag *ambientGraph) judgeUntouched(t *testing.T, where string, s *graph.Service, pols *model.AuthorizationPolicies, z *ztunnelConverted, callers []string, w ambientWaypoint, n *ambientCounts) {
	policies := z.attached(t, s.Namespace, s.Labels)
	for _, ks := range w.services {
		n.untouched++
		http, tcp, _ := waypointFilters(t, pols, ag.g.Namespace, w.name, ks.Name)
		for _, sp := range ks.Ports {
			target, ok := ag.resolve(s.Name, compiler.TargetPort(sp))
			if !ok || sp.Protocol != "" && sp.Protocol != corev1.ProtocolTCP {
				continue
			}
			for _, caller := range callers {
				filters, r := tcp, envoyTCPReq(caller, envoyPort(uint32(sp.Port)))
				if ambientHTTPPort(sp) {
					filters, r = http, envoyHTTPReq(caller, envoyPort(uint32(sp.Port)))
				}
				passes, why, err := rbacVerdict(filters, r)
				if err != nil {
					t.Fatal(err)
				}
				conn := ztunnelConn{Principal: w.principal, SourceIP: netip.MustParseAddr("10.0.0.6"), DestIP: netip.MustParseAddr("10.0.1.10"), Port: target}
				if admitted, zwhy := ztunnelVerdict(policies, conn); passes && admitted {
					n.fail(t, where+"/"+ks.Name+"/untouched", "%s: %s, which no edge touches, is reached by %s through waypoint %s on Service %s port %d: the waypoint lets it through (%s) and its ztunnel admits the waypoint (%s)",
						where, s.Name, ambientFirst(caller, "no identity"), w.name, ks.Name, sp.Port, why, zwhy)
				}
			}
		}
	}
}

func (ag *ambientGraph) checkWaypoint(t *testing.T, where, svc string, w ambientWaypoint, ks compiler.KubeService, sp compiler.KubeServicePort, reaches []graph.Edge, filters []*rbacpb.RBAC, r envoyRequest, want bool, what string, n *ambientCounts) {
	t.Helper()
	got, why, err := rbacVerdict(filters, r)
	if err != nil {
		t.Fatalf("%s: waypoint %s, Service %s: the RBAC evaluator: %v", where, w.name, ks.Name, err)
	}
	if got == want {
		return
	}
	who := ambientFirst(r.Principal, "no identity")
	// The edges this Service port reaches that write its pod port otherwise than its targetPort.
	var spelled []string
	for i := range reaches {
		target := compiler.TargetPort(sp)
		if !slices.ContainsFunc(reaches[i].Ports, func(p graph.Port) bool { return p.Port == target }) {
			spelled = append(spelled, fmt.Sprintf("edge %s writes otherwise the pod port the Service port's targetPort %s names", reaches[i].String(), target.String()))
		}
	}
	n.fail(t, where+"/"+ks.Name+"/waypoint", "%s: waypoint %s, Service %s: %s from %s: admitted %v (%s), want %v %v\nedges into %s: %v\npolicies the waypoint may select:\n%s",
		where, w.name, ks.Name, what, who, got, why, want, spelled, ks.Name, ambientEdgeList(ag.edgesInto(svc)), ag.targetRefPolicies(w.name, ks.Name))
}

// judgeUnlisted: a Service that goes through the waypoint but that no policy names (here, one
// the graph does not know) gets only the waypoint's allow-nothing, and the Gateway's own traffic
// too: every caller is refused.
func (ag *ambientGraph) judgeUnlisted(t *testing.T, where, waypoint string, pols *model.AuthorizationPolicies, callers []string, n *ambientCounts) {
	for _, service := range []string{"ambient-unlisted", ""} {
		n.unlisted++
		http, tcp, selected := waypointFilters(t, pols, ag.g.Namespace, waypoint, service)
		if want := []string{ag.g.Name + "-waypoint-deny-all"}; !slices.Equal(selected, want) {
			n.fail(t, where+"/unlisted", "%s: waypoint %s selects %v for Service %q, want %v", where, waypoint, selected, service, want)
		}
		for _, caller := range callers {
			for _, r := range []envoyRequest{envoyHTTPReq(caller, envoyPort(80)), envoyTCPReq(caller, envoyPort(80))} {
				filters := tcp
				if r.HTTP {
					filters = http
				}
				got, why, err := rbacVerdict(filters, r)
				if err != nil {
					t.Fatal(err)
				}
				if got {
					n.fail(t, where+"/unlisted", "%s: waypoint %s admits %s to Service %q, which no rule names (%s)", where, waypoint, ambientFirst(caller, "no identity"), service, why)
				}
			}
		}
	}
}

// ap is the graph's AuthorizationPolicy of that name, nil when none.
func (ag *ambientGraph) ap(name string) *securityv1.AuthorizationPolicy {
	for _, ap := range ag.aps {
		if ap.Name == name {
			return ap
		}
	}
	return nil
}

// targetRefPolicies are the graph's policies that target the waypoint or the Service, for
// failure messages.
func (ag *ambientGraph) targetRefPolicies(waypoint, service string) string {
	var b strings.Builder
	for _, ap := range ag.aps {
		for _, ref := range ap.Spec.GetTargetRefs() {
			if ref.GetName() == waypoint && ref.GetKind() == "Gateway" || ref.GetName() == service && ref.GetKind() == "Service" {
				b.WriteString(ambientYAML(ap))
				b.WriteString("---\n")
				break
			}
		}
	}
	return b.String()
}

func ambientYAML(obj any) string {
	data, err := yaml.Marshal(obj)
	if err != nil {
		return err.Error()
	}
	return string(data)
}

// ambientEdgeList renders edges for failure messages.
func ambientEdgeList(edges []graph.Edge) []string {
	out := []string{}
	for i := range edges {
		out = append(out, edges[i].String())
	}
	return out
}

// ambientDescribe lists converted policies for failure messages.
func ambientDescribe(policies []*security.Authorization) string {
	var b strings.Builder
	for _, p := range policies {
		fmt.Fprintf(&b, "  %s/%s %s %s: %v\n", p.Namespace, p.Name, p.Scope, p.Action, p.Groups)
	}
	return b.String()
}

// TestAmbientSeedBeforeAndAfter shows what ambient mode does to the sidecar-mode objects the
// operator generated before it knew ambient mode, on the seed (web -> api:8080,
// api -> database:5432/data), and what the ambient objects do instead:
//   - before: compiled with no facts (sidecars), the database's selector policy reaches istiod's
//     conversion for ztunnel with its only rule (the /data path) dropped: the status
//     UnsupportedValue "ztunnel does not support HTTP attributes (found: paths) ...", and ztunnel
//     refuses api at database (the policy still applies, and matches nothing);
//   - after: compiled with the ambient facts of the golden (database's Service through a ready
//     waypoint), no policy draws a status; ztunnel refuses api at database and admits the
//     waypoint; the waypoint admits api's GET /data on the Service's port 80 and refuses other
//     paths, other callers and other ports.
func TestAmbientSeedBeforeAndAfter(t *testing.T) {
	ambientQuiet(t)
	seed := readGraph(t, filepath.Join(root, "internal", "compiler", "testdata", "input", "seed.yaml"))
	const (
		web      = "spiffe://cluster.local/ns/shop/sa/web"
		api      = "spiffe://cluster.local/ns/shop/sa/api"
		waypoint = "spiffe://cluster.local/ns/shop/sa/waypoint"
	)
	conn := func(principal string, port uint32) ztunnelConn {
		return ztunnelConn{Principal: principal, SourceIP: netip.MustParseAddr("10.0.0.5"), DestIP: netip.MustParseAddr("10.0.1.10"), Port: port}
	}
	expect := func(t *testing.T, z *ztunnelConverted, to string, c ztunnelConn, want bool) {
		t.Helper()
		policies := z.attached(t, "shop", map[string]string{"app": to})
		if got, why := ztunnelVerdict(policies, c); got != want {
			t.Errorf("ztunnel in front of %s: %s: admitted %v (%s), want %v\npolicies:\n%s", to, c, got, why, want, ambientDescribe(policies))
		} else {
			t.Logf("ztunnel in front of %s: %s: admitted %v (%s)", to, c, got, why)
		}
	}

	t.Run("before: sidecar objects in an ambient namespace", func(t *testing.T) {
		before := &ambientGraph{sg: seed}
		before.compile(t, "seed")
		z := ambientPolicyCollections(t, before.aps, before.pas)
		wa, ok := z.byName("shop", "shop-svc-database")
		if !ok || wa.Authorization == nil {
			t.Fatalf("istiod sends ztunnel nothing for shop-svc-database")
		}
		st := wa.Binding.Status
		if st == nil || st.Reason != "UnsupportedValue" || !strings.Contains(st.Message, "ztunnel does not support HTTP attributes (found: paths)") {
			t.Errorf("shop-svc-database: status %+v, want UnsupportedValue: ztunnel does not support HTTP attributes (found: paths)", st)
		} else {
			t.Logf("istiod on shop-svc-database (ZtunnelAccepted): %s: %s", st.Reason, st.Message)
		}
		if len(wa.Authorization.Groups) != 0 {
			t.Errorf("shop-svc-database: ztunnel gets %d groups, want none (its only rule has a path)", len(wa.Authorization.Groups))
		}
		expect(t, z, "database", conn(api, 5432), false)
		expect(t, z, "api", conn(web, 8080), true)
	})

	t.Run("after: ambient objects through the waypoint", func(t *testing.T) {
		after := &ambientGraph{sg: seed, facts: ambientFacts(map[string]string{"istio.io/use-waypoint": "waypoint"}, true)}
		after.compile(t, "seed")
		z := ambientPolicyCollections(t, after.aps, after.pas)
		for _, wa := range z.authz {
			if wa.Binding.Status != nil {
				t.Errorf("%s: istiod's status %s: %s", wa.Source.Name, wa.Binding.Status.Reason, wa.Binding.Status.Message)
			}
		}
		if len(after.res.WaypointProblems) > 0 {
			t.Errorf("waypoint problems: %v", after.res.WaypointProblems)
		}
		expect(t, z, "database", conn(api, 5432), false)
		expect(t, z, "database", conn(waypoint, 5432), true)
		expect(t, z, "database", conn(waypoint, 5433), false)
		expect(t, z, "api", conn(web, 8080), true)
		pols := ambientAuthorizationPolicies(t, after.configs)
		http, _, selected := waypointFilters(t, pols, "shop", "waypoint", "database")
		if want := []string{"shop-waypoint-deny-all", "shop-wp-database"}; !slices.Equal(selected, want) {
			t.Errorf("the waypoint selects %v for Service database, want %v", selected, want)
		}
		for _, tc := range []struct {
			r    envoyRequest
			what string
			want bool
		}{
			{envoyHTTPReq(api, envoyPort(80), envoyPath("/data")), "api: GET /data on port 80", true},
			{envoyHTTPReq(api, envoyPort(80), envoyPath("/data"), envoyMethod("POST")), "api: POST /data on port 80", true},
			{envoyHTTPReq(api, envoyPort(80), envoyPath("/admin")), "api: GET /admin on port 80", false},
			{envoyHTTPReq(api, envoyPort(5432), envoyPath("/data")), "api: GET /data on port 5432 (the target port)", false},
			{envoyHTTPReq(web, envoyPort(80), envoyPath("/data")), "web: GET /data on port 80", false},
			{envoyHTTPReq("", envoyPort(80), envoyPath("/data")), "no identity: GET /data on port 80", false},
		} {
			got, why, err := rbacVerdict(http, tc.r)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("waypoint, Service database: %s: admitted %v (%s), want %v", tc.what, got, why, tc.want)
			} else {
				t.Logf("waypoint, Service database: %s: admitted %v", tc.what, got)
			}
		}
	})
}

// TestAmbientEdgeCases judges, as TestAmbientZtunnelAndWaypoint does, small variations of the
// seed that the random worlds meet only now and then:
//   - database's Service sends port 80 to the pod port by name (targetPort: postgres) while the
//     edge numbers it (api -> database:5432/data), and the other way round;
//   - database's Service goes through the waypoint but no edge enters database (it only calls);
//   - the edge names a port no pod of database declares: it stays closed.
func TestAmbientEdgeCases(t *testing.T) {
	ambientQuiet(t)
	seed := func(edges ...string) *v1alpha1.ServiceGraph {
		sg := readGraph(t, filepath.Join(root, "internal", "compiler", "testdata", "input", "seed.yaml"))
		sg.Spec.Edges = edges
		return sg
	}
	through := func(targetPort intstr.IntOrString, named bool) compiler.Facts {
		f := ambientFacts(map[string]string{semantics.LabelUseWaypoint: "waypoint"}, true)
		f.Services[2].Ports[0].TargetPort = targetPort
		if named {
			f.NamedPorts = map[string]map[string]int32{"database": {"postgres": 5432}}
		}
		return f
	}
	for _, tc := range []struct {
		name  string
		sg    *v1alpha1.ServiceGraph
		facts compiler.Facts
	}{
		{"the Service's targetPort names the pod port the edge numbers", seed("web->api:8080", "api->database:5432/data"), through(intstr.FromString("postgres"), true)},
		{"the edge names the pod port the Service's targetPort numbers", seed("web->api:8080", "api->database:postgres/data"), through(intstr.FromInt32(5432), true)},
		{"both name the pod port", seed("web->api:8080", "api->database:postgres/data"), through(intstr.FromString("postgres"), true)},
		{"a service through a waypoint that no edge enters", seed("web->api:8080", "database->api:8080"), through(intstr.FromInt32(5432), false)},
		{"an edge whose port name no pod declares", seed("web->api:8080", "api->database:postgres/data"), through(intstr.FromString("postgres"), false)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var n ambientCounts
			ambientJudge(t, ambientCase{name: tc.name, graphs: []*ambientGraph{{sg: tc.sg, facts: tc.facts}}}, &n)
			t.Logf("%d (caller, port) pairs at ztunnel, %d requests at the waypoint, %d disagreements", n.ztunnelPairs, n.waypointRequests, n.errors)
		})
	}
}
