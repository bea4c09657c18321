package traffic

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	securityv1beta1 "istio.io/api/security/v1beta1"
	typev1beta1 "istio.io/api/type/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/compiler"
	"github.com/servicegraph/servicegraph-operator/internal/object"
)

// compiledSeed is the seed graph (web->api:8080, api->database:5432/data) compiled in a mode.
func compiledSeed(t *testing.T, mode v1alpha1.Enforcement) *compiler.Result {
	t.Helper()
	sg := &v1alpha1.ServiceGraph{ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: "shop"},
		Spec: v1alpha1.ServiceGraphSpec{Services: []v1alpha1.Service{{Name: "web"}, {Name: "api"}, {Name: "database"}, {Name: "legacy"}},
			Edges: []string{"web->api:8080", "api->database:5432/data"}, Enforcement: mode}}
	res, err := compiler.Compile(sg, compiler.DefaultOptions(), compiler.Facts{})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// denyWebToAPI is an AuthorizationPolicy someone else wrote: it refuses web's calls to api.
var denyWebToAPI = &securityv1.AuthorizationPolicy{
	ObjectMeta: metav1.ObjectMeta{Name: "no-web", Namespace: "shop"},
	Spec: securityv1beta1.AuthorizationPolicy{
		Selector: &typev1beta1.WorkloadSelector{MatchLabels: map[string]string{"app": "api"}},
		Action:   securityv1beta1.AuthorizationPolicy_DENY,
		Rules: []*securityv1beta1.Rule{{From: []*securityv1beta1.Rule_From{{Source: &securityv1beta1.Source{
			Principals: []string{"cluster.local/ns/shop/sa/web"}}}}}},
	},
}

