package controllers_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/controllers"
	"github.com/servicegraph/servicegraph-operator/internal/audit"
)

// collector is an HTTP audit sink that keeps what it is sent, or answers 503 while down.
type collector struct {
	mu      sync.Mutex
	records []audit.Record
	down    bool
	posts   int
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.posts++
	if c.down {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	var batch []audit.Record
	if err := json.NewDecoder(r.Body).Decode(&batch); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	c.records = append(c.records, batch...)
}

// actions lists what the records say happened to one NetworkPolicy.
func (c *collector) actions(name string) []audit.Action {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []audit.Action
	for _, r := range c.records {
		if r.Object.Kind == "NetworkPolicy" && r.Object.Name == name {
			out = append(out, r.Action)
		}
	}
	return out
}

func (c *collector) setDown(down bool) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.down = down
	return c.posts
}

func (c *collector) postCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.posts
}

// Specs of the audit trail: a record per change the operator makes, sent to a real HTTP collector,
// and a collector that is down holding nothing up.
var _ = Describe("ServiceGraph reconciler's audit trail", Ordered, func() {
	var (
		c    client.Client
		sink = &collector{}
		ctx  = context.Background()
		ns   string
	)
	BeforeAll(func() {
		server := httptest.NewServer(sink)
		DeferCleanup(server.Close)
		c, _ = startOwnControlPlane(true, func(conf *controllers.Config) {
			conf.Audit = audit.Options{WebhookURL: server.URL, BackoffBase: 50 * time.Millisecond, BackoffMax: 200 * time.Millisecond, MaxAttempts: 3}
		})
		ns = newNamespace(ctx, c)
	})

	It("sends one record per object created, with the graph, its generation and the revision", func() {
		sg := seedGraph(ns)
		sg.Annotations = map[string]string{audit.AnnotationRevision: "3f2c1e9"}
		Expect(c.Create(ctx, sg)).To(Succeed())
		Eventually(func() []audit.Action { return sink.actions("shop-default-deny") }, timeout, poll).Should(Equal([]audit.Action{audit.ActionCreate}))
		sink.mu.Lock()
		defer sink.mu.Unlock()
		Expect(len(sink.records)).To(BeNumerically(">=", 10))
		for _, r := range sink.records {
			Expect(r.SchemaVersion).To(Equal(audit.SchemaVersion))
			Expect(r.Graph.Namespace).To(Equal(ns))
			Expect(r.Graph.Name).To(Equal("shop"))
			Expect(r.Graph.Generation).To(Equal(int64(1)))
			Expect(r.Revision).To(Equal("3f2c1e9"))
			Expect(r.Object.Namespace).To(Equal(ns))
			Expect(r.Object.Version).NotTo(BeEmpty())
			Expect(r.Time).NotTo(BeZero())
		}
	})

	It("records a restored object as drift-restore", func() {
		Expect(c.Delete(ctx, &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "shop-svc-api", Namespace: ns}})).To(Succeed())
		Eventually(func() []audit.Action { return sink.actions("shop-svc-api") }, timeout, poll).Should(Equal([]audit.Action{audit.ActionCreate, audit.ActionDriftRestore}))
	})

	It("goes on reconciling while the collector is down, retrying and then dropping", func() {
		dropped := metricValue("servicegraph_audit_dropped_total", map[string]string{"reason": audit.DropSendFailed})
		postsBefore := sink.setDown(true)
		Expect(c.Delete(ctx, &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "shop-svc-web", Namespace: ns}})).To(Succeed())
		Eventually(func() error {
			return c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "shop-svc-web"}, &networkingv1.NetworkPolicy{})
		}, timeout, poll).Should(Succeed(), "the operator restores the policy whatever the collector does")
		Eventually(func() float64 {
			return metricValue("servicegraph_audit_dropped_total", map[string]string{"reason": audit.DropSendFailed})
		}, timeout, poll).Should(BeNumerically(">", max(dropped, 0)))
		Expect(sink.postCount()-postsBefore).To(BeNumerically(">=", 3), "three attempts before dropping")
		Expect(sink.actions("shop-svc-web")).To(Equal([]audit.Action{audit.ActionCreate}), "the dropped record never arrived")

		sink.setDown(false)
		live := getGraph(ctx, c, ns, "shop")
		live.Spec.Edges = append(live.Spec.Edges, "web→database:5432")
		Expect(c.Update(ctx, live)).To(Succeed())
		Eventually(func() []audit.Action { return sink.actions("shop-svc-database") }, timeout, poll).Should(ContainElement(audit.ActionUpdate))
		Expect(condition(waitGraph(ctx, c, ns, "shop", func(sg *v1alpha1.ServiceGraph) bool {
			return sg.Status.ObservedGeneration == sg.Generation
		}), v1alpha1.ConditionReady).Status).To(Equal(metav1.ConditionTrue))
	})
})
