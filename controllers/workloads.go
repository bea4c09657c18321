package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"

	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/graph"
)

const (
	// annotationSidecarStatus is set by Istio's sidecar injector on every injected pod.
	annotationSidecarStatus = "sidecar.istio.io/status"
	// annotationAmbient is set by Istio's CNI on pods enrolled in ambient mode.
	annotationAmbient = "ambient.istio.io/redirection"
	sidecarContainer  = "istio-proxy"
	// namedPodsLimit bounds the pods a message names.
	namedPodsLimit = 10
)

// podsOf lists the metadata of the pods of a namespace (the cache holds pod metadata only).
func (r *ServiceGraphReconciler) podsOf(ctx context.Context, namespace string) ([]metav1.PartialObjectMetadata, error) {
	var list metav1.PartialObjectMetadataList
	list.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("PodList"))
	if err := r.List(ctx, &list, client.InNamespace(namespace)); err != nil {
		return nil, err
	}
	slices.SortFunc(list.Items, func(a, b metav1.PartialObjectMetadata) int { return strings.Compare(a.Name, b.Name) })
	return list.Items, nil
}

// unmeshed names the pods that have no Istio sidecar and are not in ambient mode: under STRICT
// mutual TLS they would lose all inbound traffic. Injected pods carry the injector's annotation;
// only for pods without it is the pod read in full to look for an istio-proxy container.
func (r *ServiceGraphReconciler) unmeshed(ctx context.Context, pods []metav1.PartialObjectMetadata) ([]string, error) {
	var out []string
	for _, p := range pods {
		if p.Annotations[annotationSidecarStatus] != "" || p.Annotations[annotationAmbient] == "enabled" {
			continue
		}
		var pod corev1.Pod
		err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: p.Namespace, Name: p.Name}, &pod)
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if !hasSidecar(&pod) {
			out = append(out, describePod(&p))
		}
	}
	return out, nil
}

func hasSidecar(pod *corev1.Pod) bool {
	for _, c := range append(slices.Clone(pod.Spec.InitContainers), pod.Spec.Containers...) {
		if c.Name == sidecarContainer {
			return true
		}
	}
	return false
}

// describePod names a pod and, when it has one, its controller ("web-1 (ReplicaSet/web-5d9f)").
func describePod(p *metav1.PartialObjectMetadata) string {
	if owner := metav1.GetControllerOfNoCopy(p); owner != nil {
		return fmt.Sprintf("%s (%s/%s)", p.Name, owner.Kind, owner.Name)
	}
	return p.Name
}

// effectiveMTLS returns the graph as it may be applied now: when STRICT mutual TLS is asked for
// but pods are not in the mesh, Block keeps the mode in force (PERMISSIVE for a new graph).
func (r *ServiceGraphReconciler) effectiveMTLS(ctx context.Context, sg *v1alpha1.ServiceGraph, unmeshed []string) (*v1alpha1.ServiceGraph, error) {
	if len(unmeshed) == 0 || sg.Spec.MTLSPreflight == v1alpha1.MTLSPreflightWarn {
		return sg, nil
	}
	mode := v1alpha1.MTLSPermissive
	var pa securityv1.PeerAuthentication
	err := r.Get(ctx, client.ObjectKey{Namespace: sg.Namespace, Name: sg.Name}, &pa)
	if err == nil && metav1.IsControlledBy(&pa, sg) && pa.Spec.GetMtls() != nil {
		mode = v1alpha1.MTLSMode(pa.Spec.GetMtls().GetMode().String())
	} else if client.IgnoreNotFound(err) != nil {
		return nil, err
	}
	held := sg.DeepCopy()
	held.Spec.MTLS = mode
	return held, nil
}

// wantsStrictEnforced tells whether the spec asks for STRICT mutual TLS to be enforced.
func wantsStrictEnforced(sg *v1alpha1.ServiceGraph) bool {
	return sg.Spec.Enforcement != v1alpha1.EnforcementAudit && sg.Spec.MTLS != v1alpha1.MTLSPermissive
}

// coverage relates the namespace's pods to the graph's local services.
func coverage(g *graph.Graph, pods []metav1.PartialObjectMetadata) *v1alpha1.Coverage {
	cov := &v1alpha1.Coverage{}
	covered := make([]bool, len(pods))
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
		if len(cov.Uncovered) < namedPodsLimit {
			cov.Uncovered = append(cov.Uncovered, describePod(&pods[i]))
		}
	}
	return cov
}

// coverageCondition summarises the coverage: gaps are worth a look but do not make a graph unready.
func coverageCondition(cov *v1alpha1.Coverage) (metav1.ConditionStatus, string, string) {
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
		gaps = append(gaps, fmt.Sprintf("%d pods in no service (default-deny cuts them off): %s%s",
			cov.UncoveredPods, strings.Join(cov.Uncovered, ", "), more(int(cov.UncoveredPods), len(cov.Uncovered))))
	}
	if len(gaps) == 0 {
		return metav1.ConditionTrue, v1alpha1.ReasonCovered,
			fmt.Sprintf("Every service matches pods and all %d pods belong to a service", cov.CoveredPods)
	}
	return metav1.ConditionFalse, v1alpha1.ReasonCoverageGaps, strings.Join(gaps, "; ")
}

// more says how many items a truncated list left out.
func more(total, shown int) string {
	if total <= shown {
		return ""
	}
	return fmt.Sprintf(" and %d more", total-shown)
}

// graphsOfPod enqueues the ServiceGraphs of a pod's namespace: a pod coming, going or getting a
// sidecar changes their coverage and mTLS preflight.
func (r *ServiceGraphReconciler) graphsOfPod(ctx context.Context, pod client.Object) []reconcile.Request {
	return r.graphsIn(ctx, pod.GetNamespace(), "")
}
