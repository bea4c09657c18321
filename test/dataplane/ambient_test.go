package dataplane_test

import (
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/cli"
	"github.com/servicegraph/servicegraph-operator/internal/semantics"
	"github.com/servicegraph/servicegraph-operator/test/dataplane"
	"github.com/servicegraph/servicegraph-operator/test/testenv"
	"github.com/servicegraph/servicegraph-operator/test/world"
)

// The seed scenario in Istio's ambient mode, on real packets: the pods are captured by ztunnel
// (istio-cni's annotation, no sidecar), ztunnel's HBONE port 15008 listens in every pod's
// namespace, api → database:5432/data goes through a waypoint, and the kubelet probes the pods
// from istio-cni's SNAT address. No ztunnel or waypoint runs here: this is the NetworkPolicy
// layer, which must let HBONE through on exactly the ways the graph needs and nothing else.
//
// The pods: web, api, database and stranger (a pod of the namespace no graph service selects) in
// the ambient namespace listen on 8080, 5432 (database's is the named port postgres), 7777 and
// 15008; the waypoint's pod (labelled as Istio labels it) on 15008 and 7777; intruder, in another
// namespace, on 8080 and 15008. kubelet is a host outside the cluster at 169.254.7.127.

const (
	ambientNamespace = "ambient"
	// ambientNotice is how long the operator gets to notice a change of the waypoint by itself:
	// a watched object is reconciled within a second here, and a graph waiting on its waypoint is
	// looked at again only after the manager's recheck interval (a minute).
	ambientNotice = 10 * time.Second
	// ambientKubeletGateway is the node's end of the kubelet host's veth.
	ambientKubeletGateway = "169.254.7.1"
)

type ambientScene struct {
	seed                                     *dataplane.Seed
	web, api, database, intruder             *dataplane.Pod
	stranger, waypoint, kubelet, dns, istiod *dataplane.Pod
	pods                                     []*dataplane.Pod // every pod a probe reaches
}

func ambientTCP(n int32) dataplane.Port {
	return dataplane.Port{Number: n, Protocol: corev1.ProtocolTCP}
}

// ambientPods builds the scene from the seed: the seed's pods with 15008 added, a stranger and the
// waypoint's pod (deploy adds the kubelet's host).
func ambientPods(ns string) *ambientScene {
	seed := dataplane.NewSeed(ns)
	app := func(db bool) []dataplane.Port {
		pg := ambientTCP(5432)
		if db {
			pg.Name = "postgres"
		}
		return []dataplane.Port{ambientTCP(8080), pg, ambientTCP(dataplane.UnusedPort), ambientTCP(semantics.HBONEPort)}
	}
	seed.Web.Ports, seed.API.Ports, seed.Database.Ports = app(false), app(false), app(true)
	seed.Intruder.Ports = []dataplane.Port{ambientTCP(8080), ambientTCP(semantics.HBONEPort)}
	s := &ambientScene{seed: seed, web: seed.Web, api: seed.API, database: seed.Database, intruder: seed.Intruder,
		stranger: &dataplane.Pod{Namespace: ns, Name: "stranger", Labels: map[string]string{"app": "stranger"}, ServiceAccount: "stranger", Ports: app(false)},
		// As Istio's waypoint template labels its pods: out of ambient capture itself, an Envoy
		// container named istio-proxy, the Gateway's ServiceAccount.
		waypoint: &dataplane.Pod{Namespace: ns, Name: "waypoint", ServiceAccount: "waypoint",
			Labels: map[string]string{semantics.LabelGatewayName: "waypoint", "gateway.networking.k8s.io/gateway-class-name": semantics.WaypointClass,
				"gateway.istio.io/managed": "istio.io-mesh-controller", semantics.LabelDataplaneMode: "none"},
			Ports: []dataplane.Port{ambientTCP(semantics.HBONEPort), ambientTCP(dataplane.UnusedPort)}},
		dns: system[0], istiod: system[1],
	}
	s.pods = []*dataplane.Pod{s.web, s.api, s.database, s.stranger, s.waypoint, s.intruder, s.dns, s.istiod}
	return s
}

