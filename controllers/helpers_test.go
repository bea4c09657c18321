package controllers_test

import (
	"context"
	"fmt"
	"sync/atomic"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	kstatus "sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/test/testenv"
)

var nsCounter atomic.Int32

// newNamespace creates a fresh namespace for one spec.
func newNamespace(ctx context.Context, c client.Client) string {
	name := fmt.Sprintf("sg-test-%d", nsCounter.Add(1))
	Expect(c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})).To(Succeed())
	return name
}

// seedGraph is the seed scenario: web→api:8080, api→database:5432/data.
func seedGraph(ns string) *v1alpha1.ServiceGraph {
	return &v1alpha1.ServiceGraph{
		ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: ns},
		Spec: v1alpha1.ServiceGraphSpec{
			Services: []v1alpha1.Service{{Name: "web"}, {Name: "api"}, {Name: "database"}},
			Edges:    []string{"web→api:8080", "api→database:5432/data"},
		},
	}
}

var ref, refs = testenv.Ref, testenv.Refs[client.Object]

// seedCounts are the seed scenario's objects by kind, as status.counts lists them.
var seedCounts = []v1alpha1.KindCount{
	{Group: "security.istio.io", Kind: "AuthorizationPolicy", Count: 3},
	{Group: "networking.k8s.io", Kind: "NetworkPolicy", Count: 6},
	{Group: "security.istio.io", Kind: "PeerAuthentication", Count: 1},
}

// generated is every object in ns that carries the operator's graph label, keyed by kind/name.
func generated(ctx context.Context, c client.Client, ns string) map[v1alpha1.ObjectReference]client.Object {
	objs, err := testenv.Generated(ctx, c, ns)
	Expect(err).NotTo(HaveOccurred())
	return objs
}

// compiled is what the compiler wants for sg with Istio on, keyed by kind/name.
func compiled(sg *v1alpha1.ServiceGraph) map[v1alpha1.ObjectReference]client.Object {
	objs, err := testenv.Compiled(sg)
	Expect(err).NotTo(HaveOccurred())
	return objs
}

// specOf renders an object's spec in its JSON form (testenv.SpecOf).
func specOf(obj client.Object) any {
	spec, err := testenv.SpecOf(k8s, obj)
	Expect(err).NotTo(HaveOccurred())
	return spec
}

// snapshot records each generated object's resourceVersion, to prove nothing was written.
func snapshot(ctx context.Context, c client.Client, ns string) map[v1alpha1.ObjectReference]string {
	out := map[v1alpha1.ObjectReference]string{}
	for r, obj := range generated(ctx, c, ns) {
		out[r] = obj.GetResourceVersion()
	}
	return out
}

// getGraph reads a ServiceGraph fresh from the API server.
func getGraph(ctx context.Context, c client.Client, ns, name string) *v1alpha1.ServiceGraph {
	sg := &v1alpha1.ServiceGraph{}
	Expect(c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, sg)).To(Succeed())
	return sg
}

var condition, readyAtCurrentGeneration = testenv.Condition, testenv.ReadyAtCurrentGeneration

// eventReasons lists the reasons of the events regarding a graph.
func eventReasons(ctx context.Context, c client.Client, ns, name string) []string {
	var evs eventsv1.EventList
	Expect(c.List(ctx, &evs, client.InNamespace(ns))).To(Succeed())
	var out []string
	for _, e := range evs.Items {
		if e.Regarding.Name == name && e.Regarding.Kind == "ServiceGraph" {
			out = append(out, e.Reason)
		}
	}
	return out
}

// metricValue reads a gauge or counter of the operator from the in-process metrics registry.
func metricValue(name string, labels map[string]string) float64 {
	families, err := crmetrics.Registry.Gather()
	Expect(err).NotTo(HaveOccurred())
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if v, ok := labels[l.GetName()]; ok && v != l.GetValue() {
					continue metrics
				}
			}
			if m.GetGauge() != nil {
				return m.GetGauge().GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	return -1
}

// kstatusOf computes the status kstatus (kpt, Flux, cli-utils) sees for a live graph.
func kstatusOf(sg *v1alpha1.ServiceGraph) kstatus.Status {
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(sg)
	Expect(err).NotTo(HaveOccurred())
	res, err := kstatus.Compute(&unstructured.Unstructured{Object: obj})
	Expect(err).NotTo(HaveOccurred())
	return res.Status
}

// waitGraph waits until check holds for the graph once its status describes its current
// generation, and returns the graph.
func waitGraph(ctx context.Context, c client.Client, ns, name string, check func(*v1alpha1.ServiceGraph) bool) *v1alpha1.ServiceGraph {
	GinkgoHelper()
	var sg *v1alpha1.ServiceGraph
	Eventually(func() bool {
		sg = getGraph(ctx, c, ns, name)
		return sg.Status.ObservedGeneration == sg.Generation && check(sg)
	}, timeout, poll).Should(BeTrue(), "graph %s/%s", ns, name)
	return sg
}

// specEnv is a spec's own namespace and the waits its specs use.
type specEnv struct {
	ctx context.Context
	ns  string
}

func newSpecEnv() *specEnv {
	ctx := context.Background()
	return &specEnv{ctx: ctx, ns: newNamespace(ctx, k8s)}
}

func (e *specEnv) waitReady(name string) *v1alpha1.ServiceGraph {
	GinkgoHelper()
	return waitGraph(e.ctx, k8s, e.ns, name, readyAtCurrentGeneration)
}

func (e *specEnv) waitReason(name, reason string) *v1alpha1.ServiceGraph {
	GinkgoHelper()
	return waitGraph(e.ctx, k8s, e.ns, name, func(sg *v1alpha1.ServiceGraph) bool {
		c := condition(sg, v1alpha1.ConditionReady)
		return c.ObservedGeneration == sg.Generation && c.Reason == reason
	})
}

// waitConverged waits until the live generated objects are exactly the compiled ones.
func (e *specEnv) waitConverged(sg *v1alpha1.ServiceGraph) {
	GinkgoHelper()
	want := compiled(sg)
	Eventually(func(g Gomega) {
		have := generated(e.ctx, k8s, e.ns)
		g.Expect(refs(have)).To(Equal(refs(want)))
		for r, obj := range want {
			g.Expect(specOf(have[r])).To(Equal(specOf(obj)), "spec of %v", r)
		}
	}, timeout, poll).Should(Succeed())
}
