package outcome

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/change"
	"github.com/servicegraph/servicegraph-operator/internal/compiler"
)

// cond is one expected condition: its status and reason, and a part of its message.
type cond struct {
	status  metav1.ConditionStatus
	reason  string
	message string
}

// readyBefore is a graph whose previous generation was Ready with its seed objects.
func readyBefore(t *testing.T) *v1alpha1.ServiceGraph {
	sg := seed()
	f := findings(t, seed(), compiler.Facts{})
	sg.Generation = 1
	SetStatus(sg, f, Classify(f))
	sg.Generation = 2
	return sg
}

func TestSetStatus(t *testing.T) {
	tests := []struct {
		name   string
		before func(t *testing.T) *v1alpha1.ServiceGraph
		f      Findings
		want   map[string]*cond // nil: the condition is absent
		check  func(t *testing.T, s v1alpha1.ServiceGraphStatus)
	}{
		{name: "converged", before: func(*testing.T) *v1alpha1.ServiceGraph { return seed() }, f: findings(t, seed(), compiler.Facts{}),
			want: map[string]*cond{
				v1alpha1.ConditionReady:                {metav1.ConditionTrue, v1alpha1.ReasonReconciled, "10 objects applied"},
				v1alpha1.ConditionNetworkPoliciesReady: {metav1.ConditionTrue, v1alpha1.ReasonApplied, "6 NetworkPolicies applied, default-deny included"},
				v1alpha1.ConditionMTLSReady:            {metav1.ConditionTrue, v1alpha1.ReasonApplied, "PeerAuthentication applied with mode STRICT"},
				v1alpha1.ConditionAuthorizationReady:   {metav1.ConditionTrue, v1alpha1.ReasonApplied, "3 AuthorizationPolicies applied, allow-nothing included"},
				v1alpha1.ConditionReconciling:          nil,
				v1alpha1.ConditionStalled:              nil,
			},
			check: func(t *testing.T, s v1alpha1.ServiceGraphStatus) {
				want := []v1alpha1.KindCount{
					{Group: "security.istio.io", Kind: "AuthorizationPolicy", Count: 3},
					{Group: "networking.k8s.io", Kind: "NetworkPolicy", Count: 6},
					{Group: "security.istio.io", Kind: "PeerAuthentication", Count: 1},
				}
				if !equal(s.Counts, want) || len(s.GeneratedObjects) != 10 || s.MTLS != v1alpha1.MTLSStrict || s.Edges != 2 || s.Services != 3 || s.Plan != nil {
					t.Errorf("summary: %+v", s)
				}
				if len(s.Callers) != 2 || s.Callers[1].Service != "database" || s.Callers[1].From[0] != "api on 5432/data" {
					t.Errorf("callers: %+v", s.Callers)
				}
				if s.GeneratedObjects[0] != (v1alpha1.ObjectReference{Group: "security.istio.io", Kind: "AuthorizationPolicy", Name: "shop-svc-api"}) {
					t.Errorf("first object %+v", s.GeneratedObjects[0])
				}
			}},
		{name: "invalid spec keeps the last good summary", before: readyBefore,
			f: Findings{Outputs: compiler.Builtin(), CompileErr: errors.New("bad edge")},
			want: map[string]*cond{
				v1alpha1.ConditionReady:                {metav1.ConditionFalse, v1alpha1.ReasonInvalidSpec, "bad edge"},
				v1alpha1.ConditionStalled:              {metav1.ConditionTrue, v1alpha1.ReasonInvalidSpec, "bad edge"},
				v1alpha1.ConditionNetworkPoliciesReady: {metav1.ConditionFalse, v1alpha1.ReasonInvalidSpec, "bad edge"},
				v1alpha1.ConditionMTLSReady:            {metav1.ConditionFalse, v1alpha1.ReasonInvalidSpec, "bad edge"},
				v1alpha1.ConditionAuthorizationReady:   {metav1.ConditionFalse, v1alpha1.ReasonInvalidSpec, "bad edge"},
				v1alpha1.ConditionReconciling:          nil,
			},
			check: func(t *testing.T, s v1alpha1.ServiceGraphStatus) {
				if len(s.GeneratedObjects) != 10 || len(s.Counts) != 3 {
					t.Errorf("last good inventory lost: %+v", s)
				}
			}},
		{name: "a transient failure does not flap Ready", before: readyBefore,
			f: findings(t, seed(), compiler.Facts{}, func(f *Findings) { f.Err = errTransient }),
			want: map[string]*cond{
				v1alpha1.ConditionReady:       {metav1.ConditionTrue, v1alpha1.ReasonReconciled, "10 objects applied"},
				v1alpha1.ConditionReconciling: {metav1.ConditionTrue, v1alpha1.ReasonApplyFailed, "leader changed"},
				v1alpha1.ConditionStalled:     nil,
			}},
		{name: "a transient failure on a new graph", before: func(*testing.T) *v1alpha1.ServiceGraph { return seed() },
			f: Findings{Outputs: compiler.Builtin(), Err: errTransient},
			want: map[string]*cond{
				v1alpha1.ConditionReady:       {metav1.ConditionFalse, v1alpha1.ReasonApplyFailed, "Retrying after an error"},
				v1alpha1.ConditionReconciling: {metav1.ConditionTrue, v1alpha1.ReasonApplyFailed, "leader changed"},
			}},
		{name: "a conflict is reported on its kind only", before: func(*testing.T) *v1alpha1.ServiceGraph { return seed() },
			f: findings(t, seed(), compiler.Facts{}, func(f *Findings) {
				f.Changes.Conflicts = []change.Conflict{{Ref: v1alpha1.ObjectReference{Group: "security.istio.io", Kind: "PeerAuthentication", Name: "mesh"}, Cause: change.NamespaceWide}}
			}),
			want: map[string]*cond{
				v1alpha1.ConditionReady:                {metav1.ConditionFalse, v1alpha1.ReasonConflict, "PeerAuthentication/mesh is namespace-wide"},
				v1alpha1.ConditionStalled:              {metav1.ConditionTrue, v1alpha1.ReasonConflict, "Objects in the way"},
				v1alpha1.ConditionMTLSReady:            {metav1.ConditionFalse, v1alpha1.ReasonConflict, "PeerAuthentication/mesh is namespace-wide and not managed by this ServiceGraph"},
				v1alpha1.ConditionNetworkPoliciesReady: {metav1.ConditionTrue, v1alpha1.ReasonApplied, ""},
				v1alpha1.ConditionReconciling:          nil,
			},
			check: func(t *testing.T, s v1alpha1.ServiceGraphStatus) {
				if s.GeneratedObjects != nil {
					t.Errorf("an incomplete rollout lists its objects: %v", s.GeneratedObjects)
				}
			}},
		{name: "a protocol mismatch", before: func(*testing.T) *v1alpha1.ServiceGraph { return seed() }, f: findings(t, seed(), tcpDatabase),
			want: map[string]*cond{
				v1alpha1.ConditionReady:              {metav1.ConditionFalse, v1alpha1.ReasonProtocolMismatch, "Callers refused by Istio: edge api->shop/database:5432/data"},
				v1alpha1.ConditionStalled:            {metav1.ConditionTrue, v1alpha1.ReasonProtocolMismatch, ""},
				v1alpha1.ConditionAuthorizationReady: {metav1.ConditionFalse, v1alpha1.ReasonProtocolMismatch, "name the port http-"},
				v1alpha1.ConditionReconciling:        nil,
			},
			check: func(t *testing.T, s v1alpha1.ServiceGraphStatus) {
				if len(s.GeneratedObjects) != 10 {
					t.Errorf("the objects are applied and listed: %v", s.GeneratedObjects)
				}
			}},
		{name: "without Istio", before: func(*testing.T) *v1alpha1.ServiceGraph { return seed() }, f: findings(t, seed(), noIstio),
			want: map[string]*cond{
				v1alpha1.ConditionReady:                {metav1.ConditionFalse, v1alpha1.ReasonIstioNotInstalled, "waiting for Istio"},
				v1alpha1.ConditionReconciling:          {metav1.ConditionTrue, v1alpha1.ReasonIstioNotInstalled, ""},
				v1alpha1.ConditionNetworkPoliciesReady: {metav1.ConditionTrue, v1alpha1.ReasonApplied, "5 NetworkPolicies"},
				v1alpha1.ConditionMTLSReady:            {metav1.ConditionFalse, v1alpha1.ReasonIstioNotInstalled, "security.istio.io/v1 API is not served"},
				v1alpha1.ConditionAuthorizationReady:   {metav1.ConditionFalse, v1alpha1.ReasonIstioNotInstalled, ""},
			},
			check: func(t *testing.T, s v1alpha1.ServiceGraphStatus) {
				if !equal(s.Counts, []v1alpha1.KindCount{{Group: "networking.k8s.io", Kind: "NetworkPolicy", Count: 5}}) {
					t.Errorf("counts %v", s.Counts)
				}
			}},
		{name: "mesh None", before: func(*testing.T) *v1alpha1.ServiceGraph { return seed() }, f: findings(t, seed(meshNone), noIstio),
			want: map[string]*cond{
				v1alpha1.ConditionReady:                {metav1.ConditionTrue, v1alpha1.ReasonReconciled, "spec.mesh is None"},
				v1alpha1.ConditionNetworkPoliciesReady: {metav1.ConditionTrue, v1alpha1.ReasonApplied, "5 NetworkPolicies"},
				v1alpha1.ConditionMTLSReady:            {metav1.ConditionTrue, v1alpha1.ReasonMeshNone, "not generated"},
				v1alpha1.ConditionAuthorizationReady:   {metav1.ConditionTrue, v1alpha1.ReasonMeshNone, "not generated"},
				v1alpha1.ConditionReconciling:          nil,
			},
			check: func(t *testing.T, s v1alpha1.ServiceGraphStatus) {
				if s.Mesh != v1alpha1.MeshNone || s.MTLS != "" || !equal(s.Counts, []v1alpha1.KindCount{{Group: "networking.k8s.io", Kind: "NetworkPolicy", Count: 5}}) {
					t.Errorf("status %+v", s)
				}
			}},
		{name: "Cilium without a mesh", before: func(*testing.T) *v1alpha1.ServiceGraph { return seed() }, f: findings(t, seed(meshNone, ciliumPolicies), noIstio),
			want: map[string]*cond{
				v1alpha1.ConditionReady:                {metav1.ConditionTrue, v1alpha1.ReasonReconciled, "CiliumNetworkPolicies only (paths and methods as Cilium's HTTP rules)"},
				v1alpha1.ConditionNetworkPoliciesReady: {metav1.ConditionTrue, v1alpha1.ReasonApplied, "5 CiliumNetworkPolicies applied, default-deny included"},
				v1alpha1.ConditionMTLSReady:            {metav1.ConditionTrue, v1alpha1.ReasonMeshNone, "not generated"},
				v1alpha1.ConditionReconciling:          nil,
			},
			check: func(t *testing.T, s v1alpha1.ServiceGraphStatus) {
				if !equal(s.Counts, []v1alpha1.KindCount{{Group: "cilium.io", Kind: "CiliumNetworkPolicy", Count: 5}}) {
					t.Errorf("counts %v", s.Counts)
				}
			}},
		{name: "Cilium asked for, not served: NetworkPolicies meanwhile", before: func(*testing.T) *v1alpha1.ServiceGraph { return seed() },
			f: findings(t, seed(ciliumPolicies), noCilium),
			want: map[string]*cond{
				v1alpha1.ConditionReady:                {metav1.ConditionFalse, v1alpha1.ReasonCiliumNotServed, "Kubernetes NetworkPolicies enforce the graph at layer 3/4 meanwhile"},
				v1alpha1.ConditionNetworkPoliciesReady: {metav1.ConditionFalse, v1alpha1.ReasonCiliumNotServed, "not served in this cluster"},
				v1alpha1.ConditionReconciling:          {metav1.ConditionTrue, v1alpha1.ReasonCiliumNotServed, ""},
			},
			check: func(t *testing.T, s v1alpha1.ServiceGraphStatus) {
				if !slices.ContainsFunc(s.Counts, func(k v1alpha1.KindCount) bool { return k.Kind == "NetworkPolicy" && k.Count == 6 }) {
					t.Errorf("counts %v", s.Counts)
				}
			}},
		{name: "Kubernetes NetworkPolicies where Cilium is not served", before: func(*testing.T) *v1alpha1.ServiceGraph { return seed() }, f: findings(t, seed(), noCilium),
			want: map[string]*cond{
				v1alpha1.ConditionReady:                {metav1.ConditionTrue, v1alpha1.ReasonReconciled, "10 objects applied"},
				v1alpha1.ConditionNetworkPoliciesReady: {metav1.ConditionTrue, v1alpha1.ReasonApplied, "6 NetworkPolicies applied"},
			}},
		{name: "STRICT held back", before: func(*testing.T) *v1alpha1.ServiceGraph { return seed() }, f: findings(t, seed(), unmeshed),
			want: map[string]*cond{
				v1alpha1.ConditionReady:     {metav1.ConditionFalse, v1alpha1.ReasonUnmeshedWorkloads, "held back"},
				v1alpha1.ConditionMTLSReady: {metav1.ConditionFalse, v1alpha1.ReasonUnmeshedWorkloads, "legacy-0 (ReplicaSet/legacy)"},
			},
			check: func(t *testing.T, s v1alpha1.ServiceGraphStatus) {
				if s.MTLS != v1alpha1.MTLSPermissive {
					t.Errorf("mode in force %s", s.MTLS)
				}
			}},
		{name: "STRICT under Warn", before: func(*testing.T) *v1alpha1.ServiceGraph { return seed() }, f: findings(t, seed(warn), unmeshed),
			want: map[string]*cond{
				v1alpha1.ConditionReady:     {metav1.ConditionTrue, v1alpha1.ReasonReconciled, ""},
				v1alpha1.ConditionMTLSReady: {metav1.ConditionFalse, v1alpha1.ReasonUnmeshedWorkloads, "STRICT mTLS applied (mtlsPreflight: Warn)"},
			}},
		{name: "Audit mode", before: func(*testing.T) *v1alpha1.ServiceGraph { return seed() }, f: findings(t, seed(audit), compiler.Facts{}),
			want: map[string]*cond{
				v1alpha1.ConditionReady:                {metav1.ConditionTrue, v1alpha1.ReasonReconciled, "Audit mode: 4 objects applied"},
				v1alpha1.ConditionNetworkPoliciesReady: {metav1.ConditionTrue, v1alpha1.ReasonAudit, "no NetworkPolicy applied (Enforce would apply 6)"},
				v1alpha1.ConditionMTLSReady:            {metav1.ConditionTrue, v1alpha1.ReasonAudit, "mode PERMISSIVE"},
				v1alpha1.ConditionAuthorizationReady:   {metav1.ConditionTrue, v1alpha1.ReasonAudit, "3 AuthorizationPolicies applied in dry-run"},
			},
			check: func(t *testing.T, s v1alpha1.ServiceGraphStatus) {
				exists := 0
				for _, p := range s.Plan {
					if p.Exists != (p.Kind != "NetworkPolicy") {
						t.Errorf("plan entry %+v", p)
					}
					if p.Exists {
						exists++
					}
				}
				if len(s.Plan) != 10 || exists != 4 || s.Enforcement != v1alpha1.EnforcementAudit {
					t.Errorf("plan %+v", s.Plan)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sg := tt.before(t)
			SetStatus(sg, tt.f, Classify(tt.f))
			if sg.Status.ObservedGeneration != sg.Generation {
				t.Errorf("observedGeneration %d, generation %d", sg.Status.ObservedGeneration, sg.Generation)
			}
			for _, c := range sg.Status.Conditions {
				// Ready kept through a transient failure keeps the generation it was computed at.
				kept := c.Type == v1alpha1.ConditionReady && tt.f.Err != nil && !tt.f.Rejected
				if c.ObservedGeneration != sg.Generation && tt.want[c.Type] != nil && !kept {
					t.Errorf("%s: observedGeneration %d", c.Type, c.ObservedGeneration)
				}
			}
			for condType, want := range tt.want {
				got := meta.FindStatusCondition(sg.Status.Conditions, condType)
				switch {
				case want == nil && got != nil:
					t.Errorf("%s present: %+v", condType, *got)
				case want == nil:
				case got == nil:
					t.Errorf("%s missing", condType)
				case got.Status != want.status || got.Reason != want.reason || !strings.Contains(got.Message, want.message):
					t.Errorf("%s = %s %s %q, want %s %s ~%q", condType, got.Status, got.Reason, got.Message, want.status, want.reason, want.message)
				}
			}
			if tt.check != nil {
				tt.check(t, sg.Status)
			}
		})
	}
}

func TestMarkReconciling(t *testing.T) {
	if small := seed(); MarkReconciling(small) {
		t.Errorf("a new graph of %d services marked: its one status write is the converged one", len(small.Spec.Services))
	}
	sg := seed()
	for i := len(sg.Spec.Services); i <= QuickGraphServices; i++ {
		sg.Spec.Services = append(sg.Spec.Services, v1alpha1.Service{Name: fmt.Sprintf("extra-%d", i)})
	}
	if !MarkReconciling(sg) {
		t.Fatal("first visit of a large graph changed nothing")
	}
	if c := meta.FindStatusCondition(sg.Status.Conditions, v1alpha1.ConditionReady); c == nil || c.Status != metav1.ConditionUnknown || c.Reason != v1alpha1.ReasonReconciling {
		t.Errorf("Ready %+v", c)
	}
	if !meta.IsStatusConditionTrue(sg.Status.Conditions, v1alpha1.ConditionReconciling) {
		t.Errorf("Reconciling not set: %+v", sg.Status.Conditions)
	}
	f := findings(t, seed(), compiler.Facts{})
	SetStatus(sg, f, Classify(f))
	if MarkReconciling(sg) {
		t.Error("a graph at its current generation marked again")
	}
	sg.Generation++
	if MarkReconciling(sg) {
		t.Error("a change marked: its generation already says it is in progress")
	}
}

func TestSetStatusIsStable(t *testing.T) {
	sg := seed()
	f := findings(t, seed(), compiler.Facts{})
	SetStatus(sg, f, Classify(f))
	again := sg.DeepCopy()
	SetStatus(again, f, Classify(f))
	if !equal(sg.Status.Conditions, again.Status.Conditions) {
		t.Error("a second identical reconcile changes the status: every resync would write")
	}
}

func equal[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