// shape writes what the cluster would hold: istio-cni's redirection annotation on the
// captured pods, the waypoint's Envoy container, the kubelet's probes on api's and database's app
// ports (by number for api, by name for database), and no container port for 15008 (ztunnel's
// socket in the pod's namespace, not a container's).
func (s *ambientScene) shape(p *dataplane.Pod, pod *corev1.Pod) {
	c := &pod.Spec.Containers[0]
	c.Ports = slices.DeleteFunc(c.Ports, func(cp corev1.ContainerPort) bool { return cp.ContainerPort == semantics.HBONEPort })
	switch p {
	case s.waypoint:
		c.Name, c.Image = "istio-proxy", "istio/proxyv2"
		return
	case s.api:
		c.ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}}}
	case s.database:
		c.LivenessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromString("postgres")}}}
	}
	if p.Namespace == s.seed.Namespace {
		pod.Annotations = map[string]string{semantics.AnnotationAmbientRedirection: "enabled"}
	}
}

// deploy creates the namespace (labelled ambient), the pods, the kubelet's host, the Services and
// the ready waypoint, and removes them when the spec ends.
func (s *ambientScene) deploy() {
	GinkgoHelper()
	ns := s.seed.Namespace
	namespace := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{semantics.LabelDataplaneMode: "ambient"}}}
	Expect(cluster.Client.Create(ctx, namespace)).To(Succeed())
	elsewhere := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: s.intruder.Namespace}}
	Expect(client.IgnoreAlreadyExists(cluster.Client.Create(ctx, elsewhere))).To(Succeed())
	own := []*dataplane.Pod{s.web, s.api, s.database, s.stranger, s.waypoint, s.intruder}
	DeferCleanup(func() { Expect(cluster.RemovePods(ctx, own...)).To(Succeed()) })
	Expect(cluster.AddPodsShaped(ctx, s.shape, own...)).To(Succeed())

	kubelet, err := cluster.AddHostAt("kubelet", semantics.ProbeSNATIPv4, ambientKubeletGateway)
	Expect(err).NotTo(HaveOccurred())
	s.kubelet = kubelet
	DeferCleanup(func() { Expect(cluster.RemoveHost(kubelet)).To(Succeed()) })

	service := func(name string, selector, labels map[string]string, port int32, target intstr.IntOrString) *corev1.Service {
		return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
			Spec: corev1.ServiceSpec{Selector: selector, Ports: []corev1.ServicePort{{Name: "http", Port: port, TargetPort: target, Protocol: corev1.ProtocolTCP}}}}
	}
	waypointService := service("waypoint", map[string]string{semantics.LabelGatewayName: "waypoint"}, nil, semantics.HBONEPort, intstr.FromInt32(semantics.HBONEPort))
	waypointService.Spec.Ports[0].Name = "mesh"
	for _, svc := range []*corev1.Service{
		service("web", s.web.Labels, nil, 8080, intstr.FromInt32(8080)),
		service("api", s.api.Labels, nil, 8080, intstr.FromInt32(8080)),
		// As the golden ambient graph: the waypoint sees the Service's port 80.
		service("database", s.database.Labels, map[string]string{semantics.LabelUseWaypoint: "waypoint"}, 80, intstr.FromInt32(5432)),
		waypointService,
	} {
		Expect(cluster.Client.Create(ctx, svc)).To(Succeed())
		DeferCleanup(func() { Expect(client.IgnoreNotFound(cluster.Client.Delete(ctx, svc))).To(Succeed()) })
	}
	s.createGateway(true)
	DeferCleanup(func() {
		Expect(client.IgnoreNotFound(cluster.Client.Delete(ctx, &gatewayv1.Gateway{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "waypoint"}}))).To(Succeed())
	})
}

