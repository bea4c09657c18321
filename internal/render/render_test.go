package render

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/servicegraph/servicegraph-operator/internal/object"
	securityv1beta1 "istio.io/api/security/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func networkPolicy(name string) *networkingv1.NetworkPolicy {
	port := intstr.FromInt32(8080)
	return &networkingv1.NetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop", Labels: map[string]string{"b": "2", "a": "1"}},
		Spec: networkingv1.NetworkPolicySpec{
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress:     []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{{Port: &port}}}},
		},
	}
}

func authorizationPolicy(name string) *securityv1.AuthorizationPolicy {
	ap := &securityv1.AuthorizationPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "security.istio.io/v1", Kind: "AuthorizationPolicy"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop"},
	}
	ap.Spec.Rules = []*securityv1beta1.Rule{{To: []*securityv1beta1.Rule_To{{Operation: &securityv1beta1.Operation{Ports: []string{"8080"}}}}}}
	return ap
}

func TestToUnstructured(t *testing.T) {
	u, err := ToUnstructured(networkPolicy("np"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"apiVersion": "networking.k8s.io/v1",
		"kind":       "NetworkPolicy",
		"metadata":   map[string]any{"name": "np", "namespace": "shop", "labels": map[string]any{"a": "1", "b": "2"}},
		"spec": map[string]any{
			"podSelector": map[string]any{},
			"policyTypes": []any{"Ingress"},
			"ingress":     []any{map[string]any{"ports": []any{map[string]any{"port": int64(8080)}}}},
		},
	}
	if diff := cmp.Diff(want, u.Object); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	_ = u.DeepCopy() // panics on values unstructured cannot hold, such as float64
}

// Istio specs are protobuf messages: only their own MarshalJSON encodes them (camelCase fields, no
// internal state), and the status the client-go type always carries is dropped.
func TestToUnstructuredIstio(t *testing.T) {
	u, err := ToUnstructured(authorizationPolicy("ap"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"rules": []any{map[string]any{"to": []any{map[string]any{"operation": map[string]any{"ports": []any{"8080"}}}}}}}
	if diff := cmp.Diff(want, u.Object["spec"]); diff != "" {
		t.Errorf("spec (-want +got):\n%s", diff)
	}
	if _, ok := u.Object["status"]; ok {
		t.Error("status was kept")
	}
	empty, err := ToUnstructured(&securityv1.AuthorizationPolicy{TypeMeta: metav1.TypeMeta{APIVersion: "security.istio.io/v1", Kind: "AuthorizationPolicy"}})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]any{}, empty.Object["spec"]); diff != "" {
		t.Errorf("an empty spec must stay an empty object (Istio's allow-nothing):\n%s", diff)
	}
}

func TestToUnstructuredNeedsKind(t *testing.T) {
	np := networkPolicy("np")
	np.TypeMeta = metav1.TypeMeta{}
	if _, err := ToUnstructured(np); err == nil {
		t.Error("an object without kind must not convert")
	}
}

func TestYAML(t *testing.T) {
	out, err := YAML([]object.Object{networkPolicy("b"), authorizationPolicy("a")})
	if err != nil {
		t.Fatal(err)
	}
	want := `---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  labels:
    a: "1"
    b: "2"
  name: b
  namespace: shop
spec:
  ingress:
  - ports:
    - port: 8080
  podSelector: {}
  policyTypes:
  - Ingress
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: a
  namespace: shop
spec:
  rules:
  - to:
    - operation:
        ports:
        - "8080"
`
	if diff := cmp.Diff(want, string(out)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if empty, err := YAML(nil); err != nil || len(empty) != 0 {
		t.Errorf("YAML(nil) = %q, %v", empty, err)
	}
}

func TestJSON(t *testing.T) {
	out, err := JSON([]object.Object{networkPolicy("b"), authorizationPolicy("a")})
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		APIVersion, Kind string
		Items            []struct{ Kind string }
	}
	if err := json.Unmarshal(out, &list); err != nil {
		t.Fatal(err)
	}
	if list.APIVersion != "v1" || list.Kind != "List" || len(list.Items) != 2 || list.Items[0].Kind != "NetworkPolicy" {
		t.Errorf("JSON list %+v", list)
	}
	if !strings.HasSuffix(string(out), "}\n") {
		t.Error("JSON output must end with a newline")
	}
}
