package compiler

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	securityv1 "istio.io/client-go/pkg/apis/security/v1"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/object"
)

func TestDecideMTLS(t *testing.T) {
	pods := []string{"legacy-0"}
	tests := []struct {
		name     string
		spec     v1alpha1.ServiceGraphSpec
		declared v1alpha1.MTLSMode
		meshOn   bool
		facts    Facts
		mode     v1alpha1.MTLSMode
		heldBack bool
		unmeshed bool
	}{
		{"STRICT, every pod meshed", v1alpha1.ServiceGraphSpec{}, v1alpha1.MTLSStrict, true, Facts{}, v1alpha1.MTLSStrict, false, false},
		{"PERMISSIVE asked for", v1alpha1.ServiceGraphSpec{MTLS: v1alpha1.MTLSPermissive}, v1alpha1.MTLSPermissive, true, Facts{Unmeshed: pods}, v1alpha1.MTLSPermissive, false, false},
		{"Audit is PERMISSIVE", v1alpha1.ServiceGraphSpec{Enforcement: v1alpha1.EnforcementAudit}, v1alpha1.MTLSStrict, true, Facts{Unmeshed: pods}, v1alpha1.MTLSPermissive, false, false},
		{"unmeshed pods hold a new graph at PERMISSIVE", v1alpha1.ServiceGraphSpec{}, v1alpha1.MTLSStrict, true, Facts{Unmeshed: pods}, v1alpha1.MTLSPermissive, true, true},
		{"unmeshed pods keep the mode in force", v1alpha1.ServiceGraphSpec{}, v1alpha1.MTLSStrict, true, Facts{Unmeshed: pods, MTLSInForce: v1alpha1.MTLSStrict}, v1alpha1.MTLSStrict, true, true},
		{"Warn applies STRICT anyway", v1alpha1.ServiceGraphSpec{MTLSPreflight: v1alpha1.MTLSPreflightWarn}, v1alpha1.MTLSStrict, true, Facts{Unmeshed: pods}, v1alpha1.MTLSStrict, false, true},
		{"no mesh: nothing to hold back", v1alpha1.ServiceGraphSpec{}, v1alpha1.MTLSStrict, false, Facts{Unmeshed: pods}, v1alpha1.MTLSStrict, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := decideMTLS(&tt.spec, tt.declared, tt.meshOn, tt.facts)
			if d.mode != tt.mode || d.heldBack != tt.heldBack || (len(d.unmeshed) > 0) != tt.unmeshed {
				t.Errorf("got %s held=%v unmeshed=%v, want %s held=%v unmeshed=%v", d.mode, d.heldBack, d.unmeshed, tt.mode, tt.heldBack, tt.unmeshed)
			}
		})
	}
}

// The plan is what the reconciler runs: allow, mTLS, deny, prune for a rollout; for Audit, the
// denies Enforce would hold are pruned first, then the rest, then the audit forms deny-first.
func TestSteps(t *testing.T) {
	describe := func(steps []Step) []string {
		var out []string
		for _, s := range steps {
			switch {
			case s.Prune && s.Only != nil:
				var only []string
				for ref := range s.Only {
					only = append(only, ref.Kind+"/"+ref.Name)
				}
				slices.Sort(only)
				out = append(out, "prune only "+strings.Join(only, " "))
			case s.Prune:
				out = append(out, "prune")
			default:
				out = append(out, "apply "+strings.Join(kindNames(s.Apply), " "))
			}
		}
		return out
	}
	enforce := mustCompile(t, readGraph(t, "testdata/input/seed.yaml"), DefaultOptions())
	want := []string{
		"apply AuthorizationPolicy/shop-svc-api AuthorizationPolicy/shop-svc-database NetworkPolicy/shop-allow-dns NetworkPolicy/shop-allow-istiod NetworkPolicy/shop-svc-api NetworkPolicy/shop-svc-database NetworkPolicy/shop-svc-web",
		"apply PeerAuthentication/shop",
		"apply AuthorizationPolicy/shop-deny-all NetworkPolicy/shop-default-deny",
		"prune",
	}
	if got := describe(enforce.Steps()); !slices.Equal(got, want) {
		t.Errorf("Enforce plan\n got %q\nwant %q", got, want)
	}
	audit := mustCompile(t, readGraph(t, "testdata/input/audit.yaml"), DefaultOptions())
	want = []string{
		"prune only AuthorizationPolicy/shop-deny-all NetworkPolicy/shop-default-deny",
		"prune",
		"apply AuthorizationPolicy/shop-deny-all",
		"apply PeerAuthentication/shop",
		"apply AuthorizationPolicy/shop-svc-api AuthorizationPolicy/shop-svc-database",
	}
	if got := describe(audit.Steps()); !slices.Equal(got, want) {
		t.Errorf("Audit plan\n got %q\nwant %q", got, want)
	}
	if audit.Enforce == nil || len(audit.Enforce.Objects()) != len(enforce.Objects()) || audit.Enforce.MTLSMode != v1alpha1.MTLSStrict {
		t.Errorf("Audit mode must carry what Enforce would apply, with the declared mode")
	}
	for _, obj := range audit.Objects() {
		if obj.GetAnnotations()[AnnotationDryRun] != "true" && obj.GetObjectKind().GroupVersionKind().Kind == "AuthorizationPolicy" {
			t.Errorf("%s is enforced in Audit mode", obj.GetName())
		}
	}
}

