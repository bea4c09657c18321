package semantics_test

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/servicegraph/servicegraph-operator/internal/eval"
)

// These tests hold eval's NetworkPolicy layer to np-guard's netpol-analyzer, an implementation of
// Kubernetes NetworkPolicy semantics this project did not write. For each world (see newWorld) and
// every (source, destination, protocol, port) among its pods and addresses — TCP, UDP and SCTP on
// every probed port, and each destination's named ports by name — eval's verdict (no workload is
// meshed, so it is the source's egress AND the destination's ingress) must be whether connlist
// lists the connection as allowed (an address stands for the range of connlist's that holds it).
//
// Left out, because netpol-analyzer does not decide them as Kubernetes does (each is counted and
// logged; a difference eval's verdict shows for any other reason fails the test):
//
//   - A pod to itself, and an address to an address: connlist lists neither
//     (pkg/netpol/connlist/connlist.go, includePairOfWorkloads), and no policy governs the latter.
//   - An ipBlock holding a pod's IP: netpol-analyzer never matches a pod with an ipBlock
//     (pkg/netpol/eval/internal/k8s/netpol.go, ruleSelectsPeer: "assuming that peer of type Pod
//     cannot be selected by IPBlock"). Kubernetes matches addresses, a pod's among them (the
//     documentation only advises cluster-external ranges, "since Pod IPs are ephemeral and
//     unpredictable"; sigs.k8s.io/kube-network-policies matches a pod's IP like any other), as eval
//     does. A difference is left out when eval, asked again with the pods' IPs withheld, agrees.
//   - A named port whose container port has another protocol: netpol-analyzer resolves the name
//     whatever the protocol (pkg/netpol/eval/internal/k8s/pod.go, ConvertPodNamedPort compares the
//     name only), so {protocol: UDP, port: http} admits UDP to the number of a TCP port named http.
//     A named port is a container port, which has a protocol; kube-network-policies requires name,
//     number and protocol to match, as eval does. Left out when eval agrees once every named
//     container port of the destination is declared on every protocol.
//   - A named port in an egress rule that selects an address: netpol-analyzer refuses to evaluate
//     it (namedPortTowardAddress) and so lists nothing for the whole world; such a world's pairs
//     are computed one by one as connlist does (see analyzePairs), and the pairs it refuses are
//     left out. (Not with the policy engine's CheckIfAllowed: its ruleConnsContain returns "denied"
//     at the first named port the destination does not declare, without trying the rule's other
//     ports, so `ports: [{port: grpc}, {}]` denies TCP to a pod without grpc that connlist allows.)
//   - IPv6 ranges: netpol-analyzer reads CIDRs as IPv4 only (github.com/np-guard/models
//     pkg/ipblock, cidrToInterval takes the first 4 bytes of address and mask: "::/0" becomes every
//     IPv4 address), so a corpus policy naming one is skipped, and random ones name none.

// randomSets is how many random policy sets are checked, drawn from a fixed seed.
const randomSets = 300

func TestNetworkPolicy(t *testing.T) {
	t.Run("corpus", testCorpus)
	t.Run("random", testRandom)
	t.Run("empty-peer-refused-by-the-API-server", testEmptyPeer)
}

