package ssa

import (
	"encoding/json"
	"maps"
	"testing"

	securityv1beta1 "istio.io/api/security/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/controllers/summary"
	"github.com/servicegraph/servicegraph-operator/internal/compiler"
	"github.com/servicegraph/servicegraph-operator/internal/render"
)

// TestUpToDate checks the comparisons (typed, and by the digest of the cache's summary) that decides whether a live object is written: every
// difference the operator owns must count, and what the API server or others add must not.
func TestUpToDate(t *testing.T) {
	sg := &v1alpha1.ServiceGraph{
		ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: "shop"},
		Spec: v1alpha1.ServiceGraphSpec{
			Services: []v1alpha1.Service{{Name: "web"}, {Name: "api"}, {Name: "database"}},
			Edges:    []string{"web→api:8080", "api→database:5432/data"},
		},
	}
	res, err := compiler.Compile(sg, compiler.DefaultOptions(), compiler.Facts{})
	if err != nil {
		t.Fatal(err)
	}
	desired := map[string]client.Object{}
	for _, obj := range res.Objects() {
		desired[obj.GetObjectKind().GroupVersionKind().Kind+"/"+obj.GetName()] = obj
	}

	tests := []struct {
		name   string
		object string
		edit   func(client.Object)
		want   bool
	}{
		{"unchanged NetworkPolicy", "NetworkPolicy/shop-svc-api", func(client.Object) {}, true},
		{"unchanged AuthorizationPolicy", "AuthorizationPolicy/shop-svc-database", func(client.Object) {}, true},
		{"unchanged PeerAuthentication", "PeerAuthentication/shop", func(client.Object) {}, true},
		{"someone else's label and annotation", "NetworkPolicy/shop-svc-api", func(o client.Object) {
			labels := maps.Clone(o.GetLabels())
			labels["team"] = "payments"
			o.SetLabels(labels)
			o.SetAnnotations(map[string]string{"note": "x"})
		}, true},
		{"empty rule lists decoded as empty slices", "AuthorizationPolicy/shop-deny-all", func(o client.Object) {
			o.(*securityv1.AuthorizationPolicy).Spec.Rules = []*securityv1beta1.Rule{}
		}, true},
		{"graph label removed", "NetworkPolicy/shop-svc-api", func(o client.Object) {
			labels := maps.Clone(o.GetLabels())
			delete(labels, compiler.LabelGraph)
			o.SetLabels(labels)
		}, false},
		{"dry-run annotation no longer wanted", "AuthorizationPolicy/shop-svc-api", func(o client.Object) {
			o.SetAnnotations(map[string]string{compiler.AnnotationDryRun: "true"})
		}, false},
		{"NetworkPolicy port changed", "NetworkPolicy/shop-svc-api", func(o client.Object) {
			o.(*networkingv1.NetworkPolicy).Spec.Ingress[0].Ports[0].Port = new(intstr.FromInt32(9999))
		}, false},
		{"NetworkPolicy egress dropped", "NetworkPolicy/shop-svc-api", func(o client.Object) {
			o.(*networkingv1.NetworkPolicy).Spec.Egress = nil
		}, false},
		{"AuthorizationPolicy path changed", "AuthorizationPolicy/shop-svc-database", func(o client.Object) {
			o.(*securityv1.AuthorizationPolicy).Spec.Rules[0].To[0].Operation.Paths = []string{"/"}
		}, false},
		{"AuthorizationPolicy rule added", "AuthorizationPolicy/shop-deny-all", func(o client.Object) {
			o.(*securityv1.AuthorizationPolicy).Spec.Rules = []*securityv1beta1.Rule{{}}
		}, false},
		{"mutual TLS relaxed", "PeerAuthentication/shop", func(o client.Object) {
			o.(*securityv1.PeerAuthentication).Spec.Mtls.Mode = securityv1beta1.PeerAuthentication_MutualTLS_PERMISSIVE
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want, ok := desired[tt.object]
			if !ok {
				t.Fatalf("the compiler made no %s", tt.object)
			}
			have := want.DeepCopyObject().(client.Object)
			tt.edit(have)
			out := res.Outputs.Of(want)
			if got := metadataUpToDate(out, want, have) && out.SpecEqual(want, have.(compiler.Object)); got != tt.want {
				t.Errorf("typed: up to date = %v, want %v", got, tt.want)
			}
			live := asServed(t, have)
			digest, err := specDigest(want)
			if err != nil {
				t.Fatal(err)
			}
			if got := metadataUpToDate(out, want, live) && digest == live.Content; got != tt.want {
				t.Errorf("summary: up to date = %v, want %v", got, tt.want)
			}
		})
	}
	np, ap := desired["NetworkPolicy/shop-svc-api"], desired["AuthorizationPolicy/shop-svc-api"]
	if res.Outputs.Of(np).SpecEqual(np, ap) {
		t.Error("objects of different kinds compare equal")
	}
}

// asServed encodes obj as the API server sends it (a built-in kind in its Go struct's field order,
// a custom resource with sorted keys) and reads it back as the cache keeps it.
func asServed(t *testing.T, obj client.Object) *summary.Object {
	t.Helper()
	var data []byte
	var err error
	if clientgoscheme.Scheme.Recognizes(obj.GetObjectKind().GroupVersionKind()) {
		data, err = json.Marshal(obj)
	} else {
		var u *unstructured.Unstructured
		if u, err = render.ToUnstructured(obj); err == nil {
			data, err = json.Marshal(u.Object)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	var live summary.Object
	if err := json.Unmarshal(data, &live); err != nil {
		t.Fatal(err)
	}
	return &live
}
