package controllers_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	kstatus "sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/controllers"
	"github.com/servicegraph/servicegraph-operator/internal/object"
	"github.com/servicegraph/servicegraph-operator/test/promtest"
)

// istioMetrics serves Istio-shaped connection counters, as a destination's sidecar reports them,
// for a real Prometheus to scrape: every scrape sees each connection's counter one higher, so
// increase() over the window is positive from the second scrape on.
type istioMetrics struct {
	mu       sync.Mutex
	registry *prometheus.Registry
	opened   *prometheus.CounterVec
	live     []prometheus.Counter
}

func newIstioMetrics() *istioMetrics {
	m := &istioMetrics{registry: prometheus.NewRegistry(), opened: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "istio_tcp_connections_opened_total", Help: "Istio's TCP connections opened, reported by the destination.",
	}, []string{"reporter", "source_workload", "source_workload_namespace", "source_principal", "destination_workload",
		"destination_workload_namespace", "destination_service_name", "connection_security_policy", "request_protocol"})}
	m.registry.MustRegister(m.opened)
	return m
}

// connect makes connections from one workload of ns to another appear, over mutual TLS.
func (m *istioMetrics) connect(ns, from, to string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.live = append(m.live, m.opened.With(prometheus.Labels{"reporter": "destination", "source_workload": from, "source_workload_namespace": ns,
		"source_principal": "spiffe://cluster.local/ns/" + ns + "/sa/" + from, "destination_workload": to, "destination_workload_namespace": ns,
		"destination_service_name": to, "connection_security_policy": "mutual_tls", "request_protocol": "tcp"}))
}

func (m *istioMetrics) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	for _, c := range m.live {
		c.Inc()
	}
	m.mu.Unlock()
	promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{}).ServeHTTP(w, r)
}