// testCorpus checks every NetworkPolicy of the public corpus, each in its own world.
func testCorpus(t *testing.T) {
	policies, counts := readCorpus(t)
	tl := newTally()
	refusedCount, ipv6 := 0, 0
	var worlds []*world
	for _, cp := range policies {
		np := cp.np.DeepCopy()
		if np.Namespace == "" {
			np.Namespace = "default"
		}
		if errs := refused(np); len(errs) > 0 {
			refusedCount++
			t.Logf("skipped, the API server refuses it: %s %s: %v", cp.source, np.Name, errs.ToAggregate())
			continue
		}
		if hasIPv6(np) {
			ipv6++
			continue
		}
		worlds = append(worlds, newWorld(cp.source+" "+np.Name, []*networkingv1.NetworkPolicy{np}, nil, nil))
	}
	tl.checkAll(t, worlds)
	unparsable := 0
	for _, n := range counts.unparsable {
		unparsable += n
	}
	t.Logf("corpus: %d files, %d documents; %d NetworkPolicies read, %d checked in %d worlds; skipped: %d documents that are not YAML (templates: %v), %d of other kinds, %d NetworkPolicies that do not decode strictly, %d the API server refuses, %d naming IPv6 ranges",
		counts.files, counts.documents, len(policies), tl.policies, tl.worlds, unparsable, slices.Sorted(maps.Keys(counts.unparsable)), counts.otherKinds, len(counts.notStrict), refusedCount, ipv6)
	for _, source := range slices.Sorted(maps.Keys(counts.notStrict)) {
		t.Logf("not strict: %s: %s", source, counts.notStrict[source])
	}
	tl.log(t)
	if tl.policies < 100 {
		t.Errorf("only %d corpus NetworkPolicies checked: has the corpus moved?", tl.policies)
	}
}

// testRandom checks random policy sets drawn from a fixed seed.
func testRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(2026, 7))
	tl := newTally()
	var worlds []*world
	for i := range randomSets {
		w := randomWorld(rng, i)
		for _, np := range w.policies {
			if errs := refused(np); len(errs) > 0 {
				t.Fatalf("%s: the generator drew a policy the API server refuses: %v\n%s", w.name, errs.ToAggregate(), policiesYAML([]*networkingv1.NetworkPolicy{np}))
			}
		}
		worlds = append(worlds, w)
	}
	tl.checkAll(t, worlds)
	tl.log(t)
}

// testEmptyPeer reports what each side does with an empty peer ({}), which the API server refuses
// ("must specify a peer"), so no cluster holds one, and netpol-analyzer refuses to evaluate; and
// holds eval to treating it as refused: a rule is not to admit a connection through an empty peer.
func testEmptyPeer(t *testing.T) {
	np := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "empty-peer", Namespace: "shop"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
			Ingress:     []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{}}, Ports: []networkingv1.NetworkPolicyPort{{Port: ptr(intstr.FromInt32(5432))}}}},
			Egress:      []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{{}}}},
		},
	}
	t.Logf("policy:\n%s", policiesYAML([]*networkingv1.NetworkPolicy{np}))
	t.Logf("the API server (k8s.io/kubernetes pkg/apis/networking/validation, ValidateNetworkPolicyPeer) refuses it: %v", refused(np).ToAggregate())

	w := newWorld("empty-peer", []*networkingv1.NetworkPolicy{np}, map[string]map[string]string{"other": {}}, []map[string]string{{"app": "web"}})
	if _, err := analyze(w); err != nil {
		t.Logf("netpol-analyzer refuses it: %v", err)
	} else {
		t.Errorf("netpol-analyzer accepts an empty peer, which v1.2.0 refuses (netpolerrors.EmptyRulePeerErrStr): report what it does with it now")
	}

	c := evalCluster(w)
	db := w.pod("shop", map[string]string{"app": "db"})
	var admitted []string
	for _, e := range w.endpoints() {
		if e.pod == db {
			continue
		}
		for _, dir := range []string{"ingress", "egress"} {
			src, dst := e, endpoint{pod: db}
			if dir == "egress" {
				src, dst = dst, e
			}
			v := c.Check(request(src, dst, corev1.ProtocolTCP, 5432, ""))
			step := v.Steps[1]
			if dir == "egress" {
				step = v.Steps[0]
			}
			line := fmt.Sprintf("%s %s -> %s TCP/5432: %s", dir, src, dst, describeStep(step))
			t.Logf("eval: %s", line)
			if strings.Contains(step.By, "spec."+dir+"[0]") {
				admitted = append(admitted, line)
			}
		}
	}
	if len(admitted) > 0 {
		t.Errorf("eval admits connections through an empty peer, which the API server refuses and netpol-analyzer will not evaluate:\n%s", strings.Join(admitted, "\n"))
	}
}

func ptr[T any](v T) *T { return &v }

