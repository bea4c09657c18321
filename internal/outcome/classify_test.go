package outcome

import (
	"errors"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/change"
	"github.com/servicegraph/servicegraph-operator/internal/compiler"
)

// seed is the seed scenario: web→api:8080, api→database:5432/data.
func seed(mutate ...func(*v1alpha1.ServiceGraph)) *v1alpha1.ServiceGraph {
	sg := &v1alpha1.ServiceGraph{
		ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: "shop", Generation: 2},
		Spec: v1alpha1.ServiceGraphSpec{
			Services: []v1alpha1.Service{{Name: "web"}, {Name: "api"}, {Name: "database"}},
			Edges:    []string{"web→api:8080", "api→database:5432/data"},
		},
	}
	for _, m := range mutate {
		m(sg)
	}
	return sg
}

func compile(t *testing.T, sg *v1alpha1.ServiceGraph, facts compiler.Facts) *compiler.Result {
	t.Helper()
	res, err := compiler.Compile(sg, compiler.DefaultOptions(), facts)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

var (
	noIstio    = compiler.Facts{Missing: compiler.Builtin().KindsOf(compiler.LayerIstio)}
	unmeshed   = compiler.Facts{Unmeshed: []string{"legacy-0 (ReplicaSet/legacy)"}}
	permissive = func(sg *v1alpha1.ServiceGraph) { sg.Spec.MTLS = v1alpha1.MTLSPermissive }
	audit      = func(sg *v1alpha1.ServiceGraph) { sg.Spec.Enforcement = v1alpha1.EnforcementAudit }
	warn       = func(sg *v1alpha1.ServiceGraph) { sg.Spec.MTLSPreflight = v1alpha1.MTLSPreflightWarn }
	meshNone   = func(sg *v1alpha1.ServiceGraph) { sg.Spec.Mesh = v1alpha1.MeshNone }
	// ciliumPolicies asks for CiliumNetworkPolicies; noCilium is a cluster that does not serve them.
	ciliumPolicies = func(sg *v1alpha1.ServiceGraph) { sg.Spec.NetworkPolicy = v1alpha1.NetworkPolicyCilium }
	noCilium       = compiler.Facts{Missing: compiler.Builtin().KindsOf(compiler.LayerCilium)}
	tcpDatabase    = compiler.Facts{Services: []compiler.KubeService{{Name: "database", Namespace: "shop",
		Selector: map[string]string{"app": "database"}, Ports: []compiler.KubeServicePort{{Name: "tcp-postgres", Port: 5432}}}}}
	errTransient   = errors.New("etcdserver: leader changed")
	networkPolicyX = v1alpha1.ObjectReference{Group: "networking.k8s.io", Kind: "NetworkPolicy", Name: "shop-svc-api"}
)

// findings builds the findings of a reconcile that compiled the graph with the facts.
func findings(t *testing.T, sg *v1alpha1.ServiceGraph, facts compiler.Facts, edit ...func(*Findings)) Findings {
	f := Findings{Outputs: compiler.Builtin(), Desired: compile(t, sg, facts)}
	for _, e := range edit {
		e(&f)
	}
	return f
}

func TestClassify(t *testing.T) {
	tests := []struct {
		name        string
		f           Findings
		ready       metav1.ConditionStatus
		reason      string
		stalled     bool
		reconciling bool
		retry       Retry
		message     string // a part of the message
	}{
		{"converged", findings(t, seed(), compiler.Facts{}),
			metav1.ConditionTrue, v1alpha1.ReasonReconciled, false, false, RetryNone, "10 objects applied for 3 services and 2 edges"},
		{"another graph is active", Findings{Outputs: compiler.Builtin(), ActiveGraph: "older"},
			metav1.ConditionFalse, v1alpha1.ReasonConflict, true, false, RetryNone, `ServiceGraph "older" is the active graph`},
		{"invalid spec", Findings{Outputs: compiler.Builtin(), CompileErr: errors.New(`edge "web->ghost:80": unknown service ghost`)},
			metav1.ConditionFalse, v1alpha1.ReasonInvalidSpec, true, false, RetryNever, "last valid spec stay in force: edge"},
		{"refused by the API server", findings(t, seed(), compiler.Facts{}, func(f *Findings) { f.Err, f.Rejected = errors.New("too large"), true }),
			metav1.ConditionFalse, v1alpha1.ReasonRejected, true, false, RetryNever, "refused a generated object"},
		{"transient failure before compiling", Findings{Outputs: compiler.Builtin(), Err: errTransient},
			metav1.ConditionFalse, v1alpha1.ReasonApplyFailed, false, true, RetryBackoff, "Retrying after an error: etcdserver"},
		{"transient failure while applying", findings(t, seed(), compiler.Facts{}, func(f *Findings) { f.Err = errTransient }),
			metav1.ConditionFalse, v1alpha1.ReasonApplyFailed, false, true, RetryBackoff, "leader changed"},
		{"object in the way", findings(t, seed(), compiler.Facts{}, func(f *Findings) {
			f.Changes.Conflicts = []change.Conflict{{Ref: networkPolicyX, Cause: change.NotOwned}}
		}), metav1.ConditionFalse, v1alpha1.ReasonConflict, true, false, RetryRecheck, "NetworkPolicy/shop-svc-api exists and is not managed"},
		{"a Service declares a path's port TCP", findings(t, seed(), tcpDatabase),
			metav1.ConditionFalse, v1alpha1.ReasonProtocolMismatch, true, false, RetryNone, "Service shop/database port 5432 (tcp-postgres) declares TCP"},
		{"mesh None without Istio is Ready and needs no recheck", findings(t, seed(meshNone), noIstio),
			metav1.ConditionTrue, v1alpha1.ReasonReconciled, false, false, RetryNone, "5 objects applied for 3 services and 2 edges; spec.mesh is None: NetworkPolicies only"},
		{"mesh None with Istio installed", findings(t, seed(meshNone), compiler.Facts{Unmeshed: []string{"legacy"}}),
			metav1.ConditionTrue, v1alpha1.ReasonReconciled, false, false, RetryNone, "spec.mesh is None"},
		{"STRICT without Istio waits", findings(t, seed(), noIstio),
			metav1.ConditionFalse, v1alpha1.ReasonIstioNotInstalled, false, true, RetryRecheck, "waiting for Istio"},
		{"PERMISSIVE without Istio is Ready and rechecks", findings(t, seed(permissive), noIstio),
			metav1.ConditionTrue, v1alpha1.ReasonReconciled, false, false, RetryRecheck, "Istio is not installed, so mutual TLS"},
		{"Audit without Istio is Ready", findings(t, seed(audit), noIstio),
			metav1.ConditionTrue, v1alpha1.ReasonReconciled, false, false, RetryRecheck, "Audit mode: "},
		{"STRICT held back by the preflight", findings(t, seed(), unmeshed),
			metav1.ConditionFalse, v1alpha1.ReasonUnmeshedWorkloads, false, true, RetryRecheck, "STRICT mTLS held back (mtlsPreflight: Block), mode stays PERMISSIVE until these pods have an Istio sidecar: legacy-0"},
		{"STRICT applied anyway under Warn", findings(t, seed(warn), unmeshed),
			metav1.ConditionTrue, v1alpha1.ReasonReconciled, false, false, RetryRecheck, "10 objects applied"},
		{"Audit mode", findings(t, seed(audit), compiler.Facts{}),
			metav1.ConditionTrue, v1alpha1.ReasonReconciled, false, false, RetryNone, "Audit mode: 4 objects applied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Classify(tt.f)
			if c.Ready != tt.ready || c.Reason != tt.reason || c.Stalled != tt.stalled || c.Reconciling != tt.reconciling || c.Retry != tt.retry {
				t.Errorf("Classify = %s %s stalled=%v reconciling=%v retry=%v, want %s %s stalled=%v reconciling=%v retry=%v",
					c.Ready, c.Reason, c.Stalled, c.Reconciling, c.Retry, tt.ready, tt.reason, tt.stalled, tt.reconciling, tt.retry)
			}
			if !strings.Contains(c.Message, tt.message) {
				t.Errorf("message %q lacks %q", c.Message, tt.message)
			}
			if (c.Retry == RetryNever || c.Retry == RetryBackoff) != (c.Err != nil) {
				t.Errorf("retry %v with error %v", c.Retry, c.Err)
			}
		})
	}
}

func TestUnmeshedMessageNamesAtMostTenPods(t *testing.T) {
	var pods []string
	for _, p := range strings.Split("a b c d e f g h i j k l", " ") {
		pods = append(pods, p)
	}
	d := compile(t, seed(), compiler.Facts{Unmeshed: pods, MTLSInForce: v1alpha1.MTLSStrict})
	want := "STRICT mTLS is in force and stays (mtlsPreflight: Block never loosens it); these pods have no Istio sidecar and get no inbound traffic: a, b, c, d, e, f, g, h, i, j and 2 more"
	if got := UnmeshedMessage(d); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	d = compile(t, seed(), compiler.Facts{Unmeshed: pods[:1]})
	want = "STRICT mTLS held back (mtlsPreflight: Block), mode stays PERMISSIVE until these pods have an Istio sidecar: a"
	if got := UnmeshedMessage(d); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}
