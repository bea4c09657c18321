package controllers

import (
	"context"
	"slices"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/compiler"
)

// The API server keeps the addresses of Service default/kubernetes in an EndpointSlice of the same
// name. The operator reads that one object and nothing else of the namespace.
const apiServerSlice = "kubernetes"

// +kubebuilder:rbac:groups=discovery.k8s.io,resources=endpointslices,verbs=get;list;watch,namespace=default,resourceNames=kubernetes

// apiServerSliceCache caches the API server's EndpointSlice alone: a field selector on its name, so
// that the list and watch stay within the one resourceName the Role grants.
var apiServerSliceCache = cache.ByObject{
	Label:      labels.Everything(),
	Field:      fields.OneTermEqualSelector("metadata.name", apiServerSlice),
	Namespaces: map[string]cache.Config{metav1.NamespaceDefault: {}},
}

// needsAPIServer tells whether a graph has the API server as a peer, the only case in which its
// addresses are read.
func needsAPIServer(spec *v1alpha1.ServiceGraphSpec) bool {
	return slices.ContainsFunc(spec.External, func(x v1alpha1.External) bool { return x.KubernetesAPI })
}

// apiServer reads the API server's ready addresses and ports. None when the slice is missing: the
// NetworkPolicy then allows nothing to the API server rather than guessing.
func (r *ServiceGraphReconciler) apiServer(ctx context.Context) ([]compiler.APIServerEndpoint, error) {
	var slice discoveryv1.EndpointSlice
	err := r.Get(ctx, client.ObjectKey{Namespace: metav1.NamespaceDefault, Name: apiServerSlice}, &slice)
	if err != nil {
		return nil, client.IgnoreNotFound(err)
	}
	return compiler.APIServerEndpoints(&slice), nil
}

// graphsWithAPIServerPeer enqueues every graph that has the API server as a peer: its addresses
// changed.
func (r *ServiceGraphReconciler) graphsWithAPIServerPeer(ctx context.Context, _ client.Object) []reconcile.Request {
	var list v1alpha1.ServiceGraphList
	if err := r.List(ctx, &list); err != nil {
		logf.FromContext(ctx).Error(err, "listing ServiceGraphs")
		return nil
	}
	var reqs []reconcile.Request
	for _, sg := range list.Items {
		if needsAPIServer(&sg.Spec) {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&sg)})
		}
	}
	return reqs
}