// createGateway creates the waypoint's Gateway as Istio documents it and, when ready, writes the
// address Istio's deployment controller reports once the waypoint runs: its Service's.
func (s *ambientScene) createGateway(ready bool) {
	GinkgoHelper()
	gw := &gatewayv1.Gateway{
		ObjectMeta: metav1.ObjectMeta{Namespace: s.seed.Namespace, Name: "waypoint"},
		Spec: gatewayv1.GatewaySpec{GatewayClassName: semantics.WaypointClass,
			Listeners: []gatewayv1.Listener{{Name: "mesh", Port: semantics.HBONEPort, Protocol: "HBONE"}}},
	}
	Expect(cluster.Client.Create(ctx, gw)).To(Succeed())
	if ready {
		s.setGatewayAddress(true)
	}
}

// setGatewayAddress writes or removes the Gateway's status address (the status subresource).
func (s *ambientScene) setGatewayAddress(ready bool) {
	GinkgoHelper()
	var svc corev1.Service
	Expect(cluster.Client.Get(ctx, client.ObjectKey{Namespace: s.seed.Namespace, Name: "waypoint"}, &svc)).To(Succeed())
	var gw gatewayv1.Gateway
	Expect(cluster.Client.Get(ctx, client.ObjectKey{Namespace: s.seed.Namespace, Name: "waypoint"}, &gw)).To(Succeed())
	gw.Status.Addresses = nil
	if ready {
		gw.Status.Addresses = []gatewayv1.GatewayStatusAddress{{Type: new(gatewayv1.IPAddressType), Value: svc.Spec.ClusterIP}}
	}
	Expect(cluster.Client.Status().Update(ctx, &gw)).To(Succeed())
}

// probes are every probe of the scene, wanting what allows says: from every pod and the kubelet's
// host to every port of every other pod.
func (s *ambientScene) probes(allows func(from, to *dataplane.Pod, port dataplane.Port) bool) []dataplane.Probe {
	var probes []dataplane.Probe
	for _, from := range append(slices.Clone(s.pods), s.kubelet) {
		for _, to := range s.pods {
			if from == to {
				continue
			}
			for _, port := range to.Ports {
				probes = append(probes, dataplane.Probe{From: from, To: to, Port: port, Want: allows(from, to, port)})
			}
		}
	}
	return probes
}

// allows is the scene's table: what the NetworkPolicies of an ambient graph must allow, written
// out rather than derived from the compiler. waypointExists says whether the waypoint's Gateway
// exists (the operator keeps the way through it while it exists, ready or not).
func (s *ambientScene) allows(waypointExists bool) func(from, to *dataplane.Pod, port dataplane.Port) bool {
	open := map[string]bool{
		"web->api:8080/TCP": true, "web->api:15008/TCP": true, // the edge, and HBONE next to it
		"kubelet->api:8080/TCP": true, "kubelet->database:5432/TCP": true, // the probed ports
	}
	if waypointExists {
		open["api->waypoint:15008/TCP"] = true      // the path edge's caller to the waypoint
		open["waypoint->database:15008/TCP"] = true // and the waypoint on to the destination
	}
	governed := func(p *dataplane.Pod) bool { return p.Namespace == s.seed.Namespace }
	return func(from, to *dataplane.Pod, port dataplane.Port) bool {
		switch {
		case !governed(from) && !governed(to):
			return true // no policy of the graph applies
		case governed(from) && (to == s.dns || to == s.istiod):
			return true // allow-dns and allow-istiod: every pod of the namespace
		}
		return open[ambientName(from, to, port)]
	}
}

func ambientName(from, to *dataplane.Pod, port dataplane.Port) string {
	return fmt.Sprintf("%s->%s:%d/%s", from.Name, to.Name, port.Number, port.Protocol)
}

