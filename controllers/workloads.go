package controllers

import (
	"context"
	"slices"
	"strings"

	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/compiler"
	"github.com/servicegraph/servicegraph-operator/internal/object"
	"github.com/servicegraph/servicegraph-operator/internal/outcome"
)

// sidecarContainer is the name of Istio's injected container.
const sidecarContainer = "istio-proxy"

// facts gathers what the compiler needs to know about the cluster, and the namespace's pods.
// The mesh facts cost reads, so they are gathered only when STRICT mutual TLS is asked for and
// Istio is served.
func (r *ServiceGraphReconciler) facts(ctx context.Context, sg *v1alpha1.ServiceGraph) (compiler.Facts, []metav1.PartialObjectMetadata, error) {
	var facts compiler.Facts
	var err error
	if facts.Missing, err = r.APIs.Missing(ctx); err != nil {
		return facts, nil, err
	}
	if needsAPIServer(&sg.Spec) {
		if facts.APIServer, err = r.apiServer(ctx); err != nil {
			return facts, nil, err
		}
	}
	pods, err := r.podsOf(ctx, sg.Namespace)
	if err != nil || !layerOn(facts.Missing, r.outputs().KindsOf(compiler.LayerIstio)) {
		return facts, pods, err
	}
	if facts.Services, err = r.servicesOf(ctx, sg.Namespace); err != nil {
		return facts, pods, err
	}
	if err = r.ambientFacts(ctx, sg, &facts, pods); err != nil || !compiler.WantsStrict(&sg.Spec) {
		return facts, pods, err
	}
	if facts.Unmeshed, err = r.unmeshed(ctx, pods); err != nil || len(facts.Unmeshed) == 0 {
		return facts, pods, err
	}
	facts.MTLSInForce, err = r.mtlsInForce(ctx, sg)
	return facts, pods, err
}

func layerOn[T comparable](missing, kinds []T) bool {
	return !slices.ContainsFunc(kinds, func(k T) bool { return slices.Contains(missing, k) })
}

// servicesOf lists the Services of a namespace: their selectors and ports.
func (r *ServiceGraphReconciler) servicesOf(ctx context.Context, namespace string) ([]compiler.KubeService, error) {
	var list corev1.ServiceList
	if err := r.List(ctx, &list, client.InNamespace(namespace)); err != nil {
		return nil, err
	}
	out := make([]compiler.KubeService, len(list.Items))
	for i := range list.Items {
		out[i] = compiler.KubeServiceOf(&list.Items[i])
	}
	return out, nil
}

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
		if object.IstioMarked(p.Annotations) {
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
			out = append(out, outcome.DescribePod(&p))
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

// mtlsInForce reads the mode of the graph's own PeerAuthentication, "" when it has none.
func (r *ServiceGraphReconciler) mtlsInForce(ctx context.Context, sg *v1alpha1.ServiceGraph) (v1alpha1.MTLSMode, error) {
	var pa securityv1.PeerAuthentication
	// Read in full from the API server: the cache keeps generated objects' specs as digests, and
	// this is read only while some pods have no sidecar.
	err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: sg.Namespace, Name: sg.Name}, &pa)
	if err != nil || !metav1.IsControlledBy(&pa, sg) || pa.Spec.GetMtls() == nil {
		return "", client.IgnoreNotFound(err)
	}
	return v1alpha1.MTLSMode(pa.Spec.GetMtls().GetMode().String()), nil
}

// graphsOfNamespace enqueues the ServiceGraphs of an object's namespace: a pod coming, going or
// getting a sidecar changes their coverage and mTLS preflight; a Service's ports, what Istio reads
// of the protocols.
func (r *ServiceGraphReconciler) graphsOfNamespace(ctx context.Context, obj client.Object) []reconcile.Request {
	return r.graphsIn(ctx, obj.GetNamespace(), "")
}
