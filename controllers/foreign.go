package controllers

import (
	"context"
	"slices"

	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/selection"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/controllers/summary"
	"github.com/servicegraph/servicegraph-operator/internal/cilium"
	"github.com/servicegraph/servicegraph-operator/internal/compiler"
	"github.com/servicegraph/servicegraph-operator/internal/eval"
	"github.com/servicegraph/servicegraph-operator/internal/outcome"
)

// foreignKinds are the kinds whose objects, written by anyone, can let through what a graph
// refuses: NetworkPolicies, CiliumNetworkPolicies (Cilium adds up the allow rules of both kinds)
// and Istio ALLOW policies add up, and a PeerAuthentication can loosen mutual TLS for a workload
// or a port. A kind is listed and watched only once the cluster serves it (see APIDetector.watch).
var foreignKinds = map[schema.GroupKind]func() client.ObjectList{
	{Group: "networking.k8s.io", Kind: "NetworkPolicy"}:       func() client.ObjectList { return &networkingv1.NetworkPolicyList{} },
	{Group: "cilium.io", Kind: "CiliumNetworkPolicy"}:         func() client.ObjectList { return &cilium.CiliumNetworkPolicyList{} },
	{Group: "security.istio.io", Kind: "PeerAuthentication"}:  func() client.ObjectList { return &securityv1.PeerAuthenticationList{} },
	{Group: "security.istio.io", Kind: "AuthorizationPolicy"}: func() client.ObjectList { return &securityv1.AuthorizationPolicyList{} },
}

// notOurs selects the objects without the operator's label.
var notOurs = func() labels.Selector {
	req, err := labels.NewRequirement(compiler.LabelManagedBy, selection.NotEquals, []string{compiler.ManagedByValue})
	if err != nil {
		panic(err) // a constant requirement
	}
	return labels.NewSelector().Add(*req)
}()

// ForeignCacheOptions make a second cache hold the names of the policies the operator did not
// generate, cluster-wide: enough to know which namespaces have any and to be told when they
// change. A graph whose namespace has some reads them in full
// from the API server when it reconciles (the manager's cache holds only the operator's own
// objects in full).
func ForeignCacheOptions() cache.Options {
	return cache.Options{
		DefaultLabelSelector: notOurs,
		// Only where an object is matters (its namespace, to enqueue the graphs there): the rest
		// of the metadata would cost more than the names.
		DefaultTransform: func(obj any) (any, error) {
			m, ok := obj.(*metav1.PartialObjectMetadata)
			if !ok {
				return obj, nil
			}
			return &metav1.PartialObjectMetadata{TypeMeta: m.TypeMeta,
				ObjectMeta: metav1.ObjectMeta{Name: m.Name, Namespace: m.Namespace, ResourceVersion: m.ResourceVersion}}, nil
		},
	}
}

// widenings judges the namespace's policies that the graph did not generate against the graph's
// objects: those without the operator's label (read from the API server when the foreign cache
// knows of any), and those wearing it that this graph does not control (a label is no proof of
// origin).
func (r *ServiceGraphReconciler) widenings(ctx context.Context, sg *v1alpha1.ServiceGraph, d *compiler.Result, missing []schema.GroupKind, pods []metav1.PartialObjectMetadata) ([]eval.Widening, error) {
	foreign := &eval.Cluster{}
	for _, o := range r.outputs() {
		newList, judged := foreignKinds[o.GroupKind()]
		if !judged || slices.Contains(missing, o.GroupKind()) {
			continue
		}
		known := &metav1.PartialObjectMetadataList{}
		known.SetGroupVersionKind(o.GVK.GroupVersion().WithKind(o.GVK.Kind + "List"))
		// Cache reads without copies: every reconcile makes them, the objects are only read, and a
		// big graph's namespace holds thousands.
		if err := r.Foreign.List(ctx, known, client.InNamespace(sg.Namespace), client.UnsafeDisableDeepCopy); err != nil {
			return nil, err
		}
		labelled, err := r.labelledNotControlled(ctx, sg, o.GVK)
		if err != nil {
			return nil, err
		}
		if len(known.Items) == 0 && !labelled {
			continue
		}
		// Both kinds of stranger are read in full: one list of the namespace's objects of the kind.
		list := newList()
		if err := r.APIReader.List(ctx, list, client.InNamespace(sg.Namespace)); err != nil {
			return nil, err
		}
		items, err := meta.ExtractList(list)
		if err != nil {
			return nil, err
		}
		for _, item := range items {
			if obj, ok := item.(client.Object); ok && !metav1.IsControlledBy(obj, sg) {
				foreign.Add(obj)
			}
		}
	}
	if len(foreign.NetworkPolicies)+len(foreign.CiliumNetworkPolicies)+len(foreign.PeerAuthentications)+len(foreign.AuthorizationPolicies) == 0 {
		return nil, nil
	}
	return outcome.GraphWidenings(d, r.Options.TrustDomain, pods, foreign), nil
}

// labelledNotControlled tells whether the namespace holds an object of kind gvk wearing the
// operator's label that sg does not control.
func (r *ServiceGraphReconciler) labelledNotControlled(ctx context.Context, sg *v1alpha1.ServiceGraph, gvk schema.GroupVersionKind) (bool, error) {
	summaries, err := r.Writer.Summaries.For(ctx, gvk)
	if err != nil {
		return false, err
	}
	list := summary.NewList(gvk)
	if err := summaries.List(ctx, list, client.InNamespace(sg.Namespace), client.UnsafeDisableDeepCopy); err != nil {
		return false, err
	}
	return slices.ContainsFunc(list.Items, func(o summary.Object) bool { return !metav1.IsControlledBy(&o, sg) }), nil
}
