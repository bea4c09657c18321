package testenv

import (
	"context"
	"sort"

	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/compiler"
	"github.com/servicegraph/servicegraph-operator/internal/render"
)

// Ref names an object as a ServiceGraph's status lists it.
func Ref(kind, name string) v1alpha1.ObjectReference {
	return v1alpha1.ObjectReference{Kind: kind, Name: name}
}

// Generated reads every object of a namespace that carries the operator's graph label, keyed by
// kind and name.
func Generated(ctx context.Context, c client.Client, ns string) (map[v1alpha1.ObjectReference]client.Object, error) {
	out := map[v1alpha1.ObjectReference]client.Object{}
	for _, list := range []client.ObjectList{&networkingv1.NetworkPolicyList{}, &securityv1.PeerAuthenticationList{}, &securityv1.AuthorizationPolicyList{}} {
		if err := c.List(ctx, list, client.InNamespace(ns), client.HasLabels{compiler.LabelGraph}); err != nil {
			return nil, err
		}
		switch l := list.(type) {
		case *networkingv1.NetworkPolicyList:
			for i := range l.Items {
				out[Ref("NetworkPolicy", l.Items[i].Name)] = &l.Items[i]
			}
		case *securityv1.PeerAuthenticationList:
			for _, pa := range l.Items {
				out[Ref("PeerAuthentication", pa.Name)] = pa
			}
		case *securityv1.AuthorizationPolicyList:
			for _, ap := range l.Items {
				out[Ref("AuthorizationPolicy", ap.Name)] = ap
			}
		}
	}
	return out, nil
}

// Compiled is what the compiler wants for sg with Istio on, keyed by kind and name.
func Compiled(sg *v1alpha1.ServiceGraph) (map[v1alpha1.ObjectReference]client.Object, error) {
	res, err := compiler.Compile(sg, compiler.DefaultOptions())
	if err != nil {
		return nil, err
	}
	out := map[v1alpha1.ObjectReference]client.Object{}
	for _, obj := range res.Objects() {
		out[Ref(obj.GetObjectKind().GroupVersionKind().Kind, obj.GetName())] = obj
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
