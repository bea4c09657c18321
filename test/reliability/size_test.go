package reliability

import (
	"fmt"
	"maps"
	"regexp"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/compiler"
)

// oversizedGraph has a service "hub" called by a service "caller" on n ports, one edge per port.
// Each edge becomes an ingress rule of hub's NetworkPolicy that repeats caller's selector, which
// has 40 labels of the longest allowed keys and values (about 5 KB): hub's NetworkPolicy grows by
// about 5 KB per edge while the graph grows by 16 bytes.
func oversizedGraph(ns string, n int) *v1alpha1.ServiceGraph {
	labels := map[string]string{}
	for i := range 40 {
		key := fmt.Sprintf("example.com/k%02d-%s", i, strings.Repeat("x", 63-4))
		labels[key] = strings.Repeat("v", 63)
	}
	sg := &v1alpha1.ServiceGraph{
		ObjectMeta: metav1.ObjectMeta{Name: "big", Namespace: ns},
		Spec: v1alpha1.ServiceGraphSpec{Services: []v1alpha1.Service{
			{Name: "hub"},
			{Name: "caller", Selector: &metav1.LabelSelector{MatchLabels: labels}},
		}},
	}
	for p := range n {
		sg.Spec.Edges = append(sg.Spec.Edges, fmt.Sprintf("caller->hub:%d", 1000+p))
	}
	return sg
}

// compiledSize is the JSON size of the graph's hub NetworkPolicy, as the compiler's own size check
// measures and reports it: the object really is beyond what the API server stores.
func compiledSize(sg *v1alpha1.ServiceGraph) int {
	_, err := compiler.Compile(sg, compiler.DefaultOptions(), compiler.Facts{})
	Expect(err).To(HaveOccurred())
	m := regexp.MustCompile(`NetworkPolicy "big-svc-hub": would be (\d+) bytes`).FindStringSubmatch(err.Error())
	Expect(m).NotTo(BeNil(), err.Error())
	size, _ := strconv.Atoi(m[1])
	return size
}

// waitStalledOn waits until the graph is Stalled at its current generation with a message naming
// the object, then checks it is not retried: a spec that cannot be applied needs a spec change,
// and retrying it forever (even with backoff) only hides the problem behind ApplyFailed.
func waitStalledOn(sg *v1alpha1.ServiceGraph, object string, why string) {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		live := getGraph(sg.Namespace, sg.Name)
		stalled, ready := condition(live, v1alpha1.ConditionStalled), condition(live, v1alpha1.ConditionReady)
		g.Expect(stalled.Status).To(Equal(metav1.ConditionTrue), "Stalled; Ready is %s: %s", ready.Reason, ready.Message)
		g.Expect(stalled.ObservedGeneration).To(Equal(live.Generation))
		g.Expect(stalled.Message).To(ContainSubstring(object))
		g.Expect(stalled.Message).To(MatchRegexp(why))
		g.Expect(ready.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(condition(live, v1alpha1.ConditionReconciling).Status).NotTo(Equal(metav1.ConditionTrue))
	}, 20*time.Second, poll).Should(Succeed())
	// The reconcile that wrote Stalled may be followed by one more (the event of its own status
	// write), so the count is taken once it holds still for half a second; a retry loop never does.
	var settled map[string]float64
	Eventually(func() bool {
		before := reconciles()
		time.Sleep(500 * time.Millisecond)
		settled = reconciles()
		return maps.Equal(settled, before)
	}, 10*time.Second).Should(BeTrue(), "a stalled graph is retried")
	Consistently(reconciles, 3*time.Second, 200*time.Millisecond).Should(Equal(settled), "a stalled graph is retried")
}

var _ = Describe("An oversized policy", func() {
	It("gets a clear condition, not a retry loop, when a compiled NetworkPolicy is larger than etcd stores", func() {
		ns := newNamespace("size")
		cleanupGraphs(ns)
		startManager(managerOptions{namespaces: []string{ns}})
		// 2 services and 300 edges: a 12 KB graph, well within the CRD's limits (2,048 services,
		// 16,384 edges), whose hub NetworkPolicy is 1.75 MB, over etcd's default request limit of
		// 1.5 MiB: the API server answers "etcdserver: request is too large" (a 500). Measured on
		// this control plane: 1.46 MB is stored; 1.5-2 MiB gets that answer; 2-3 MiB gets "rpc
		// error: code = ResourceExhausted desc = trying to send message larger than max"; over
		// 3 MiB the request itself is refused with 413 RequestEntityTooLarge.
		sg := oversizedGraph(ns, 300)
		Expect(compiledSize(sg)).To(BeNumerically(">", 1536<<10))
		Expect(k8s.Create(ctx, sg)).To(Succeed())
		waitStalledOn(sg, "big-svc-hub", `(?i)too large|larger|size|bytes|limit`)
	})

	It("gets a clear condition, not a retry loop, when a compiled AuthorizationPolicy has more rules than Istio accepts", func() {
		ns := newNamespace("rules")
		cleanupGraphs(ns)
		startManager(managerOptions{namespaces: []string{ns}})
		// 513 callers of one service: within the CRD's limits, but the destination's
		// AuthorizationPolicy would carry 513 rules, and Istio's CRD takes at most 512.
		sg := &v1alpha1.ServiceGraph{
			ObjectMeta: metav1.ObjectMeta{Name: "fan", Namespace: ns},
			Spec:       v1alpha1.ServiceGraphSpec{Services: []v1alpha1.Service{{Name: "hub"}}},
		}
		for i := range 513 {
			caller := fmt.Sprintf("caller-%03d", i)
			sg.Spec.Services = append(sg.Spec.Services, v1alpha1.Service{Name: caller})
			sg.Spec.Edges = append(sg.Spec.Edges, caller+"->hub:8080")
		}
		Expect(k8s.Create(ctx, sg)).To(Succeed())
		waitStalledOn(sg, "fan-svc-hub", `512`)
	})
})