// named are the cases, spelled out so a change to the table cannot hide them.
func ambientNamed(waypointExists bool) map[string]bool {
	named := map[string]bool{
		// web -> api:8080: the edge's port and HBONE.
		"web->api:8080/TCP": true, "web->api:15008/TCP": true, "web->api:5432/TCP": false, "web->api:7777/TCP": false,
		// api -> database:5432/data goes through the waypoint only: never directly, HBONE included.
		"api->database:5432/TCP": false, "api->database:15008/TCP": false, "api->database:8080/TCP": false,
		"api->waypoint:15008/TCP": waypointExists, "api->waypoint:7777/TCP": false,
		"waypoint->database:15008/TCP": waypointExists, "waypoint->database:5432/TCP": false,
		"waypoint->database:8080/TCP": false, "waypoint->database:7777/TCP": false,
		// Nobody else reaches the waypoint, and the waypoint reaches nothing else.
		"web->waypoint:15008/TCP": false, "database->waypoint:15008/TCP": false, "stranger->waypoint:15008/TCP": false,
		"waypoint->api:15008/TCP": false, "waypoint->web:15008/TCP": false, "waypoint->api:8080/TCP": false,
		// web has no edge to database.
		"web->database:5432/TCP": false, "web->database:15008/TCP": false,
		// Reverse directions.
		"api->web:8080/TCP": false, "api->web:15008/TCP": false, "database->api:8080/TCP": false,
		"database->api:15008/TCP": false, "database->web:15008/TCP": false,
		// Strangers: another namespace's pod, and a pod of the namespace the graph does not name.
		"intruder->web:8080/TCP": false, "intruder->web:15008/TCP": false, "intruder->api:8080/TCP": false,
		"intruder->api:15008/TCP": false, "intruder->database:5432/TCP": false, "intruder->database:15008/TCP": false,
		"intruder->waypoint:15008/TCP": false,
		"stranger->web:15008/TCP":      false, "stranger->api:8080/TCP": false, "stranger->api:15008/TCP": false,
		"stranger->database:5432/TCP": false, "stranger->database:15008/TCP": false,
		"web->stranger:15008/TCP": false, "api->stranger:15008/TCP": false, "web->intruder:15008/TCP": false,
		"api->intruder:15008/TCP": false, "waypoint->intruder:15008/TCP": false,
		// The kubelet's probes, from istio-cni's address: the probed ports and nothing else.
		"kubelet->api:8080/TCP": true, "kubelet->database:5432/TCP": true,
		"kubelet->api:15008/TCP": false, "kubelet->api:5432/TCP": false, "kubelet->api:7777/TCP": false,
		"kubelet->database:15008/TCP": false, "kubelet->database:8080/TCP": false, "kubelet->database:7777/TCP": false,
		"kubelet->web:8080/TCP": false, "kubelet->web:15008/TCP": false, "kubelet->waypoint:15008/TCP": false,
		"kubelet->stranger:8080/TCP": false,
		// DNS from every pod of the namespace, the waypoint's included.
		"web->kube-dns:53/UDP": true, "api->kube-dns:53/TCP": true, "database->kube-dns:53/UDP": true,
		"waypoint->kube-dns:53/UDP": true, "waypoint->istiod:15012/TCP": true,
	}
	return named
}

// expectNamed fails on any named case whose probe is missing or has another verdict.
func expectNamed(results []dataplane.Result, named map[string]bool) {
	GinkgoHelper()
	got := map[string]bool{}
	for _, r := range results {
		got[ambientName(r.From, r.To, r.Port)] = r.Connected
	}
	var wrong []string
	for _, probe := range slices.Sorted(maps.Keys(named)) {
		if v, ok := got[probe]; !ok || v != named[probe] {
			wrong = append(wrong, fmt.Sprintf("%s: probed %v, got %v, want %v", probe, ok, v, named[probe]))
		}
	}
	Expect(wrong).To(BeEmpty())
}