func TestAssess(t *testing.T) {
	since := time.Date(2026, 12, 1, 9, 30, 0, 0, time.UTC)
	down := errors.New("dial tcp 127.0.0.1:9090: connect: connection refused")
	allowed := []Flow{istioFlow("web", "api", 1200, MutualTLS)}
	refused := append([]Flow{istioFlow("web", "database", 38.15, MutualTLS)}, allowed...)
	answered := func(flows []Flow) *Observation {
		return &Observation{Answered: true, Flows: flows, Inventory: shop(), Window: 24 * time.Hour}
	}
	failing := func(o *Observation, n int) *Observation {
		o.Failures, o.FailingSince, o.Err = n, since, down
		return o
	}
	many := []Flow{}
	for i := range 12 {
		f := istioFlow("web", "database", float64(i+1), MutualTLS)
		f.From.Workload = fmt.Sprintf("web-%02d", i)
		many = append(many, f)
	}
	manyInventory := shop()
	for i := range 12 {
		manyInventory.Workloads = append(manyInventory.Workloads, Workload{Namespace: "shop", Name: fmt.Sprintf("web-%02d", i),
			Labels: map[string]string{"app": "web"}, ServiceAccount: "web", Meshed: true})
	}

	for _, tc := range []struct {
		name     string
		obs      *Observation
		mode     v1alpha1.Enforcement
		policies []any
		status   metav1.ConditionStatus
		reason   string
		refused  int
		message  []string // parts of the message
	}{
		{name: "never answered", obs: &Observation{Failures: 2, FailingSince: since, Err: down, Window: time.Hour},
			status: metav1.ConditionUnknown, reason: v1alpha1.ReasonPrometheusUnreachable,
			message: []string{"Prometheus has not answered since 2026-12-01T09:30:00Z", "connection refused"}},
		{name: "no data", obs: answered(nil), status: metav1.ConditionUnknown, reason: v1alpha1.ReasonNoTrafficData,
			message: []string{"no connection into or out of the namespace's workloads in the last 1d"}},
		{name: "only flows of other namespaces' workloads", obs: answered([]Flow{{From: Party{Namespace: "a", Workload: "x"}, To: Party{Namespace: "b", Workload: "y"}}}),
			status: metav1.ConditionUnknown, reason: v1alpha1.ReasonNoTrafficData},
		{name: "covered", obs: answered(allowed), status: metav1.ConditionTrue, reason: v1alpha1.ReasonTrafficCovered,
			message: []string{"Enforce mode lets through all 1 connection observed in the last 1d"}},
		{name: "refused, with rounded counts", obs: answered(refused), status: metav1.ConditionFalse, reason: v1alpha1.ReasonObservedTrafficRefused, refused: 1,
			message: []string{"Enforce mode would refuse 1 of the 2 connections observed in the last 1d: shop/web -> shop/database TCP/5432 (~38 connections, refused at L4 by"}},
		{name: "plain text under STRICT", obs: answered([]Flow{istioFlow("legacy", "api", 4, Plaintext)}), status: metav1.ConditionFalse,
			reason: v1alpha1.ReasonObservedTrafficRefused, refused: 1, message: []string{"shop/legacy -> shop/api TCP/8080 (~4 connections"}},
		{name: "one failed query keeps the last answer", obs: failing(answered(refused), 1), status: metav1.ConditionFalse,
			reason: v1alpha1.ReasonObservedTrafficRefused, refused: 1},
		{name: "a second failed query in a row: Unknown, since the first", obs: failing(answered(refused), 2), status: metav1.ConditionUnknown,
			reason: v1alpha1.ReasonPrometheusUnreachable, message: []string{"since 2026-12-01T09:30:00Z: dial tcp"}},
		{name: "Audit mode is judged as Enforce would apply it", obs: answered(refused), mode: v1alpha1.EnforcementAudit,
			status: metav1.ConditionFalse, reason: v1alpha1.ReasonObservedTrafficRefused, refused: 1},
		{name: "policies no graph generated apply", obs: answered(allowed), policies: []any{denyWebToAPI},
			status: metav1.ConditionFalse, reason: v1alpha1.ReasonObservedTrafficRefused, refused: 1, message: []string{"AuthorizationPolicy shop/no-web"}},
		{name: "ten named, the rest counted", obs: &Observation{Answered: true, Flows: many, Inventory: manyInventory, Window: time.Hour},
			status: metav1.ConditionFalse, reason: v1alpha1.ReasonObservedTrafficRefused, refused: 12,
			message: []string{"refuse 12 of the 12 connections observed in the last 1h", "shop/web-09 -> shop/database", "; and 2 more"}},
		{name: "undecided flows are counted, not refused", obs: answered(append(slices.Clone(allowed), func() Flow {
			f := istioFlow("api", "database", 3, MutualTLS)
			f.HTTP = true // without its path, against a rule on paths
			return f
		}())), status: metav1.ConditionTrue,
			reason: v1alpha1.ReasonTrafficCovered, message: []string{"all 2 connections", "1 undecided"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := compiledSeed(t, tc.mode)
			judge := EnforceJudge(d, tc.policies, nil, "")
			got := Assess(tc.obs, judge, d.Graph)
			if got.Status != tc.status || got.Reason != tc.reason || got.Known() && got.Refused != tc.refused {
				t.Errorf("got %s %s refused %d, want %s %s refused %d: %s", got.Status, got.Reason, got.Refused, tc.status, tc.reason, tc.refused, got.Message)
			}
			for _, part := range tc.message {
				if !strings.Contains(got.Message, part) {
					t.Errorf("no %q in %q", part, got.Message)
				}
			}
		})
	}
}

func TestApproxCount(t *testing.T) {
	for _, tc := range []struct {
		count float64
		http  bool
		want  string
	}{
		{0.4, false, "~1 connections"}, {38.15, false, "~38 connections"}, {99.6, true, "~100 requests"},
		{1234, true, "~1200 requests"}, {1249.9, false, "~1200 connections"}, {56789, false, "~57000 connections"},
	} {
		if got := approxCount(Flow{Count: tc.count, HTTP: tc.http}); got != tc.want {
			t.Errorf("%v: %q, want %q", tc.count, got, tc.want)
		}
	}
}

