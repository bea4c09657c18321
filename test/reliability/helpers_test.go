package reliability

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/controllers"
	"github.com/servicegraph/servicegraph-operator/internal/compiler"
	"github.com/servicegraph/servicegraph-operator/test/testenv"
)

var nsCounter atomic.Int32

// newNamespace creates a fresh namespace named after the scenario.
func newNamespace(prefix string) string {
	name := fmt.Sprintf("%s-%d", prefix, nsCounter.Add(1))
	Expect(k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})).To(Succeed())
	return name
}

// cleanupGraphs deletes the scenario's graphs and what they generated when it ends. envtest runs
// no garbage collector, and a manager started by a later scenario would otherwise pick them up.
func cleanupGraphs(namespaces ...string) {
	DeferCleanup(func() {
		for _, ns := range namespaces {
			Expect(k8s.DeleteAllOf(ctx, &v1alpha1.ServiceGraph{}, client.InNamespace(ns))).To(Succeed())
			for _, obj := range []client.Object{&networkingv1.NetworkPolicy{}, &securityv1.PeerAuthentication{}, &securityv1.AuthorizationPolicy{}} {
				Expect(k8s.DeleteAllOf(ctx, obj, client.InNamespace(ns), client.HasLabels{compiler.LabelGraph})).To(Succeed())
			}
		}
	})
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

// ringGraph has n services in a ring, service i calling the next k, every third edge with an HTTP
// path. The services of the twentieth of the ring numbered skip (0-19) are left out, and the edges
// of the twentieth numbered shift use ports 9001.. instead of 8001..; -1 turns either off. Two
// variants thus differ in objects to create, update and prune.
func ringGraph(ns, name string, n, k, skip, shift int) *v1alpha1.ServiceGraph {
	sg := &v1alpha1.ServiceGraph{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}
	block := func(i int) int { return i * 20 / n }
	var kept []int
	for i := range n {
		if block(i) != skip {
			kept = append(kept, i)
		}
	}
	for _, i := range kept {
		sg.Spec.Services = append(sg.Spec.Services, v1alpha1.Service{Name: fmt.Sprintf("svc-%04d", i)})
	}
	for x, i := range kept {
		port := 8000
		if block(i) == shift {
			port = 9000
		}
		for j := 1; j <= k && j < len(kept); j++ {
			e := fmt.Sprintf("svc-%04d->svc-%04d:%d", i, kept[(x+j)%len(kept)], port+j)
			if j%3 == 0 {
				e += "/api/*"
			}
			sg.Spec.Edges = append(sg.Spec.Edges, e)
		}
	}
	return sg
}

var ref, refs = testenv.Ref, testenv.Refs[client.Object]

// generated is every object in ns that carries the operator's graph label, keyed by kind/name.
func generated(g Gomega, ns string) map[v1alpha1.ObjectReference]client.Object {
	objs, err := testenv.Generated(ctx, k8s, ns)
	g.Expect(err).NotTo(HaveOccurred())
	return objs
}

// compiled is what the compiler wants for sg with Istio on, keyed by kind/name; with the API
// server's addresses when the graph has it as a peer.
func compiled(sg *v1alpha1.ServiceGraph) map[v1alpha1.ObjectReference]client.Object {
	var facts compiler.Facts
	if slices.ContainsFunc(sg.Spec.External, func(x v1alpha1.External) bool { return x.KubernetesAPI }) {
		slice := &discoveryv1.EndpointSlice{}
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: metav1.NamespaceDefault, Name: "kubernetes"}, slice)).To(Succeed())
		facts.APIServer = compiler.APIServerEndpoints(slice)
	}
	objs, err := testenv.CompiledWith(sg, facts)
	Expect(err).NotTo(HaveOccurred())
	return objs
}

// specOf renders an object's spec in its JSON form (testenv.SpecOf).
func specOf(obj client.Object) any {
	spec, err := testenv.SpecOf(k8s, obj)
	Expect(err).NotTo(HaveOccurred())
	return spec
}

// exactly checks that the live generated objects of ns are the compiled set of sg: the same
// names (nothing missing, nothing stale), the same specs, and each controlled by the live graph
// alone (nothing duplicated under a second owner).
func exactly(g Gomega, sg *v1alpha1.ServiceGraph) {
	live := &v1alpha1.ServiceGraph{}
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(sg), live)).To(Succeed())
	want := compiled(sg)
	have := generated(g, sg.Namespace)
	if !g.Expect(refs(have)).To(Equal(refs(want))) {
		return
	}
	for r, obj := range want {
		g.Expect(specOf(have[r])).To(Equal(specOf(obj)), "spec of %v", r)
		owners := have[r].GetOwnerReferences()
		if g.Expect(owners).To(HaveLen(1), "owners of %v", r) {
			g.Expect(owners[0].UID).To(Equal(live.UID), "owner of %v", r)
		}
	}
}

// waitExactly waits until the live state is exactly the compiled set and the graph is Ready at its
// current generation.
func waitExactly(sg *v1alpha1.ServiceGraph, within time.Duration) {
	GinkgoHelper()
	waitExactlyEvery(sg, within, 200*time.Millisecond)
}

// waitExactlyEvery is waitExactly polling at the given interval: large graphs are costly to read.
func waitExactlyEvery(sg *v1alpha1.ServiceGraph, within, every time.Duration) {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		g.Expect(readyAtCurrentGeneration(getGraph(sg.Namespace, sg.Name))).To(BeTrue(), "Ready at the current generation")
		exactly(g, sg)
	}, within, every).Should(Succeed())
}