// expectAnalyzerAgrees runs netpol-analyzer over the live objects and fails on any probe where it
// and the packets disagree: pod to pod by the pods' connections, from the kubelet's host by the
// IP ranges the analyzer lists as sources.
func (s *ambientScene) expectAnalyzerAgrees(results []dataplane.Result) {
	GinkgoHelper()
	analyzed := analyzeLive(&world.World{Namespaces: []string{s.seed.Namespace, s.intruder.Namespace}})
	var disagree []string
	for _, r := range results {
		got := false
		if r.From.Outside {
			got = analyzerAllowsFromIP(analyzed, netip.MustParseAddr(r.From.Slot.IP), r.Probe)
		} else {
			got = analyzerAllows(analyzed, r.Probe)
		}
		if got != r.Connected {
			disagree = append(disagree, fmt.Sprintf("%s: dataplane %v, netpol-analyzer %v", r.Probe, r.Connected, got))
		}
	}
	fmt.Fprintf(GinkgoWriter, "netpol-analyzer agrees with the dataplane on %d of %d probes\n", len(results)-len(disagree), len(results))
	Expect(disagree).To(BeEmpty())
}

// analyzerAllowsFromIP reads a probe from an address outside the cluster: a connection whose
// source is an IP range (or block) holding the address, to the probe's pod, on its port (exact,
// in a range, or all).
func analyzerAllowsFromIP(conns world.Connections, addr netip.Addr, p dataplane.Probe) bool {
	for c := range conns {
		src, rest, ok := strings.Cut(c, " -> ")
		if !ok || !strings.HasPrefix(src, "ip:") || !ipPeerHolds(strings.TrimPrefix(src, "ip:"), addr) {
			continue
		}
		dst, ports, _ := strings.Cut(rest, " ")
		if dst != p.To.Key() {
			continue
		}
		if ports == "ALL" || ports == fmt.Sprintf("%s/%d", p.Port.Protocol, p.Port.Number) {
			return true
		}
		var lo, hi int32
		if n, _ := fmt.Sscanf(ports, string(p.Port.Protocol)+"/%d-%d", &lo, &hi); n == 2 && lo <= p.Port.Number && p.Port.Number <= hi {
			return true
		}
	}
	return false
}

// ipPeerHolds tells whether the analyzer's IP peer (FROM-TO, a CIDR or an address) holds addr.
func ipPeerHolds(peer string, addr netip.Addr) bool {
	if prefix, err := netip.ParsePrefix(peer); err == nil {
		return prefix.Contains(addr)
	}
	if from, to, ok := strings.Cut(peer, "-"); ok {
		lo, err1 := netip.ParseAddr(from)
		hi, err2 := netip.ParseAddr(to)
		return err1 == nil && err2 == nil && lo.BitLen() == addr.BitLen() && lo.Compare(addr) <= 0 && addr.Compare(hi) <= 0
	}
	a, err := netip.ParseAddr(peer)
	return err == nil && a == addr
}

// verdicts runs the scene's probes against a table, checks the named cases, netpol-analyzer and
// `servicegraph check` (see expectCheckAgrees), and logs the matrix.
func (s *ambientScene) verdicts(phase string, waypointExists, waypointReady bool) []dataplane.Result {
	GinkgoHelper()
	start := time.Now()
	results := expectVerdicts(s.probes(s.allows(waypointExists)))
	took := time.Since(start)
	expectNamed(results, ambientNamed(waypointExists))
	s.expectAnalyzerAgrees(results)
	s.expectCheckAgrees(results, waypointReady)
	matrix, err := cluster.Matrix(ctx, results)
	Expect(err).NotTo(HaveOccurred())
	connected, refused := dataplane.Count(results)
	fmt.Fprintf(GinkgoWriter, "%s: %d probes in %s, %d connected, %d refused:\n%s", phase, len(results), took.Round(time.Millisecond), connected, refused, matrix)
	return results
}

