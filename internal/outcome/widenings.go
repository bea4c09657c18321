package outcome

import (
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/compiler"
	"github.com/servicegraph/servicegraph-operator/internal/eval"
	"github.com/servicegraph/servicegraph-operator/internal/graph"
	"github.com/servicegraph/servicegraph-operator/internal/object"
)

// GraphWidenings judges the foreign policies of a compiled graph's namespace against its objects,
// the namespace running the graph's local services and the pods no service selects (known by
// their labels and whether Istio injected them). The operator and the linter both ask it.
func GraphWidenings(d *compiler.Result, trustDomain string, pods []metav1.PartialObjectMetadata, foreign *eval.Cluster) []eval.Widening {
	base := &eval.Cluster{TrustDomain: trustDomain}
	for _, obj := range d.Objects() {
		base.Add(obj)
	}
	g := d.Graph
	var workloads []*eval.Workload
	for i := range g.Services {
		if s := &g.Services[i]; g.Local(s) {
			workloads = append(workloads, &eval.Workload{Namespace: s.Namespace, Name: s.Name, Labels: s.Labels, ServiceAccount: s.ServiceAccount,
				Meshed: g.Mesh == v1alpha1.MeshIstio})
		}
	}
	for _, p := range pods {
		if p.Namespace != g.Namespace || slices.ContainsFunc(g.Services, func(s graph.Service) bool { return g.Local(&s) && compiler.Selects(s.Labels, p.Labels) }) {
			continue
		}
		workloads = append(workloads, &eval.Workload{Namespace: p.Namespace, Name: p.Name, Labels: p.Labels,
			Meshed: object.IstioMarked(p.Annotations)})
	}
	return eval.Widenings(base, g.Namespace, workloads, foreign)
}
