package cli

import (
	"context"
	"testing"

	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/cilium"
)

// A live world reads Cilium's policies when the cluster serves cilium.io/v2, and reads the rest
// when it does not.
func TestReadWorldCilium(t *testing.T) {
	newScheme := func(withCilium bool) *runtime.Scheme {
		s := runtime.NewScheme()
		utilruntime.Must(clientgoscheme.AddToScheme(s))
		utilruntime.Must(securityv1.AddToScheme(s))
		utilruntime.Must(v1alpha1.AddToScheme(s))
		utilruntime.Must(gatewayv1.Install(s))
		if withCilium {
			utilruntime.Must(cilium.AddToScheme(s))
			s.AddKnownTypes(cilium.GroupVersion, &cilium.CiliumClusterwideNetworkPolicy{}, &cilium.CiliumClusterwideNetworkPolicyList{})
		}
		return s
	}

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}
	cnp := &cilium.CiliumNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "deny", Namespace: "shop"},
		Spec: &cilium.Rule{Ingress: []cilium.IngressRule{{}}}}
	ccnp := &cilium.CiliumClusterwideNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "baseline"},
		Spec: &cilium.Rule{Egress: []cilium.EgressRule{{}}}}
	// The API server serves what the scheme knows.
	served := func(s *runtime.Scheme) meta.RESTMapper {
		m := meta.NewDefaultRESTMapper(nil)
		for gvk := range s.AllKnownTypes() {
			scope := meta.RESTScopeNamespace
			if gvk.Kind == "Namespace" || gvk.Kind == "CiliumClusterwideNetworkPolicy" {
				scope = meta.RESTScopeRoot
			}
			m.Add(gvk, scope)
		}
		return m
	}
	for _, tc := range []struct {
		name        string
		client      client.Reader
		cnps, ccnps int
	}{
		{"not served", fake.NewClientBuilder().WithScheme(newScheme(false)).WithRESTMapper(served(newScheme(false))).WithObjects(ns).Build(), 0, 0},
		{"served", fake.NewClientBuilder().WithScheme(newScheme(true)).WithRESTMapper(served(newScheme(true))).WithObjects(ns, cnp, ccnp).Build(), 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, err := ReadWorld(context.Background(), tc.client, []string{"shop"})
			if err != nil {
				t.Fatal(err)
			}
			if len(w.cluster.CiliumNetworkPolicies) != tc.cnps || len(w.cluster.CiliumClusterwideNetworkPolicies) != tc.ccnps {
				t.Errorf("read %d CiliumNetworkPolicies and %d clusterwide, want %d and %d",
					len(w.cluster.CiliumNetworkPolicies), len(w.cluster.CiliumClusterwideNetworkPolicies), tc.cnps, tc.ccnps)
			}
		})
	}
}