// expectCheckAgrees holds `servicegraph check`'s evaluator, on what the cluster holds, to the
// packets. The evaluator judges a connection as Istio carries it: between meshed pods with an
// ambient end, as HBONE to port 15008 of the destination pod (the application's port is then
// ztunnel's to check, above the NetworkPolicies); from a meshed caller to database while its
// waypoint is ready, as two HBONE hops, to the waypoint's pod and from it to database. So its
// NetworkPolicy verdict on a probe is compared with the probes of the legs it says the packets
// take, which the matrix holds: web -> api:5432 with web -> api:15008, api -> database:5432 with
// api -> waypoint:15008 and waypoint -> database:15008. The meshed and ambient pods are listed
// here, not derived: the harness marks kube-dns and istiod as injected (so the legs from an ambient
// pod to them are HBONE to a port they do not listen on, and are left out), the waypoint's pod
// runs istio-proxy outside ambient capture, the intruder is outside the mesh.
func (s *ambientScene) expectCheckAgrees(results []dataplane.Result, waypointReady bool) {
	GinkgoHelper()
	meshed := []*dataplane.Pod{s.web, s.api, s.database, s.stranger, s.waypoint, s.dns, s.istiod}
	ambient := []*dataplane.Pod{s.web, s.api, s.database, s.stranger}
	connected := map[string]bool{}
	for _, r := range results {
		connected[ambientName(r.From, r.To, r.Port)] = r.Connected
	}
	hbone := ambientTCP(semantics.HBONEPort)
	w, err := cli.ReadWorld(ctx, cluster.Client, []string{s.seed.Namespace, s.intruder.Namespace, s.dns.Namespace, s.istiod.Namespace})
	Expect(err).NotTo(HaveOccurred())
	var disagree []string
	compared := 0
	for _, r := range results {
		if r.From.Outside {
			continue // the evaluator knows pods only
		}
		legs := []string{ambientName(r.From, r.To, r.Port)}
		switch {
		case r.Port.Protocol != corev1.ProtocolTCP || !slices.Contains(meshed, r.From) || !slices.Contains(meshed, r.To) ||
			!slices.Contains(ambient, r.From) && !slices.Contains(ambient, r.To):
		case r.To == s.database && waypointReady && r.From != s.waypoint:
			legs = []string{ambientName(r.From, s.waypoint, hbone), ambientName(s.waypoint, s.database, hbone)}
		default:
			legs = []string{ambientName(r.From, r.To, hbone)}
		}
		want := true
		probed := true
		for _, leg := range legs {
			c, ok := connected[leg]
			want, probed = want && c, probed && ok
		}
		if !probed {
			continue
		}
		compared++
		v, err := w.Check(r.From.Key(), r.To.Key(), r.Port.Number, r.Port.Protocol)
		Expect(err).NotTo(HaveOccurred(), r.Probe.String())
		if l4 := v.Steps[0].Allowed && v.Steps[1].Allowed; l4 != want {
			disagree = append(disagree, fmt.Sprintf("%s: check %v (%s; %s), packets of %s: %v", r.Probe, l4, v.Steps[0].By, v.Steps[1].By, strings.Join(legs, " and "), want))
		}
	}
	fmt.Fprintf(GinkgoWriter, "servicegraph check agrees with the packets on %d of %d probes (%d left out: from the kubelet's host, or carried as HBONE to a port without a listener)\n",
		compared-len(disagree), compared, len(results)-compared)
	Expect(compared).To(BeNumerically(">", len(results)/2))
	Expect(disagree).To(BeEmpty())
}

// waypointStatus is the graph's WaypointReady and Ready conditions.
func (s *ambientScene) waypointStatus() (waypoint, ready metav1.Condition) {
	GinkgoHelper()
	var sg v1alpha1.ServiceGraph
	Expect(cluster.Client.Get(ctx, client.ObjectKey{Namespace: s.seed.Namespace, Name: "shop"}, &sg)).To(Succeed())
	return testenv.Condition(&sg, v1alpha1.ConditionWaypointReady), testenv.Condition(&sg, v1alpha1.ConditionReady)
}

// ambientWant is the status a change of the waypoint must lead to, and the probe that shows it on
// packets.
type ambientWant struct {
	waypoint metav1.ConditionStatus
	message  string // in WaypointReady's message
	ready    metav1.ConditionStatus
	reason   string // Ready's
	probe    dataplane.Probe
}

