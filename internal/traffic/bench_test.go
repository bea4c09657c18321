package traffic

import (
	"fmt"
	"strconv"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/compiler"
	"github.com/servicegraph/servicegraph-operator/internal/eval"
	"github.com/servicegraph/servicegraph-operator/internal/graph"
	"github.com/servicegraph/servicegraph-operator/test/bench/graphgen"
)

// benchWorld is a generated graph of n services (ten edges each), its workloads and Services,
// and a flow per edge as Istio's metrics give it (no port, the Service tells; HTTP edges with
// the path seen).
func benchWorld(b *testing.B, n int) (*v1alpha1.ServiceGraph, *Inventory, []Flow) {
	sg := graphgen.Graph("bench", "bench", n, 1)
	g, err := graph.Build(sg)
	if err != nil {
		b.Fatal(err)
	}
	inv := &Inventory{}
	for i, s := range sg.Spec.Services {
		port := int32(8080 + i%8)
		inv.Workloads = append(inv.Workloads, Workload{Namespace: "bench", Name: s.Name, Labels: map[string]string{"app": s.Name},
			ServiceAccount: s.Name, Meshed: true, Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: port}}})
		inv.Services = append(inv.Services, corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: s.Name, Namespace: "bench"},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": s.Name}, Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(port)}}}})
	}
	var flows []Flow
	for _, e := range g.Edges {
		f := Flow{From: Party{Namespace: "bench", Workload: e.From, Principal: "cluster.local/ns/bench/sa/" + e.From},
			To: Party{Namespace: "bench", Workload: e.To}, Service: e.To, Protocol: corev1.ProtocolTCP, Count: 10, Security: MutualTLS, Source: "bench"}
		if len(e.Paths) > 0 {
			f.HTTP, f.Paths, f.Methods = true, []string{"/api/items"}, []string{"GET"}
		}
		flows = append(flows, f)
	}
	return sg, inv, flows
}

func BenchmarkDiscover(b *testing.B) {
	for _, n := range []int{100, 1000} {
		_, inv, flows := benchWorld(b, n)
		b.Run(strconv.Itoa(n)+"-services", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if p := Discover(flows, inv, []string{"bench"}, t0)[0]; len(p.Edges) != len(flows) {
					b.Fatalf("%d edges for %d flows: %v", len(p.Edges), len(flows), p.TODO)
				}
			}
		})
	}
}

func BenchmarkAudit(b *testing.B) {
	for _, n := range []int{100, 1000} {
		sg, inv, flows := benchWorld(b, n)
		res, err := compiler.Compile(sg, compiler.DefaultOptions(), compiler.Facts{})
		if err != nil {
			b.Fatal(err)
		}
		c := &eval.Cluster{}
		for _, o := range res.Objects() {
			c.Add(o)
		}
		graphs := []*graph.Graph{res.Graph}
		b.Run(fmt.Sprintf("%d-services", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if r := Audit(flows, inv, c, graphs); !r.Covered() || len(r.Unused) > 0 || r.Allowed != len(flows) {
					b.Fatalf("%s", r.Text())
				}
			}
		})
	}
}
