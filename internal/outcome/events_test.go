package outcome

import (
	"errors"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/change"
	"github.com/servicegraph/servicegraph-operator/internal/compiler"
)

// reportedBefore is a graph whose status already reports f at its current generation.
func reportedBefore(f Findings) func(*testing.T) *v1alpha1.ServiceGraph {
	return func(*testing.T) *v1alpha1.ServiceGraph {
		sg := seed()
		SetStatus(sg, f, Classify(f))
		return sg
	}
}

func TestEvents(t *testing.T) {
	fresh := func(*testing.T) *v1alpha1.ServiceGraph { return seed() }
	written := func(f *Findings) {
		f.Changes.Add(networkPolicyX, change.Created)
		f.Changes.Add(v1alpha1.ObjectReference{Kind: "NetworkPolicy", Name: "shop-svc-web"}, change.Unchanged)
	}
	invalid := Findings{Outputs: compiler.Builtin(), CompileErr: errors.New("bad edge")}
	conflict := findings(t, seed(), compiler.Facts{}, func(f *Findings) {
		f.Changes.Conflicts = []change.Conflict{{Ref: networkPolicyX}}
	})
	rejected := findings(t, seed(), compiler.Facts{}, func(f *Findings) { f.Err, f.Rejected = errors.New("too large"), true })
	tests := []struct {
		name   string
		before func(*testing.T) *v1alpha1.ServiceGraph
		f      Findings
		want   []Event
	}{
		{"quiet reconcile", readyBefore, findings(t, seed(), compiler.Facts{}), nil},
		{"first rollout: the status says it", fresh, findings(t, seed(), compiler.Facts{}, written), nil},
		{"change of a rolled-out graph", readyBefore, findings(t, seed(), compiler.Facts{}, written),
			[]Event{{corev1.EventTypeNormal, EventApplied, "Apply", "Applied NetworkPolicy/shop-svc-api"}}},
		{"drift restored", fresh, findings(t, seed(), compiler.Facts{}, written, func(f *Findings) { f.Drift = true }),
			[]Event{{corev1.EventTypeNormal, EventDriftCorrected, "Apply", "Restored NetworkPolicy/shop-svc-api"}}},
		{"pruned", fresh, findings(t, seed(), compiler.Facts{}, func(f *Findings) { f.Changes.Add(networkPolicyX, change.Pruned) }),
			[]Event{{corev1.EventTypeNormal, EventPruned, "Delete", "Deleted NetworkPolicy/shop-svc-api"}}},
		{"invalid spec", fresh, invalid,
			[]Event{{corev1.EventTypeWarning, EventInvalidSpec, "Compile", "Invalid spec, last good policies kept: bad edge"}}},
		{"invalid spec reported already", reportedBefore(invalid), invalid, nil},
		{"conflict", fresh, conflict,
			[]Event{{corev1.EventTypeWarning, EventConflict, "Apply", "Left alone: NetworkPolicy/shop-svc-api exists and is not managed by this ServiceGraph"}}},
		{"conflict reported already", reportedBefore(conflict), conflict, nil},
		{"another graph active", fresh, Findings{Outputs: compiler.Builtin(), ActiveGraph: "older"},
			[]Event{{corev1.EventTypeWarning, EventConflict, "Compile", Classify(Findings{ActiveGraph: "older"}).Message}}},
		{"transient failure, every time", readyBefore, findings(t, seed(), compiler.Facts{}, func(f *Findings) { f.Err = errTransient }),
			[]Event{{corev1.EventTypeWarning, EventApplyFailed, "Apply", "etcdserver: leader changed"}}},
		{"rejected", fresh, rejected, []Event{{corev1.EventTypeWarning, EventApplyFailed, "Apply", "too large"}}},
		{"rejected reported already", reportedBefore(rejected), rejected, nil},
		{"unmeshed pods", fresh, findings(t, seed(), unmeshed),
			[]Event{{corev1.EventTypeWarning, EventUnmeshed, "Preflight", "STRICT mTLS held back (mtlsPreflight: Block), mode stays PERMISSIVE until these pods have an Istio sidecar: legacy-0 (ReplicaSet/legacy)"}}},
		{"unmeshed pods reported already", reportedBefore(findings(t, seed(), unmeshed)), findings(t, seed(), unmeshed), nil},
		{"protocol mismatch", fresh, findings(t, seed(), tcpDatabase),
			[]Event{{corev1.EventTypeWarning, EventMismatch, "Compile", MismatchMessage(findings(t, seed(), tcpDatabase).Desired.ProtocolMismatches)}}},
		{"protocol mismatch reported already", reportedBefore(findings(t, seed(), tcpDatabase)), findings(t, seed(), tcpDatabase), nil},
		{"switch to Audit", readyBefore, findings(t, seed(audit), compiler.Facts{}),
			[]Event{{corev1.EventTypeNormal, EventEnforcement, "Apply", enforcementNote[v1alpha1.EnforcementAudit]}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Events(tt.before(t), tt.f, Classify(tt.f))
			if !slices.Equal(got, tt.want) {
				t.Errorf("events\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestCoverageCondition(t *testing.T) {
	tests := []struct {
		name   string
		cov    v1alpha1.Coverage
		reason string
		msg    string
	}{
		{"covered", v1alpha1.Coverage{Services: []v1alpha1.ServiceCoverage{{Name: "web", Pods: 2}}, CoveredPods: 2},
			v1alpha1.ReasonCovered, "Every service matches pods and all 2 pods belong to a service"},
		{"empty selector", v1alpha1.Coverage{Services: []v1alpha1.ServiceCoverage{{Name: "web", Pods: 1}, {Name: "api"}}, CoveredPods: 1},
			v1alpha1.ReasonCoverageGaps, "services whose selector matches no pod (they protect nothing; check the selector): api"},
		{"stray pods", v1alpha1.Coverage{Services: []v1alpha1.ServiceCoverage{{Name: "web", Pods: 1}}, CoveredPods: 1, UncoveredPods: 12,
			Uncovered: []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"}},
			v1alpha1.ReasonCoverageGaps, "12 pods in no service (default-deny cuts them off): a, b, c, d, e, f, g, h, i, j and 2 more"},
		{"one stray pod", v1alpha1.Coverage{Services: []v1alpha1.ServiceCoverage{{Name: "web", Pods: 1}}, CoveredPods: 1, UncoveredPods: 1, Uncovered: []string{"debug"}},
			v1alpha1.ReasonCoverageGaps, "1 pod in no service (default-deny cuts them off): debug"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, reason, msg := CoverageCondition(&tt.cov)
			if reason != tt.reason || msg != tt.msg {
				t.Errorf("got %s %q, want %s %q", reason, msg, tt.reason, tt.msg)
			}
		})
	}
}