func (w ambientWant) met(waypoint, ready metav1.Condition) bool {
	return waypoint.Status == w.waypoint && strings.Contains(waypoint.Message, w.message) && ready.Status == w.ready && ready.Reason == w.reason
}

// change makes a change of the waypoint, waits for the graph's status to say what it must and for
// the probe to give its verdict, and says how long each took. The operator gets ambientNotice to
// notice by itself; past it, the miss is returned as a finding (the spec fails on it once
// everything else is checked) and the operator is nudged with an annotation on a Service it
// watches, so the rest of the spec still checks what it then writes; the times are then counted
// from the nudge. The probe's time includes its own wait for an answer (250 ms for a refusal).
func (s *ambientScene) change(what string, do func(), want ambientWant, nudges *int) (timing, finding string) {
	GinkgoHelper()
	start := time.Now()
	do()
	var waypoint, ready metav1.Condition
	met := func() bool { waypoint, ready = s.waypointStatus(); return want.met(waypoint, ready) }
	for !met() && time.Since(start) < ambientNotice {
		time.Sleep(50 * time.Millisecond)
	}
	from := "the change"
	if !want.met(waypoint, ready) {
		finding = fmt.Sprintf("%s: the operator did not notice within %s; WaypointReady was still %s (%s: %s), Ready %s (%s), and %s was %s",
			what, ambientNotice, waypoint.Status, waypoint.Reason, waypoint.Message, ready.Status, ready.Reason, want.probe,
			map[bool]string{true: "connected", false: "refused"}[dataplane.Run([]dataplane.Probe{want.probe})[0].Connected])
		*nudges++
		start, from = time.Now(), "a nudge (the operator did not notice the change within "+ambientNotice.String()+")"
		kubectl("annotate", "service/database", "-n", s.seed.Namespace, "--overwrite", fmt.Sprintf("dataplane.servicegraph.io/nudge=%d", *nudges))
		Eventually(met, 30*time.Second, 50*time.Millisecond).Should(BeTrue(), "%s, after a nudge: WaypointReady %v, Ready %v", what, waypoint, ready)
	}
	status := time.Since(start)
	Eventually(func() bool {
		return dataplane.Dial(want.probe.From.Slot, want.probe.To.Slot.IP, want.probe.Port, 250*time.Millisecond) == want.probe.Want
	}, 10*time.Second, 10*time.Millisecond).Should(BeTrue(), "%s: %s", what, want.probe)
	packets := time.Since(start)
	timing = fmt.Sprintf("from %s: WaypointReady %s and Ready %s (%s) after %s, %s %s after %s", from, waypoint.Status, ready.Status, ready.Reason,
		status.Round(time.Millisecond), want.probe, map[bool]string{true: "connected", false: "refused"}[want.probe.Want], packets.Round(time.Millisecond))
	fmt.Fprintf(GinkgoWriter, "%s: WaypointReady %s (%s: %s); %s\n", what, waypoint.Status, waypoint.Reason, waypoint.Message, timing)
	return timing, finding
}