var _ = Describe("TrafficCovered, from a real Prometheus", Ordered, func() {
	const interval = time.Second
	var (
		ctx     = context.Background()
		c       client.Client
		ns      string
		metrics *istioMetrics
		prom    *promtest.Server
	)
	graph := func() *v1alpha1.ServiceGraph { return getGraph(ctx, c, ns, "shop") }
	covered := func(sg *v1alpha1.ServiceGraph) metav1.Condition {
		return condition(sg, v1alpha1.ConditionTrafficCovered)
	}
	waitCovered := func(status metav1.ConditionStatus, reason string) *v1alpha1.ServiceGraph {
		GinkgoHelper()
		return waitGraph(ctx, c, ns, "shop", func(sg *v1alpha1.ServiceGraph) bool {
			cond := covered(sg)
			return cond.Status == status && cond.Reason == reason && cond.ObservedGeneration == sg.Generation
		})
	}
	refusedMetric := func() float64 {
		return metricValue("servicegraph_observed_refused_connections", map[string]string{"namespace": ns, "graph": "shop"})
	}
	// quiet holds while nothing changes: no status write for several intervals.
	quiet := func() {
		GinkgoHelper()
		version := graph().ResourceVersion
		Consistently(func() string { return graph().ResourceVersion }, 4*interval, poll).Should(Equal(version))
	}

	BeforeAll(func() {
		metrics = newIstioMetrics()
		target := httptest.NewServer(metrics)
		DeferCleanup(target.Close)
		var err error
		prom, err = promtest.Start(promtest.Options{Scrape: []string{target.URL + "/metrics"}})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(prom.Stop)
		c, _ = startOwnControlPlane(true, func(conf *controllers.Config) {
			conf.Traffic = controllers.TrafficConfig{PrometheusURL: prom.URL, Interval: interval, Window: time.Hour}
		})
		ns = newNamespace(ctx, c)
		for _, name := range []string{"web", "api"} {
			Expect(c.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}})).To(Succeed())
			Expect(c.Create(ctx, &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app": name},
					Annotations: map[string]string{object.AnnotationSidecarStatus: `{"containers":["istio-proxy"]}`}},
				Spec: corev1.PodSpec{ServiceAccountName: name, Containers: []corev1.Container{
					{Name: name, Image: "registry.example/" + name, Ports: []corev1.ContainerPort{{ContainerPort: 8080}}},
					{Name: "istio-proxy", Image: "registry.example/proxy"}}},
			})).To(Succeed())
			Expect(c.Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
				Spec: corev1.ServiceSpec{Selector: map[string]string{"app": name},
					Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}}})).To(Succeed())
		}
		metrics.connect(ns, "web", "api")
		Expect(c.Create(ctx, &v1alpha1.ServiceGraph{ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: ns},
			Spec: v1alpha1.ServiceGraphSpec{Services: []v1alpha1.Service{{Name: "web"}, {Name: "api"}}, Edges: []string{"web->api:8080"},
				Enforcement: v1alpha1.EnforcementAudit}})).To(Succeed())
	})

	It("is True while the graph allows every observed connection, and writes nothing while that holds", func() {
		sg := waitCovered(metav1.ConditionTrue, v1alpha1.ReasonTrafficCovered)
		Expect(covered(sg).Message).To(ContainSubstring("Enforce mode lets through all 1 connection observed in the last 1h"))
		Expect(readyAtCurrentGeneration(sg)).To(BeTrue())
		Expect(refusedMetric()).To(Equal(0.0))
		quiet() // the counter keeps counting; the condition does not change
	})

	It("goes False, naming the connection, when a series appears for one the graph refuses; Ready is unaffected", func() {
		metrics.connect(ns, "api", "web")
		sg := waitCovered(metav1.ConditionFalse, v1alpha1.ReasonObservedTrafficRefused)
		Expect(covered(sg).Message).To(And(
			ContainSubstring("Enforce mode would refuse 1 of the 2 connections observed in the last 1h"),
			ContainSubstring(ns+"/api -> "+ns+"/web TCP/8080 (~"), ContainSubstring("connections, refused at L4 by")))
		Expect(readyAtCurrentGeneration(sg)).To(BeTrue(), "Ready is the graph's own objects'")
		Expect(kstatusOf(sg)).To(Equal(kstatus.CurrentStatus))
		Expect(refusedMetric()).To(Equal(1.0))
		Eventually(func() []string { return eventReasons(ctx, c, ns, "shop") }, timeout, poll).Should(ContainElement(v1alpha1.ReasonObservedTrafficRefused))
	})

	It("goes True when the edge is added", func() {
		sg := graph()
		sg.Spec.Edges = append(sg.Spec.Edges, "api->web:8080")
		Expect(c.Update(ctx, sg)).To(Succeed())
		sg = waitCovered(metav1.ConditionTrue, v1alpha1.ReasonTrafficCovered)
		Expect(covered(sg).Message).To(ContainSubstring("all 2 connections"))
		Expect(readyAtCurrentGeneration(sg)).To(BeTrue())
		Expect(refusedMetric()).To(Equal(0.0))
		Eventually(func() int32 {
			var evs eventsv1.EventList
			Expect(c.List(ctx, &evs, client.InNamespace(ns))).To(Succeed())
			n := int32(0)
			for _, e := range evs.Items {
				if e.Regarding.Name == "shop" && e.Reason == v1alpha1.ReasonTrafficCovered {
					n++
					if e.Series != nil { // a repeat may be counted in the first one's series
						n += e.Series.Count - 1
					}
				}
			}
			return n
		}, timeout, poll).Should(Equal(int32(2)), "one for the first True, one for the way back")
	})

	It("goes Unknown when Prometheus is down, stays so without writing, and Ready stays True", func() {
		prom.Stop()
		sg := waitCovered(metav1.ConditionUnknown, v1alpha1.ReasonPrometheusUnreachable)
		Expect(covered(sg).Message).To(MatchRegexp(`^Prometheus has not answered since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ: prometheus: .*connection refused`))
		Expect(readyAtCurrentGeneration(sg)).To(BeTrue())
		Expect(refusedMetric()).To(Equal(-1.0), "no data, no value")
		Eventually(func() []string { return eventReasons(ctx, c, ns, "shop") }, timeout, poll).Should(ContainElement(v1alpha1.ReasonPrometheusUnreachable))
		quiet() // the failures go on; the message names the first, so the status stays as written
	})

	It("tells a graph created while Prometheus is down so, once a second query has failed", func() {
		other := newNamespace(ctx, c)
		Expect(c.Create(ctx, &v1alpha1.ServiceGraph{ObjectMeta: metav1.ObjectMeta{Name: "late", Namespace: other},
			Spec: v1alpha1.ServiceGraphSpec{Services: []v1alpha1.Service{{Name: "web"}, {Name: "api"}}, Edges: []string{"web->api:8080"}}})).To(Succeed())
		sg := waitGraph(ctx, c, other, "late", func(sg *v1alpha1.ServiceGraph) bool {
			return covered(sg).Reason == v1alpha1.ReasonPrometheusUnreachable
		})
		Expect(covered(sg).Status).To(Equal(metav1.ConditionUnknown))
		Expect(readyAtCurrentGeneration(sg)).To(BeTrue())
	})
})