// pod finds the world's pod of a namespace with exactly these labels.
func (w *world) pod(ns string, l map[string]string) *eval.Workload {
	for _, p := range w.pods {
		if p.Namespace == ns && maps.Equal(p.Labels, l) {
			return p
		}
	}
	panic(fmt.Sprintf("no pod %s %v", ns, l))
}

// tally counts what a test compared and what it left out.
type tally struct {
	mu                            sync.Mutex
	worlds, policies, connections int
	// excluded counts the differences left out, by class; examples keeps the first of each.
	excluded map[string]int
	examples map[string]string
}

func newTally() *tally {
	return &tally{excluded: map[string]int{}, examples: map[string]string{}}
}

// Classes of differences left out (see the comment at the top).
const (
	classPodIP       = "ipBlock holding a pod's IP"
	classNamedPort   = "named port on another protocol"
	classBoth        = "ipBlock holding a pod's IP and named port on another protocol"
	classUndecidable = "named port toward an address (netpol-analyzer refuses it)"
)

// checkAll checks the worlds, one parallel sub-test each (eval and netpol-analyzer are pure, and
// every world has its own objects), and returns when all are done.
func (tl *tally) checkAll(t *testing.T, worlds []*world) {
	t.Run("worlds", func(t *testing.T) {
		for _, w := range worlds {
			t.Run(strings.ReplaceAll(w.name, "/", ":"), func(t *testing.T) {
				t.Parallel()
				tl.check(t, w)
			})
		}
	})
}

func (tl *tally) log(t *testing.T) {
	t.Logf("%d policies in %d worlds, %d connections compared", tl.policies, tl.worlds, tl.connections)
	for _, class := range slices.Sorted(maps.Keys(tl.excluded)) {
		t.Logf("left out, %s: %d connections, e.g. %s", class, tl.excluded[class], tl.examples[class])
	}
}

// evalCluster is the world as eval takes it: namespaces without kubernetes.io/metadata.name, which
// eval adds (as the API server does on every namespace; netpol-analyzer is given it).
func evalCluster(w *world) *eval.Cluster {
	c := &eval.Cluster{Namespaces: map[string]map[string]string{}, NetworkPolicies: w.policies}
	for ns, l := range w.namespaces {
		c.Namespaces[ns] = maps.Clone(l)
		delete(c.Namespaces[ns], nsNameLabel)
	}
	return c
}

// request is eval's question for a connection: by port number, or by the destination's port name.
func request(src, dst endpoint, proto corev1.Protocol, port int32, name string) eval.Request {
	r := eval.Request{From: eval.Endpoint{IP: src.addr.String()}, Protocol: proto}
	if src.pod != nil {
		r.From = eval.Endpoint{Workload: src.pod, IP: src.pod.IP}
	}
	r.To = dst.pod
	if dst.pod == nil {
		r.To = &eval.Workload{IP: dst.addr.String()}
	}
	if name != "" {
		r.PortName = name
	} else {
		r.Port = port
	}
	return r
}

func describeStep(s eval.Step) string {
	verdict := "denied"
	if s.Allowed {
		verdict = "allowed"
	}
	out := fmt.Sprintf("%s by %s", verdict, s.By)
	if s.Detail != "" {
		out += " (" + s.Detail + ")"
	}
	return out
}

func describe(v eval.Verdict) string {
	verdict := "denies"
	if v.Allowed {
		verdict = "allows"
	}
	return fmt.Sprintf("%s it (egress: %s; ingress: %s)", verdict, describeStep(v.Steps[0]), describeStep(v.Steps[1]))
}

