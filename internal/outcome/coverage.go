package outcome

import (
	"fmt"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/graph"
	"github.com/servicegraph/servicegraph-operator/internal/semantics"
)

// Coverage relates the namespace's pods (sorted by name) to the graph's local services; the pods of
// the waypoints the graph's services go through are covered too (the graph writes their policy).
func Coverage(g *graph.Graph, pods []metav1.PartialObjectMetadata, waypoints []string) *v1alpha1.Coverage {
	cov := &v1alpha1.Coverage{}
	covered := make([]bool, len(pods))
	for i, p := range pods {
		covered[i] = slices.Contains(waypoints, p.Labels[semantics.LabelGatewayName])
	}
	for _, svc := range g.Services {
		if !g.Local(&svc) {
			continue
		}
		sel := labels.SelectorFromSet(svc.Labels)
		sc := v1alpha1.ServiceCoverage{Name: svc.Name}
		for i, p := range pods {
			if sel.Matches(labels.Set(p.Labels)) {
				sc.Pods++
				covered[i] = true
			}
		}
		cov.Services = append(cov.Services, sc)
	}
	for i := range pods {
		if covered[i] {
			cov.CoveredPods++
			continue
		}
		cov.UncoveredPods++
		if len(cov.Uncovered) < NamedLimit {
			cov.Uncovered = append(cov.Uncovered, DescribePod(&pods[i]))
		}
	}
	return cov
}

// CoverageCondition summarises the coverage: gaps are worth a look but do not make a graph unready.
func CoverageCondition(cov *v1alpha1.Coverage) (metav1.ConditionStatus, string, string) {
	var empty []string
	for _, s := range cov.Services {
		if s.Pods == 0 {
			empty = append(empty, s.Name)
		}
	}
	var gaps []string
	if len(empty) > 0 {
		gaps = append(gaps, "services whose selector matches no pod (they protect nothing; check the selector): "+strings.Join(empty, ", "))
	}
	if cov.UncoveredPods > 0 {
		gaps = append(gaps, fmt.Sprintf("%d %s in no service (default-deny cuts them off): %s%s",
			cov.UncoveredPods, map[bool]string{true: "pod", false: "pods"}[cov.UncoveredPods == 1], strings.Join(cov.Uncovered, ", "), More(int(cov.UncoveredPods), len(cov.Uncovered))))
	}
	if len(gaps) == 0 {
		return metav1.ConditionTrue, v1alpha1.ReasonCovered,
			fmt.Sprintf("Every service matches pods and all %d pods belong to a service", cov.CoveredPods)
	}
	return metav1.ConditionFalse, v1alpha1.ReasonCoverageGaps, strings.Join(gaps, "; ")
}

// DescribePod names a pod and, when it has one, its controller ("web-1 (ReplicaSet/web-5d9f)").
func DescribePod(p *metav1.PartialObjectMetadata) string {
	if owner := metav1.GetControllerOfNoCopy(p); owner != nil {
		return fmt.Sprintf("%s (%s/%s)", p.Name, owner.Kind, owner.Name)
	}
	return p.Name
}

// SetDataplanes writes each local service's data plane into the coverage and their summary into
// the status: sidecar, ambient, none, or mixed when the services differ; nothing without Istio.
func SetDataplanes(sg *v1alpha1.ServiceGraph, dataplanes map[string]semantics.Dataplane) {
	sg.Status.Dataplane = ""
	if len(dataplanes) == 0 {
		return
	}
	if cov := sg.Status.Coverage; cov != nil {
		for i := range cov.Services {
			cov.Services[i].Dataplane = string(dataplanes[cov.Services[i].Name])
		}
	}
	for _, d := range dataplanes {
		switch {
		case sg.Status.Dataplane == "":
			sg.Status.Dataplane = string(d)
		case sg.Status.Dataplane != string(d):
			sg.Status.Dataplane = "mixed"
		}
	}
}
