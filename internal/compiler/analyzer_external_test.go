package compiler

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"

	"github.com/servicegraph/servicegraph-operator/internal/object"
	"github.com/servicegraph/servicegraph-operator/test/world"
	"github.com/servicegraph/servicegraph-operator/test/world/analysis"
)

// The analyzer, over the external-peer graph of testdata/input/external.yaml with pods that match
// each namespace peer and pods next to them that do not: the connections it finds are the graph's
// edges to and from the peers' pods and addresses, exactly. (The admission pod next to the ingress
// controller, grafana next to Prometheus and a Prometheus in an unlabelled namespace get nothing.)
func TestAnalyzerExternalPeers(t *testing.T) {
	sg := readGraph(t, "testdata/input/external.yaml")
	observability := world.Namespace("monitoring")
	observability.Labels["team"] = "observability"
	objs := []object.Object{
		world.Namespace("kube-system"), world.Namespace("istio-system"), world.Namespace("shop"),
		world.Namespace("ingress-nginx"), world.Namespace("istio-ingress"), observability, world.Namespace("elsewhere"),
		world.Pod("kube-system", "kube-dns", map[string]string{"k8s-app": "kube-dns"}, 0),
		world.Pod("istio-system", "istiod", map[string]string{"app": "istiod"}, 1),
		world.Pod("shop", "web", map[string]string{"app": "web"}, 2),
		world.Pod("shop", "api", map[string]string{"app": "api"}, 3),
		world.Pod("shop", "database", map[string]string{"app": "database"}, 4),
		world.Pod("ingress-nginx", "controller", map[string]string{"app.kubernetes.io/name": "ingress-nginx"}, 5),
		world.Pod("ingress-nginx", "admission", map[string]string{"app.kubernetes.io/name": "admission"}, 6),
		world.Pod("istio-ingress", "gateway", map[string]string{"istio": "ingressgateway"}, 7),
		world.Pod("monitoring", "prometheus", map[string]string{"app": "prometheus"}, 8),
		world.Pod("monitoring", "grafana", map[string]string{"app": "grafana"}, 9),
		world.Pod("elsewhere", "prometheus", map[string]string{"app": "prometheus"}, 10),
	}
	opts := DefaultOptions()
	opts.ClusterCIDRs = []string{"10.0.0.0/16"} // the world's pods
	facts := Facts{APIServer: []APIServerEndpoint{{Address: "172.18.0.2", Port: 6443}}}
	for _, o := range mustCompile(t, sg, opts, facts).Objects() {
		if _, ok := o.(*networkingv1.NetworkPolicy); ok {
			objs = append(objs, o)
		}
	}
	got, err := analysis.Analyze(objs, []string{"shop"})
	if err != nil {
		t.Fatal(err)
	}
	got = analysis.MergeIPRanges(got)
	want := world.Connections{}
	tcp := corev1.ProtocolTCP
	for _, svc := range []string{"shop/web", "shop/api", "shop/database"} {
		want.Add(svc, world.DNSPod, corev1.ProtocolUDP, 53)
		want.Add(svc, world.DNSPod, tcp, 53)
		want.Add(svc, world.IstiodPod, tcp, 15012)
		want.Add(svc, world.IstiodPod, tcp, 15017)
	}
	want.Add("shop/web", "shop/api", tcp, 8080)
	want.Add("shop/api", "shop/database", tcp, 5432)
	want.Add("ingress-nginx/controller", "shop/web", tcp, 8080)
	want.Add("istio-ingress/gateway", "shop/web", tcp, 8080)
	want.Add("monitoring/prometheus", "shop/web", tcp, 9090)
	want.Add("monitoring/prometheus", "shop/api", tcp, 9090)
	// The load balancer's range without its except; api to the managed database, to the API
	// server's own address and port, and to stripe: every address but the cluster's pods.
	want["ip:203.0.113.0-203.0.113.127 -> shop/web TCP/8443"] = true
	want["shop/api -> ip:10.20.0.0-10.20.255.255 TCP/5432"] = true
	want["shop/api -> ip:172.18.0.2-172.18.0.2 TCP/6443"] = true
	want["shop/api -> ip:0.0.0.0-9.255.255.255 TCP/443"] = true
	want["shop/api -> ip:10.1.0.0-255.255.255.255 TCP/443"] = true
	if diff := cmp.Diff(want.Sorted(), got.Sorted()); diff != "" {
		t.Errorf("analyzer's allowed connections differ from the graph (-graph +analyzer):\n%s", diff)
	}
}