func TestFactsChangeTheResultNotTheGraph(t *testing.T) {
	sg := readGraph(t, "testdata/input/seed.yaml")
	before := sg.DeepCopy()
	held := mustCompile(t, sg, DefaultOptions(), Facts{Unmeshed: []string{"legacy"}})
	if held.MTLSMode != v1alpha1.MTLSPermissive || !held.MTLSHeldBack || len(held.Unmeshed) != 1 {
		t.Errorf("held back: mode %s held=%v unmeshed=%v", held.MTLSMode, held.MTLSHeldBack, held.Unmeshed)
	}
	if got := find[*securityv1.PeerAuthentication](t, held.Objects(), "shop").Spec.GetMtls().GetMode().String(); got != "PERMISSIVE" {
		t.Errorf("PeerAuthentication mode %s while held back", got)
	}
	if !reflect.DeepEqual(before, sg) {
		t.Error("Compile changed its input")
	}
	off := mustCompile(t, sg, DefaultOptions(), istioOff())
	if w := off.Waiting(); w != LayerIstio {
		t.Errorf("STRICT without Istio waits for %v", w)
	}
	if c := off.Counts(); len(c) != 1 || c[0].Kind != "NetworkPolicy" || c[0].Count != 5 {
		t.Errorf("counts without Istio %v", c)
	}
	sg.Spec.MTLS = v1alpha1.MTLSPermissive
	if w := mustCompile(t, sg, DefaultOptions(), istioOff()).Waiting(); w != nil {
		t.Errorf("PERMISSIVE without Istio waits for %s", w.Name)
	}
}

func TestRegistry(t *testing.T) {
	reg := NewRegistry(PeerAuthentications, NetworkPolicies, AuthorizationPolicies)
	var kinds []string
	for _, o := range reg {
		kinds = append(kinds, o.GVK.Kind)
	}
	if !slices.Equal(kinds, []string{"AuthorizationPolicy", "NetworkPolicy", "PeerAuthentication"}) {
		t.Errorf("registry order %v", kinds)
	}
	if got := reg.Conditions(); !slices.Equal(got, []string{v1alpha1.ConditionAuthorizationReady, v1alpha1.ConditionNetworkPoliciesReady, v1alpha1.ConditionMTLSReady}) {
		t.Errorf("conditions %v", got)
	}
	if got := reg.KindsOf(LayerIstio); len(got) != 2 || got[0].Kind != "AuthorizationPolicy" || got[1].Kind != "PeerAuthentication" {
		t.Errorf("Istio kinds %v", got)
	}
	if reg.For(NetworkPolicies.GroupKind()) != NetworkPolicies || reg.For(NetworkPolicies.GVK.GroupKind().WithVersion("v1").GroupKind()) == nil {
		t.Error("For")
	}
	calico := &Output{GVK: NetworkPolicies.GVK}
	calico.GVK.Group = "crd.projectcalico.org"
	if with := reg.With(calico); len(with) != 4 || with.For(calico.GroupKind()) != calico || with.For(NetworkPolicies.GroupKind()) != NetworkPolicies {
		t.Error("two NetworkPolicy kinds of different groups must stay apart")
	}
	for _, o := range Builtin() {
		if o.Layer == nil || o.Emit == nil || o.SpecEqual == nil || o.Describe == nil || o.Condition == "" {
			t.Errorf("%s: incomplete declaration", o.GVK.Kind)
		}
	}
	if ref := object.Ref(mustCompile(t, readGraph(t, "testdata/input/seed.yaml"), DefaultOptions()).Deny[1]); ref != (v1alpha1.ObjectReference{Group: "networking.k8s.io", Kind: "NetworkPolicy", Name: "shop-default-deny"}) {
		t.Errorf("ref %+v", ref)
	}
}
