package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/compiler"
	"github.com/servicegraph/servicegraph-operator/test/testenv"
)

// objects are generated objects by kind and name, as the compiler returns them (testenv.Compiled).
type objects = map[v1alpha1.ObjectReference]client.Object

// generatedKinds are the kinds the operator generates (with Istio installed).
var generatedKinds = []schema.GroupVersionKind{
	networkingv1.SchemeGroupVersion.WithKind("NetworkPolicy"),
	securityv1.SchemeGroupVersion.WithKind("PeerAuthentication"),
	securityv1.SchemeGroupVersion.WithKind("AuthorizationPolicy"),
}

// compile compiles sg as the manager does (default options, Istio installed).
func compile(sg *v1alpha1.ServiceGraph) (*compiler.Result, error) {
	return compiler.Compile(sg, compiler.DefaultOptions(), compiler.Facts{})
}

// versions lists the objects of the generated kinds in a namespace with their resourceVersions,
// reading metadata only.
func (e *env) versions(ctx context.Context, ns string) (map[v1alpha1.ObjectReference]string, error) {
	out := map[v1alpha1.ObjectReference]string{}
	for _, gvk := range generatedKinds {
		list := &metav1.PartialObjectMetadataList{}
		list.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
		if err := e.k8s.List(ctx, list, client.InNamespace(ns)); err != nil {
			return nil, err
		}
		for _, item := range list.Items {
			out[testenv.Ref(gvk.Kind, item.Name)] = item.ResourceVersion
		}
	}
	return out, nil
}

// waitObjects polls until every wanted object exists in the namespace.
func (e *env) waitObjects(ctx context.Context, ns string, want objects) error {
	return poll(ctx, 5*time.Minute, 100*time.Millisecond, func(ctx context.Context) (bool, error) {
		have, err := e.versions(ctx, ns)
		if err != nil {
			return false, err
		}
		for r := range want {
			if _, ok := have[r]; !ok {
				return false, nil
			}
		}
		return true, nil
	})
}

// changed lists the objects that appeared, vanished or got a new resourceVersion: the objects
// written, since a write that changes nothing leaves the resourceVersion alone.
func changed(before, after map[v1alpha1.ObjectReference]string) []string {
	var out []string
	for r, v := range before {
		if after[r] != v {
			out = append(out, r.Kind+"/"+r.Name)
		}
	}
	for r := range after {
		if _, ok := before[r]; !ok {
			out = append(out, r.Kind+"/"+r.Name)
		}
	}
	slices.Sort(out)
	return out
}

// waitReady watches the graph until Ready=True for the given generation, at the top level of the
// status and on the condition, as kstatus and kubectl wait read it. A watch reports the moment
// the status is written without the cost of fetching a large graph over and over.
func (e *env) waitReady(ctx context.Context, key client.ObjectKey, generation int64) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	for ctx.Err() == nil {
		list := &v1alpha1.ServiceGraphList{}
		byName := client.MatchingFields{"metadata.name": key.Name}
		if err := e.k8s.List(ctx, list, client.InNamespace(key.Namespace), byName); err != nil {
			return err
		}
		if len(list.Items) == 1 && ready(&list.Items[0], generation) {
			return nil
		}
		w, err := e.k8s.Watch(ctx, &v1alpha1.ServiceGraphList{}, client.InNamespace(key.Namespace), byName,
			&client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: list.ResourceVersion}})
		if err != nil {
			return err
		}
		done := watchUntil(w, func(sg *v1alpha1.ServiceGraph) bool { return ready(sg, generation) })
		w.Stop()
		if done {
			return nil
		}
		// The watch ended (server timeout, compaction): list again and resume.
	}
	return fmt.Errorf("ServiceGraph %s not Ready at generation %d: %w", key, generation, ctx.Err())
}

// watchUntil reads events until cond holds for a graph (true) or the watch ends (false).
func watchUntil(w watch.Interface, cond func(*v1alpha1.ServiceGraph) bool) bool {
	for ev := range w.ResultChan() {
		if sg, ok := ev.Object.(*v1alpha1.ServiceGraph); ok && cond(sg) {
			return true
		}
	}
	return false
}

func ready(sg *v1alpha1.ServiceGraph, generation int64) bool {
	c := meta.FindStatusCondition(sg.Status.Conditions, v1alpha1.ConditionReady)
	return sg.Generation == generation && sg.Status.ObservedGeneration == generation &&
		c != nil && c.Status == metav1.ConditionTrue && c.ObservedGeneration == generation
}

func (e *env) createNamespace(ctx context.Context, name string) error {
	return e.k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
}

// deleteGenerated deletes a namespace's graphs and the objects of the generated kinds. The test
// control plane runs no garbage collector, so owner references alone would leave them behind, in
// the manager's cache.
func (e *env) deleteGenerated(ctx context.Context, ns string) error {
	if err := e.k8s.DeleteAllOf(ctx, &v1alpha1.ServiceGraph{}, client.InNamespace(ns)); err != nil {
		return err
	}
	for _, gvk := range generatedKinds {
		obj := &metav1.PartialObjectMetadata{}
		obj.SetGroupVersionKind(gvk)
		if err := e.k8s.DeleteAllOf(ctx, obj, client.InNamespace(ns)); err != nil {
			return err
		}
	}
	return nil
}