func TestInventoryOf(t *testing.T) {
	yes := true
	pod := func(name string, annotations map[string]string, ip string, containers ...string) corev1.Pod {
		p := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, GenerateName: "api-7d9f5c6b8-", Namespace: "shop",
			Labels: map[string]string{"app": "api", "pod-template-hash": "7d9f5c6b8"}, Annotations: annotations,
			OwnerReferences: []metav1.OwnerReference{{Kind: "ReplicaSet", Name: "api-7d9f5c6b8", Controller: &yes}}},
			Spec:   corev1.PodSpec{ServiceAccountName: "api"},
			Status: corev1.PodStatus{PodIPs: []corev1.PodIP{{IP: ip}}}}
		for _, c := range containers {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: c, Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}})
		}
		return p
	}
	gone := pod("api-7d9f5c6b8-old", nil, "10.0.0.9", "api", "istio-proxy")
	gone.DeletionTimestamp = &metav1.Time{Time: t0}
	done := pod("api-7d9f5c6b8-done", nil, "10.0.0.8", "api")
	done.Status.Phase = corev1.PodSucceeded
	plain := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "legacy", Namespace: "shop", Labels: map[string]string{"app": "legacy"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "legacy"}}}}
	inv := InventoryOf([]corev1.Pod{pod("api-7d9f5c6b8-a", nil, "10.0.0.1", "api", "istio-proxy"), gone, done,
		pod("api-7d9f5c6b8-b", nil, "10.0.0.2", "api", "istio-proxy"), plain,
		pod("api-7d9f5c6b8-c", map[string]string{object.AnnotationSidecarStatus: "{}"}, "10.0.0.3", "api")}, nil, nil)
	if len(inv.Workloads) != 2 {
		t.Fatalf("workloads %+v", inv.Workloads)
	}
	api, legacy := inv.Workloads[0], inv.Workloads[1]
	if api.Name != "api" || api.ServiceAccount != "api" || !api.Meshed || strings.Join(api.IPs, ",") != "10.0.0.1,10.0.0.2,10.0.0.3" || len(api.Ports) != 2 {
		t.Errorf("api %+v", api)
	}
	if legacy.Name != "legacy" || legacy.Meshed || legacy.Account() != "default" {
		t.Errorf("legacy %+v", legacy)
	}
}

// TestFingerprint: the operator looks at a namespace's graphs again only when the fingerprint of
// its observation changes, so it must change with what the condition says and with nothing else.
func TestFingerprint(t *testing.T) {
	since := time.Date(2026, 12, 1, 9, 30, 0, 0, time.UTC)
	base := func(counts ...float64) *Observation {
		o := &Observation{Answered: true, Inventory: shop(), Window: time.Hour}
		for i, c := range counts {
			o.Flows = append(o.Flows, istioFlow([]string{"web", "legacy"}[i], "api", c, MutualTLS))
		}
		return o
	}
	failed := func(o *Observation, n int, err string) *Observation {
		o.Failures, o.FailingSince, o.Err = n, since, errors.New(err)
		return o
	}
	reordered := base(1200, 4)
	reordered.Flows[0], reordered.Flows[1] = reordered.Flows[1], reordered.Flows[0]
	moved := base(1200, 4)
	moved.Inventory.Workloads[0].IPs = []string{"10.0.0.7"}
	for _, tc := range []struct {
		name string
		a, b *Observation
		same bool
	}{
		{"counts within the rounding", base(1200, 4), base(1234, 4.2), true},
		{"Prometheus' order", base(1200, 4), reordered, true},
		{"a count past the rounding", base(1200, 4), base(1300, 4), false},
		{"a new connection", base(1200), base(1200, 4), false},
		{"the inventory", base(1200, 4), moved, false},
		{"one failed query keeps the answer", base(1200, 4), failed(base(1200, 4), 1, "timeout"), true},
		{"the second makes it Unknown", base(1200, 4), failed(base(1200, 4), 2, "timeout"), false},
		{"never answered: the second failure decides", failed(&Observation{}, 1, "refused"), failed(&Observation{}, 2, "refused"), false},
		{"later failures, other errors: the first one is named", failed(base(1200, 4), 2, "timeout"), failed(base(1300), 5, "timeout"), true},
	} {
		if same := tc.a.Fingerprint() == tc.b.Fingerprint(); same != tc.same {
			t.Errorf("%s: same %v, want %v", tc.name, same, tc.same)
		}
	}
}
