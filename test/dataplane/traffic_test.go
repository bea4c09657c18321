package dataplane_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/servicegraph/servicegraph-operator/test/dataplane"
	"github.com/servicegraph/servicegraph-operator/test/promtest"
	"github.com/servicegraph/servicegraph-operator/test/traffic"
	"github.com/servicegraph/servicegraph-operator/test/world"
)

// trafficWorld draws a world for the discovered-graph spec: two namespaces with edges both ways
// across them, a UDP edge (Istio never sees one), and a Service with several ports discover
// cannot tell apart.
func trafficWorld(seed uint64) (*world.World, *traffic.Scenario, *rand.Rand) {
	rng := rand.New(rand.NewPCG(seed, 2026))
	for {
		w := world.Random(rng, world.Options{MinServices: 6, MaxServices: 10, Namespaces: 2, NoSCTP: true})
		w.Istio = true
		if len(w.Namespaces) != 2 || !crossBothWays(w) {
			continue
		}
		rename(w, fmt.Sprintf("tr%d-", seed))
		sc := traffic.NewScenario(w, rng)
		udp, ambiguous := false, false
		for _, e := range w.Edges {
			for _, p := range e.Ports {
				udp = udp || world.L4(p.Protocol) == corev1.ProtocolUDP
			}
		}
		for _, f := range sc.Flows {
			_, amb := sc.Candidates(f)
			ambiguous = ambiguous || amb
		}
		if udp && ambiguous {
			return w, sc, rng
		}
	}
}

var _ = Describe("Graphs discovered from observed traffic on real packets", func() {
	for _, seed := range []uint64{31, 32} {
		It(fmt.Sprintf("let every connection Istio reported through, and no other (seed %d)", seed), func() {
			discoveredOnPackets(seed)
		})
	}
})

// discoveredOnPackets runs a world's pods and Services, serves what Istio would report of its
// allowed connections from a real Prometheus, applies what discover proposes from the live
// cluster, and probes: audit of the proposals against the cluster finds nothing refused or
// unused, and the packets follow the proposals exactly.
func discoveredOnPackets(seed uint64) {
	w, sc, rng := trafficWorld(seed)
	pods := dataplane.WorldPods(w)
	Expect(cluster.AddPods(ctx, pods...)).To(Succeed())
	DeferCleanup(func() { Expect(cluster.RemovePods(ctx, pods...)).To(Succeed()) })
	// discover reads the live cluster: the pods (their workload is their name), and the
	// Services in front of them that tie Istio's destination_service_name to ports.
	for _, o := range sc.Manifests() {
		if svc, ok := o.(*corev1.Service); ok {
			Expect(cluster.Client.Create(ctx, svc)).To(Succeed())
			DeferCleanup(func() { Expect(client.IgnoreNotFound(cluster.Client.Delete(ctx, svc))).To(Succeed()) })
		}
	}
	now := time.Now()
	server, err := promtest.Start(promtest.Options{Backfill: sc.Series(now.Add(-150*time.Minute), now.Add(-30*time.Minute))})
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(server.Stop)

	out, stderr, code := traffic.Run("discover", "--prometheus", server.URL, "-n", strings.Join(w.Namespaces, ","), "--since", "4h",
		"--kubeconfig", cluster.Kubeconfig)
	Expect(code).To(Equal(0), "discover: %s\n%s", stderr, out)
	fmt.Fprintf(GinkgoWriter, "discovered:\n%s\n", out)
	proposals, err := traffic.ParseProposals(out)
	Expect(err).NotTo(HaveOccurred())
	file := filepath.Join(GinkgoT().TempDir(), "discovered.yaml")
	Expect(os.WriteFile(file, []byte(out), 0o600)).To(Succeed())
	kubectl("apply", "-f", file) // no spec.enforcement: Enforce
	DeferCleanup(func() { kubectl("delete", "-f", file, "--wait=true") })
	for _, p := range proposals {
		Expect(p.Graph.Spec.Enforcement).To(BeEmpty())
		kubectl("wait", "--for=condition=Ready", "servicegraph/"+p.Graph.Name, "-n", p.Graph.Namespace, "--timeout=60s")
	}

	byName := map[string]*dataplane.Pod{}
	for _, p := range pods {
		byName[p.Name] = p
	}
	allows := proposedAllows(w, proposals, byName)
	probes := dataplane.Sample(dataplane.MatrixProbes(append(pods, system...), allows), 300, rng)
	// Spelled out, so the oracle cannot hide them: every connection Istio reported connects,
	// and every UDP edge of the world, which Istio never reports, is refused.
	observed := 0
	for _, f := range sc.Flows {
		from, to := byName[f.From.Name], byName[f.To.Name]
		probes = append(probes, dataplane.Probe{From: from, To: to, Port: podPort(to, f.Port, corev1.ProtocolTCP), Want: true})
		observed++
	}
	unobserved := 0
	for _, e := range w.Edges {
		for _, p := range e.Ports {
			if world.L4(p.Protocol) == corev1.ProtocolUDP {
				to := byName[w.Services[e.To].Name]
				probes = append(probes, dataplane.Probe{From: byName[w.Services[e.From].Name], To: to, Port: podPort(to, world.PortNumber(p.Port), corev1.ProtocolUDP)})
				unobserved++
			}
		}
	}
	Expect(observed).To(BeNumerically(">", 0))
	Expect(unobserved).To(BeNumerically(">", 0))
	fmt.Fprintf(GinkgoWriter, "%d connections observed, %d UDP edge ports never observed\n", observed, unobserved)
	expectCheckAgrees(expectVerdicts(probes))

	out, stderr, code = traffic.Run("audit", "-f", file, "--prometheus", server.URL, "--since", "4h", "-o", "json", "--kubeconfig", cluster.Kubeconfig)
	Expect(code).To(Equal(0), "audit: %s\n%s", stderr, out)
	report, err := traffic.ParseAudit(out)
	Expect(err).NotTo(HaveOccurred())
	Expect(report.Refused).To(BeEmpty())
	Expect(report.Unused).To(BeEmpty())
	Expect(report.Allowed).To(Equal(report.Observed))
}