var _ = Describe("Istio's ambient mode on real packets", func() {
	It("opens HBONE beside each edge, sends the path edge through the waypoint only, admits the kubelet's probes, and closes the way when the waypoint goes", func() {
		s := ambientPods(ambientNamespace)
		s.deploy()
		before := expectVerdicts(s.probes(func(_, _ *dataplane.Pod, _ dataplane.Port) bool { return true }))
		fmt.Fprintf(GinkgoWriter, "before the graph: %d probes, all connected\n", len(before))

		file := filepath.Join(GinkgoT().TempDir(), "shop.yaml")
		Expect(os.WriteFile(file, []byte(s.seed.Graph()), 0o600)).To(Succeed())
		applied := time.Now()
		kubectl("apply", "-f", file)
		kubectl("wait", "--for=condition=Ready", "servicegraph/shop", "-n", s.seed.Namespace, "--timeout=60s")
		DeferCleanup(func() {
			Expect(client.IgnoreNotFound(cluster.Client.Delete(ctx, &v1alpha1.ServiceGraph{ObjectMeta: metav1.ObjectMeta{Namespace: s.seed.Namespace, Name: "shop"}}))).To(Succeed())
		})
		waypoint, ready := s.waypointStatus()
		Expect(waypoint.Status).To(Equal(metav1.ConditionTrue), "%v", waypoint)
		Expect(waypoint.Reason).To(Equal(v1alpha1.ReasonWaypointReady))
		fmt.Fprintf(GinkgoWriter, "Ready (%s) %s after kubectl apply; WaypointReady: %s\n", ready.Reason, time.Since(applied).Round(time.Millisecond), waypoint.Message)

		// The probe rule also admits istio-cni's IPv6 address; the harness routes IPv4 only, so
		// that half is read from the object.
		var api networkingv1.NetworkPolicy
		Expect(cluster.Client.Get(ctx, client.ObjectKey{Namespace: s.seed.Namespace, Name: "shop-svc-api"}, &api)).To(Succeed())
		Expect(api.Spec.Ingress).To(ContainElement(HaveField("From", ConsistOf(
			HaveField("IPBlock.CIDR", semantics.ProbeSNATIPv4CIDR), HaveField("IPBlock.CIDR", semantics.ProbeSNATIPv6CIDR)))))

		By("the waypoint ready: the graph's ways, HBONE beside each, the path edge through the waypoint")
		s.verdicts("waypoint ready", true, true)

		waypointToDatabase := dataplane.Probe{From: s.waypoint, To: s.database, Port: ambientTCP(semantics.HBONEPort)}
		var findings, timings []string
		nudges := 0
		type step struct {
			what   string
			do     func()
			want   ambientWant
			exists bool
			ready  bool
		}
		for _, st := range []step{
			// A Gateway without an address exists but is not ready: the operator keeps the
			// NetworkPolicies of the way through it (ambient.go: `through` is "exists", `open`
			// "ready"), since Istio sends nothing through a waypoint that is not ready and
			// database's ztunnel policy admits only the waypoint: the edge is closed at the
			// Istio layer, and Ready says so.
			{"the waypoint's address removed", func() { s.setGatewayAddress(false) },
				ambientWant{metav1.ConditionFalse, "is not ready", metav1.ConditionFalse, v1alpha1.ReasonWaypointMissing, ambientWith(waypointToDatabase, true)}, true, false},
			// No Gateway: the way through the waypoint closes, and api is not let through
			// directly instead.
			{"the waypoint's Gateway deleted", func() {
				Expect(cluster.Client.Delete(ctx, &gatewayv1.Gateway{ObjectMeta: metav1.ObjectMeta{Namespace: s.seed.Namespace, Name: "waypoint"}})).To(Succeed())
			}, ambientWant{metav1.ConditionFalse, "does not exist", metav1.ConditionFalse, v1alpha1.ReasonWaypointMissing, ambientWith(waypointToDatabase, false)}, false, false},
			{"the waypoint's Gateway created again, ready", func() { s.createGateway(true) },
				ambientWant{metav1.ConditionTrue, "go through waypoint waypoint", metav1.ConditionTrue, v1alpha1.ReasonReconciled, ambientWith(waypointToDatabase, true)}, true, true},
		} {
			By(st.what)
			timing, finding := s.change(st.what, st.do, st.want, &nudges)
			if finding != "" {
				findings = append(findings, finding)
			}
			s.verdicts(st.what, st.exists, st.ready)
			timings = append(timings, st.what+": "+timing)
		}
		fmt.Fprintf(GinkgoWriter, "timings:\n  %s\n", strings.Join(timings, "\n  "))
		Expect(findings).To(BeEmpty(), "the operator must notice a change of the waypoint by itself")
	})
})

func ambientWith(p dataplane.Probe, want bool) dataplane.Probe {
	p.Want = want
	return p
}
