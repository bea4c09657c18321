package dataplane_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/servicegraph/servicegraph-operator/internal/object"
	"github.com/servicegraph/servicegraph-operator/test/dataplane"
	"github.com/servicegraph/servicegraph-operator/test/world"
	"github.com/servicegraph/servicegraph-operator/test/world/analysis"
)

// randomSeeds are the fixed seeds of the random worlds.
var randomSeeds = []uint64{11, 12, 13}

// randomWorld draws a world of 15 to 25 services over two or three namespaces, with edges across
// namespaces both ways, its namespaces prefixed so that worlds never share one.
func randomWorld(seed uint64) (*world.World, *rand.Rand) {
	rng := rand.New(rand.NewPCG(seed, 2026))
	for {
		w := world.Random(rng, world.Options{MinServices: 15, MaxServices: 25, Namespaces: 3, NoSCTP: true})
		w.Istio = true
		if len(w.Namespaces) >= 2 && crossBothWays(w) {
			rename(w, fmt.Sprintf("w%d-", seed))
			return w, rng
		}
	}
}

func crossBothWays(w *world.World) bool {
	ways := map[[2]string]bool{}
	for _, e := range w.Edges {
		from, to := w.Services[e.From].Namespace, w.Services[e.To].Namespace
		if from != to {
			ways[[2]string{from, to}] = true
			if ways[[2]string{to, from}] {
				return true
			}
		}
	}
	return false
}

func rename(w *world.World, prefix string) {
	for i := range w.Namespaces {
		w.AllowDNS[prefix+w.Namespaces[i]] = w.AllowDNS[w.Namespaces[i]]
		w.Namespaces[i] = prefix + w.Namespaces[i]
	}
	for i := range w.Services {
		w.Services[i].Namespace = prefix + w.Services[i].Namespace
		if w.Services[i].Selector != nil && w.Services[i].Selector["team"] != "" {
			w.Services[i].Selector["team"] = "t" + w.Services[i].Namespace
		}
	}
}

var _ = Describe("Random graphs on real packets", func() {
	for _, seed := range randomSeeds {
		It(fmt.Sprintf("allow exactly their edges, as netpol-analyzer says too (seed %d)", seed), func() {
			w, rng := randomWorld(seed)
			pods := dataplane.WorldPods(w)
			Expect(cluster.AddPods(ctx, pods...)).To(Succeed())
			DeferCleanup(func() { Expect(cluster.RemovePods(ctx, pods...)).To(Succeed()) })

			var docs []string
			for _, sg := range w.Graphs(rng) {
				data, err := yaml.Marshal(sg)
				Expect(err).NotTo(HaveOccurred())
				docs = append(docs, string(data))
			}
			file := filepath.Join(GinkgoT().TempDir(), "graphs.yaml")
			Expect(os.WriteFile(file, []byte(strings.Join(docs, "---\n")), 0o600)).To(Succeed())
			kubectl("apply", "-f", file)
			for _, ns := range w.Namespaces {
				kubectl("wait", "--for=condition=Ready", "servicegraph/g-"+ns, "-n", ns, "--timeout=60s")
			}

			all := append(pods, system...)
			oracle := dataplane.NewOracle(w)
			probes := dataplane.Sample(dataplane.MatrixProbes(all, oracle.Allows), 300, rng)
			Expect(len(probes)).To(BeNumerically(">=", 300))
			results := expectVerdicts(probes)
			expectCheckAgrees(results)

			analyzed := analyzeLive(w)
			var disagree []string
			for _, r := range results {
				if got := analyzerAllows(analyzed, r.Probe); got != r.Connected {
					disagree = append(disagree, fmt.Sprintf("%s: dataplane %v, netpol-analyzer %v", r.Probe, r.Connected, got))
				}
			}
			Expect(disagree).To(BeEmpty())
		})
	}
})

// analyzeLive runs netpol-analyzer over what the enforcer sees: the live namespaces, pods and
// NetworkPolicies of the world and of the system pods.
func analyzeLive(w *world.World) world.Connections {
	GinkgoHelper()
	var objs []object.Object
	var nps networkingv1.NetworkPolicyList
	Expect(cluster.Client.List(ctx, &nps)).To(Succeed())
	var pods corev1.PodList
	Expect(cluster.Client.List(ctx, &pods)).To(Succeed())
	var nss corev1.NamespaceList
	Expect(cluster.Client.List(ctx, &nss)).To(Succeed())
	for i := range nss.Items {
		nss.Items[i].TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"}
		objs = append(objs, &nss.Items[i])
	}
	for i := range pods.Items {
		pods.Items[i].TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}
		objs = append(objs, &pods.Items[i])
	}
	for i := range nps.Items {
		nps.Items[i].TypeMeta = metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"}
		objs = append(objs, &nps.Items[i])
	}
	conns, err := analysis.Analyze(objs, append([]string{"kube-system", "istio-system"}, w.Namespaces...))
	Expect(err).NotTo(HaveOccurred())
	return conns
}

// analyzerAllows reads a probe's verdict from the analyzer's connections: an exact port, a port
// range, or all ports.
func analyzerAllows(conns world.Connections, p dataplane.Probe) bool {
	src, dst := p.From.Key(), p.To.Key()
	if conns[world.Connection(src, dst, p.Port.Protocol, p.Port.Number)] || conns[src+" -> "+dst+" ALL"] {
		return true
	}
	prefix := fmt.Sprintf("%s -> %s %s/", src, dst, p.Port.Protocol)
	for c := range conns {
		var lo, hi int32
		if rest, ok := strings.CutPrefix(c, prefix); ok {
			if n, _ := fmt.Sscanf(rest, "%d-%d", &lo, &hi); n == 2 && lo <= p.Port.Number && p.Port.Number <= hi {
				return true
			}
		}
	}
	return false
}
