package dataplane_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"

	"github.com/servicegraph/servicegraph-operator/test/dataplane"
)

// Hosts outside the cluster (network namespaces without a Pod object, so the enforcer knows them
// by address alone) and pods of another namespace, against a graph that names them as external
// peers.
var _ = Describe("External peers on real packets", func() {
	It("admits callers inside the allowed ranges and namespaces and no one else, and lets api reach only the allowed range", func() {
		const ns, monitoring = "outside", "outside-monitoring"
		tcp := func(n int32) dataplane.Port { return dataplane.Port{Number: n, Protocol: corev1.ProtocolTCP} }
		pod := func(namespace, name string, ports ...int32) *dataplane.Pod {
			p := &dataplane.Pod{Namespace: namespace, Name: name, Labels: map[string]string{"app": name}, ServiceAccount: name}
			for _, n := range append(ports, dataplane.UnusedPort) {
				p.Ports = append(p.Ports, tcp(n))
			}
			return p
		}
		web, api := pod(ns, "web", 8443, 8080, 9090), pod(ns, "api", 8080)
		prometheus, other := pod(monitoring, "prometheus"), pod(monitoring, "other")
		// lb is a load balancer's address; stranger an address outside every allowed range, and
		// excluded one inside a range but in its except; db a managed database.
		lb, stranger, excluded, db := pod("", "lb"), pod("", "stranger", 5432), pod("", "excluded"), pod("", "db", 5432)
		for _, h := range []*dataplane.Pod{lb, stranger, excluded, db} {
			h.Outside = true
		}
		all := []*dataplane.Pod{web, api, prometheus, other, lb, stranger, excluded, db}
		Expect(cluster.AddPods(ctx, all...)).To(Succeed())
		DeferCleanup(func() { Expect(cluster.RemovePods(ctx, all...)).To(Succeed()) })
		slash24 := func(p *dataplane.Pod) string { return p.Slot.IP[:strings.LastIndex(p.Slot.IP, ".")] + ".0/24" }

		graph := fmt.Sprintf(`apiVersion: policy.servicegraph.io/v1alpha1
kind: ServiceGraph
metadata:
  name: shop
  namespace: %s
spec:
  services:
  - name: web
  - name: api
  external:
  - name: lb
    cidrs: [%s, %s]
    except: [%s/32]
    unmeshed: true
  - name: monitoring
    namespaces:
      names: [%s]
      podSelector: {matchLabels: {app: prometheus}}
    unmeshed: true
  - name: managed-db
    cidrs: [%s]
  edges:
  - lb -> web:8443
  - monitoring -> web:9090
  - web -> api:8080
  - api -> managed-db:5432
`, ns, slash24(lb), slash24(excluded), excluded.Slot.IP, monitoring, slash24(db))
		file := filepath.Join(GinkgoT().TempDir(), "shop.yaml")
		Expect(os.WriteFile(file, []byte(graph), 0o600)).To(Succeed())
		kubectl("apply", "-f", file)
		kubectl("wait", "--for=condition=Ready", "servicegraph/shop", "-n", ns, "--timeout=60s")

		want := map[*dataplane.Pod]map[*dataplane.Pod][]int32{
			lb:         {web: {8443}},
			prometheus: {web: {9090}},
			web:        {api: {8080}},
			api:        {db: {5432}},
		}
		var probes []dataplane.Probe
		for _, from := range all {
			for _, to := range all {
				if from == to || from.Outside && to.Outside {
					continue // traffic between outside hosts never meets the cluster
				}
				for _, port := range to.Ports {
					probes = append(probes, dataplane.Probe{From: from, To: to, Port: port, Want: allowed(want, from, to, port.Number)})
				}
			}
		}
		results := expectVerdicts(probes)
		matrix, err := cluster.Matrix(ctx, results)
		Expect(err).NotTo(HaveOccurred())
		fmt.Fprintf(GinkgoWriter, "%s", matrix)
		// The cases, spelled out.
		for _, c := range []struct {
			from, to *dataplane.Pod
			port     int32
			want     bool
		}{
			{lb, web, 8443, true}, {stranger, web, 8443, false}, {excluded, web, 8443, false}, {lb, web, 8080, false},
			{api, db, 5432, true}, {api, stranger, 5432, false}, {web, db, 5432, false},
			{prometheus, web, 9090, true}, {other, web, 9090, false}, {prometheus, api, 8080, false},
		} {
			Expect(dataplane.Run([]dataplane.Probe{{From: c.from, To: c.to, Port: tcp(c.port), Want: c.want}})[0].Connected).To(Equal(c.want),
				"%s -> %s:%d", c.from.Name, c.to.Name, c.port)
		}
	})
})

// allowed reads the table of a spec: what the graph allows, and anything that stays out of the
// graph's namespace (no policy of it applies).
func allowed(want map[*dataplane.Pod]map[*dataplane.Pod][]int32, from, to *dataplane.Pod, port int32) bool {
	governed := func(p *dataplane.Pod) bool { return p.Namespace == "outside" }
	if !governed(from) && !governed(to) {
		return true
	}
	for _, n := range want[from][to] {
		if n == port {
			return true
		}
	}
	return false
}