// check compares eval with netpol-analyzer on every connection of the world.
func (tl *tally) check(t *testing.T, w *world) {
	a, err := analyze(w)
	if err != nil {
		t.Errorf("netpol-analyzer: %v\n--- policies\n%s", err, policiesYAML(w.policies))
		return
	}
	local := newTally()
	defer tl.add(local, len(w.policies))
	c := evalCluster(w)

	// The counterfactual pods: without IPs (netpol-analyzer's pods, which no ipBlock holds), and
	// with every named container port declared on every protocol (netpol-analyzer's reading of a
	// named port).
	noIP, blind := map[*eval.Workload]*eval.Workload{}, map[*eval.Workload]*eval.Workload{}
	for _, p := range w.pods {
		x := *p
		x.IP = ""
		noIP[p] = &x
		y := *p
		for _, cp := range p.Ports {
			for _, proto := range protocols {
				if cp.Name != "" && proto != cp.Protocol {
					y.Ports = append(slices.Clone(y.Ports), corev1.ContainerPort{Name: cp.Name, ContainerPort: cp.ContainerPort, Protocol: proto})
				}
			}
		}
		blind[p] = &y
	}
	swap := func(e endpoint, m map[*eval.Workload]*eval.Workload) endpoint {
		if e.pod != nil {
			e.pod = m[e.pod]
		}
		return e
	}

	var problems []string
	compared := 0
	probe := func(src, dst endpoint, pair pairView, proto corev1.Protocol, port int32, name string) {
		conn := func() string {
			c := fmt.Sprintf("%s -> %s %s/%d", src, dst, proto, port)
			if name != "" {
				c += " (asked by its name " + name + ")"
			}
			return c
		}
		if pair.refused != "" {
			local.exclude(classUndecidable, func() string { return conn() + ": " + pair.refused })
			return
		}
		compared++
		want := pair.allows(proto, port)
		v := c.Check(request(src, dst, proto, port, name))
		if v.Allowed == want {
			return
		}
		noIPs := c.Check(request(swap(src, noIP), swap(dst, noIP), proto, port, name)).Allowed
		protocolBlind := c.Check(request(src, swap(dst, blind), proto, port, name)).Allowed
		dstBoth := swap(dst, blind)
		if dstBoth.pod != nil {
			x := *dstBoth.pod
			x.IP = ""
			dstBoth.pod = &x
		}
		both := c.Check(request(swap(src, noIP), dstBoth, proto, port, name)).Allowed
		example := func() string { return fmt.Sprintf("%s: eval %s; netpol-analyzer: %s", conn(), describe(v), pair) }
		switch want {
		case noIPs:
			local.exclude(classPodIP, example)
		case protocolBlind:
			local.exclude(classNamedPort, example)
		case both:
			local.exclude(classBoth, example)
		default:
			verdict := "denies"
			if want {
				verdict = "allows"
			}
			problems = append(problems, fmt.Sprintf("%s: eval %s; netpol-analyzer %s it (%s)", conn(), describe(v), verdict, pair))
		}
	}
	eps := w.endpoints()
	for _, src := range eps {
		for _, dst := range eps {
			if src.pod == nil && dst.pod == nil || src.pod != nil && src.pod == dst.pod {
				continue
			}
			pair := a.lookup(src, dst)
			for _, proto := range protocols {
				for _, port := range w.ports {
					probe(src, dst, pair, proto, port, "")
				}
			}
			if dst.pod != nil {
				for _, cp := range dst.pod.Ports {
					if cp.Name != "" {
						probe(src, dst, pair, cp.Protocol, cp.ContainerPort, cp.Name)
					}
				}
			}
		}
	}
	local.connections = compared
	if len(problems) > 0 {
		shown := problems
		if len(shown) > 40 {
			shown = append(slices.Clone(shown[:40]), fmt.Sprintf("... and %d more", len(problems)-40))
		}
		t.Errorf("eval and netpol-analyzer disagree on %d of %d connections\n--- policies\n%s--- world\n%s--- connections\n%s",
			len(problems), compared, policiesYAML(w.policies), w.describe(), strings.Join(shown, "\n"))
	}
}

// add counts a checked world in.
func (tl *tally) add(world *tally, policies int) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.worlds++
	tl.policies += policies
	tl.connections += world.connections
	for class, n := range world.excluded {
		tl.excluded[class] += n
		if _, ok := tl.examples[class]; !ok {
			tl.examples[class] = world.examples[class]
		}
	}
}

func (tl *tally) exclude(class string, example func() string) {
	tl.excluded[class]++
	if _, ok := tl.examples[class]; !ok {
		tl.examples[class] = example()
	}
}
