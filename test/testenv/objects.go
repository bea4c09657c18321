package testenv

import (
	"context"
	"sort"

	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/compiler"
	"github.com/servicegraph/servicegraph-operator/internal/object"
	"github.com/servicegraph/servicegraph-operator/internal/render"
)

// Ref names an object of one of the operator's own kinds as a ServiceGraph's status lists it.
func Ref(kind, name string) v1alpha1.ObjectReference {
	for _, o := range compiler.Builtin() {
		if o.GVK.Kind == kind {
			return v1alpha1.ObjectReference{Group: o.GVK.Group, Kind: kind, Name: name}
		}
	}
	return v1alpha1.ObjectReference{Kind: kind, Name: name}
}

// Generated reads every object of a namespace that carries the operator's graph label, keyed by
// group, kind and name, for every kind of outputs (the built-in ones when none are given).
func Generated(ctx context.Context, c client.Client, ns string, outputs ...*compiler.Output) (map[v1alpha1.ObjectReference]client.Object, error) {
	if len(outputs) == 0 {
		outputs = compiler.Builtin()
	}
	out := map[v1alpha1.ObjectReference]client.Object{}
	for _, o := range outputs {
		fresh, err := c.Scheme().New(o.GVK.GroupVersion().WithKind(o.GVK.Kind + "List"))
		if err != nil {
			return nil, err
		}
		list := fresh.(client.ObjectList)
		if err := c.List(ctx, list, client.InNamespace(ns), client.HasLabels{compiler.LabelGraph}); meta.IsNoMatchError(err) {
			continue // a kind the cluster does not serve has no objects
		} else if err != nil {
			return nil, err
		}
		items, err := meta.ExtractList(list)
		if err != nil {
			return nil, err
		}
		for _, item := range items {
			obj := item.(client.Object)
			out[v1alpha1.ObjectReference{Group: o.GVK.Group, Kind: o.GVK.Kind, Name: obj.GetName()}] = obj
		}
	}
	return out, nil
}

// Compiled is what the compiler wants for sg with Istio on, keyed by kind and name.
func Compiled(sg *v1alpha1.ServiceGraph) (map[v1alpha1.ObjectReference]client.Object, error) {
	return CompiledWith(sg, compiler.Facts{})
}

// CompiledWith is Compiled with facts of the cluster, such as the API server's addresses.
func CompiledWith(sg *v1alpha1.ServiceGraph, facts compiler.Facts) (map[v1alpha1.ObjectReference]client.Object, error) {
	res, err := compiler.Compile(sg, compiler.DefaultOptions(), facts)
	if err != nil {
		return nil, err
	}
	out := map[v1alpha1.ObjectReference]client.Object{}
	for _, obj := range res.Objects() {
		out[object.Ref(obj)] = obj
	}
	return out, nil
}

// Refs lists the keys of an object map, sorted.
func Refs[V any](objs map[v1alpha1.ObjectReference]V) []v1alpha1.ObjectReference {
	out := make([]v1alpha1.ObjectReference, 0, len(objs))
	for r := range objs {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Kind+out[i].Name < out[j].Kind+out[j].Name })
	return out
}

// SpecOf renders an object's spec in its JSON form, so tests compare a live and a compiled object
// field by field, independently of the typed comparison the operator makes.
func SpecOf(c client.Client, obj client.Object) (any, error) {
	gvk, err := apiutil.GVKForObject(obj, c.Scheme())
	if err != nil {
		return nil, err
	}
	obj.GetObjectKind().SetGroupVersionKind(gvk)
	u, err := render.ToUnstructured(obj)
	if err != nil {
		return nil, err
	}
	return u.Object["spec"], nil
}