// proposedAllows is what the applied proposals allow: each edge's ports from the caller's pod to
// the destination's (every port of an ambiguous one), DNS and istiod from every pod of their
// namespaces, and anything between pods of namespaces without a graph.
func proposedAllows(w *world.World, proposals []*traffic.Proposal, byName map[string]*dataplane.Pod) func(from, to *dataplane.Pod, port dataplane.Port) bool {
	GinkgoHelper()
	allowed := world.Connections{}
	governed := map[string]bool{}
	for _, p := range proposals {
		governed[p.Graph.Namespace] = true
		for _, e := range p.Edges {
			from, to := byName[e.From], byName[e.To]
			Expect(from).NotTo(BeNil(), "edge %s", e.Key())
			Expect(to).NotTo(BeNil(), "edge %s", e.Key())
			for _, port := range e.Ports {
				allowed.Add(from.Key(), to.Key(), corev1.ProtocolTCP, port)
			}
		}
	}
	for _, s := range w.Services {
		if governed[s.Namespace] {
			allowed.Add(s.Key(), world.DNSPod, corev1.ProtocolUDP, 53)
			allowed.Add(s.Key(), world.DNSPod, corev1.ProtocolTCP, 53)
			allowed.Add(s.Key(), world.IstiodPod, corev1.ProtocolTCP, 15012)
			allowed.Add(s.Key(), world.IstiodPod, corev1.ProtocolTCP, 15017)
		}
	}
	return func(from, to *dataplane.Pod, port dataplane.Port) bool {
		if !governed[from.Namespace] && !governed[to.Namespace] {
			return true
		}
		return allowed[world.Connection(from.Key(), to.Key(), port.Protocol, port.Number)]
	}
}

// podPort is the pod's port of that number and protocol (with its name, if it has one).
func podPort(p *dataplane.Pod, number int32, protocol corev1.Protocol) dataplane.Port {
	GinkgoHelper()
	for _, port := range p.Ports {
		if port.Number == number && port.Protocol == protocol {
			return port
		}
	}
	Fail(fmt.Sprintf("%s does not listen on %d/%s", p.Key(), number, protocol))
	return dataplane.Port{}
}