// snapshot records each generated object's resourceVersion: an unchanged resourceVersion means the
// stored object is byte-for-byte the same.
func snapshot(ns string) map[v1alpha1.ObjectReference]string {
	out := map[v1alpha1.ObjectReference]string{}
	for r, obj := range generated(Default, ns) {
		out[r] = obj.GetResourceVersion()
	}
	return out
}

// getGraph reads a ServiceGraph fresh from the API server.
func getGraph(ns, name string) *v1alpha1.ServiceGraph {
	sg := &v1alpha1.ServiceGraph{}
	Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, sg)).To(Succeed())
	return sg
}

var condition, readyAtCurrentGeneration = testenv.Condition, testenv.ReadyAtCurrentGeneration

// updateSpec replaces a live graph's spec, retrying on write conflicts with the operator's status
// writes, and returns the graph as stored.
func updateSpec(sg *v1alpha1.ServiceGraph, spec v1alpha1.ServiceGraphSpec) *v1alpha1.ServiceGraph {
	GinkgoHelper()
	live := &v1alpha1.ServiceGraph{}
	Eventually(func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(sg), live); err != nil {
			return err
		}
		live.Spec = spec
		return k8s.Update(ctx, live)
	}, timeout, poll).Should(Succeed())
	return live
}

// inProcess is a manager running in the test process, the way controllers/suite_test.go runs one.
type inProcess struct {
	cancel context.CancelFunc
	done   chan error
}

type managerOptions struct {
	// config is the identity and endpoint the manager uses; the admin config when nil.
	config *rest.Config
	// namespaces restricts the manager's cache (and so what it reconciles) to these namespaces;
	// nil watches the whole cluster, as the deployed operator does.
	namespaces []string
	// writes, when set, records every write request the manager makes.
	writes *testenv.RequestLog
	// recheck is the recheck interval of graphs waiting on something outside their spec.
	recheck time.Duration
}

// startManager runs the operator in-process and stops it when the spec ends. The manager must not
// stop by itself: that would be a crash.
func startManager(o managerOptions) *inProcess {
	GinkgoHelper()
	mgrCfg := rest.CopyConfig(cfg)
	if o.config != nil {
		mgrCfg = rest.CopyConfig(o.config)
	}
	if o.writes != nil {
		mgrCfg.Wrap(o.writes.Wrap)
	}
	opts := testenv.ManagerOptions()
	if o.namespaces != nil {
		opts.Cache.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range o.namespaces {
			opts.Cache.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	mgr, err := ctrl.NewManager(mgrCfg, opts)
	Expect(err).NotTo(HaveOccurred())
	conf := controllers.DefaultConfig()
	conf.RecheckInterval = time.Second
	if o.recheck > 0 {
		conf.RecheckInterval = o.recheck
	}
	Expect(controllers.Setup(mgr, conf)).To(Succeed())
	mctx, cancel := context.WithCancel(context.Background())
	m := &inProcess{cancel: cancel, done: make(chan error, 1)}
	go func() { m.done <- mgr.Start(mctx) }()
	DeferCleanup(m.stop)
	return m
}

// running fails the spec if the manager has stopped on its own.
func (m *inProcess) running() {
	GinkgoHelper()
	select {
	case err := <-m.done:
		m.done <- err
		Fail(fmt.Sprintf("the manager stopped by itself: %v", err))
	default:
	}
}

// stop stops the manager and checks that it had not failed.
func (m *inProcess) stop() {
	m.running()
	m.cancel()
	Eventually(m.done, timeout).Should(Receive(BeNil()))
}

// reconciles reads controller-runtime's count of the servicegraph controller's reconciles, by
// result (success, error, requeue, requeue_after), from the in-process metrics registry.
func reconciles() map[string]float64 {
	families, err := crmetrics.Registry.Gather()
	Expect(err).NotTo(HaveOccurred())
	out := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "controller_runtime_reconcile_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["controller"] == "servicegraph" {
				out[labels["result"]] += m.GetCounter().GetValue()
			}
		}
	}
	return out
}

// total adds up a reconcile count by result.
func total(byResult map[string]float64) float64 {
	var n float64
	for _, v := range byResult {
		n += v
	}
	return n
}

// auditEvent is the part of an API server audit event the tests read.
type auditEvent struct {
	Verb string `json:"verb"`
	User struct {
		Username string `json:"username"`
	} `json:"user"`
	ObjectRef *struct {
		Resource    string `json:"resource"`
		Namespace   string `json:"namespace"`
		Name        string `json:"name"`
		Subresource string `json:"subresource"`
	} `json:"objectRef"`
	ResponseStatus *struct {
		Code int `json:"code"`
	} `json:"responseStatus"`
	StageTimestamp time.Time `json:"stageTimestamp"`
}

// auditWrites reads the write requests that user made, as the API server logged them.
func auditWrites(user string) []auditEvent {
	f, err := os.Open(auditLog)
	Expect(err).NotTo(HaveOccurred())
	defer f.Close()
	var out []auditEvent
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var ev auditEvent
		Expect(json.Unmarshal(sc.Bytes(), &ev)).To(Succeed())
		if ev.User.Username == user {
			out = append(out, ev)
		}
	}
	Expect(sc.Err()).NotTo(HaveOccurred())
	return out
}

// newProcessLog collects a manager process's output for the spec's report and for grepping.
func newProcessLog() *testenv.Log { return &testenv.Log{Also: GinkgoWriter} }

// waitHealthy waits until a manager process answers its readiness probe.
func waitHealthy(port int) {
	GinkgoHelper()
	Eventually(func() (int, error) {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", port))
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}, timeout, poll).Should(Equal(http.StatusOK))
}

// holds tells whether a check passes now, without failing the spec.
func holds(check func(g Gomega)) bool {
	return len(InterceptGomegaFailures(func() { check(Default) })) == 0
}
