package ssa

import (
	"strings"
	"testing"

	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/servicegraph/servicegraph-operator/internal/compiler"
	"github.com/servicegraph/servicegraph-operator/test/bench/graphgen"
)

// TestDigestMemo checks that a remembered digest is only ever the one specDigest would compute:
// a changed object is digested again, an unchanged one reuses its entry.
func TestDigestMemo(t *testing.T) {
	sg := graphgen.Graph("memo", "memo", 40, 1)
	res, err := compiler.Compile(sg, compiler.DefaultOptions(), compiler.Facts{})
	if err != nil {
		t.Fatal(err)
	}
	objs := res.Objects()
	if len(objs) < memoizeFrom {
		t.Fatalf("%d objects: too few to be memoized", len(objs))
	}
	owner := types.NamespacedName{Namespace: "memo", Name: "memo"}
	var m digestMemo
	check := func(run *memoRun, objs []compiler.Object) {
		t.Helper()
		for _, obj := range objs {
			got, err := run.digest(obj)
			want, err2 := specDigest(obj)
			if err != nil || err2 != nil || got != want {
				t.Fatalf("%s: memo digest %x, computed %x (%v, %v)", obj.GetName(), got[:4], want[:4], err, err2)
			}
		}
	}
	first := m.start(owner, len(objs))
	check(first, objs)
	m.finish(owner, first)
	if len(first.next) != len(objs) {
		t.Fatalf("remembered %d of %d objects", len(first.next), len(objs))
	}

	// Change one NetworkPolicy and one AuthorizationPolicy in place, as a new compile would.
	changed := map[string]bool{}
	for _, obj := range objs {
		switch o := obj.(type) {
		case *networkingv1.NetworkPolicy:
			if len(o.Spec.Ingress) > 0 && len(o.Spec.Ingress[0].Ports) > 0 && !anyOf(changed, "NetworkPolicy/") {
				// Appended to a copy: the compiler shares rule slices between objects.
				o.Spec.Ingress = append(o.Spec.Ingress[:len(o.Spec.Ingress):len(o.Spec.Ingress)],
					networkingv1.NetworkPolicyIngressRule{Ports: []networkingv1.NetworkPolicyPort{{Port: new(intstr.FromInt32(1))}}})
				changed["NetworkPolicy/"+o.Name] = true
			}
		case *securityv1.AuthorizationPolicy:
			if len(o.Spec.Rules) > 0 && len(o.Spec.Rules[0].From) > 0 && !anyOf(changed, "AuthorizationPolicy/") {
				o.Spec.Rules = append(o.Spec.Rules[1:len(o.Spec.Rules):len(o.Spec.Rules)], o.Spec.Rules[0])
				changed["AuthorizationPolicy/"+o.Name] = true
			}
		}
	}
	if len(changed) != 2 {
		t.Fatalf("changed %v", changed)
	}
	second := m.start(owner, len(objs))
	check(second, objs)
	for _, obj := range objs {
		gvk := obj.GetObjectKind().GroupVersionKind()
		key, name := gvk.Group+"/"+gvk.Kind+"/"+obj.GetName(), gvk.Kind+"/"+obj.GetName()
		if (second.next[key] == first.next[key]) == changed[name] {
			t.Errorf("%s: entry kept %v, changed %v", key, second.next[key] == first.next[key], changed[name])
		}
	}
	m.finish(owner, second)

	if m.start(owner, memoizeFrom-1) != nil || m.byOwner[owner] != nil {
		t.Error("a small graph is memoized, or its large past kept")
	}
}

func anyOf(changed map[string]bool, prefix string) bool {
	for name := range changed {
		if strings.HasPrefix(name, prefix) {
			return true
		}
	}
	return false
}
