package compiler

import (
	"slices"
	"strings"
	"testing"

	securityv1beta1 "istio.io/api/security/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/semantics"
)

// seedGraph is the seed scenario: web -> api:8080, api -> database:5432/data.
func seedGraph(waypoint *v1alpha1.Waypoint) *v1alpha1.ServiceGraph {
	return &v1alpha1.ServiceGraph{
		ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: "shop"},
		Spec: v1alpha1.ServiceGraphSpec{
			Services: []v1alpha1.Service{{Name: "web"}, {Name: "api"}, {Name: "database"}},
			Edges:    []string{"web->api:8080", "api->database:5432/data"},
			Waypoint: waypoint,
		},
	}
}

// Each fact about the waypoint decides whether database's path edge opens, and what
// WaypointReady says.
func TestWaypointDecisions(t *testing.T) {
	labelled := map[string]string{semantics.LabelUseWaypoint: "waypoint"}
	withFacts := func(edit func(*Facts)) Facts {
		f := ambientFacts(labelled, true)
		if edit != nil {
			edit(&f)
		}
		return f
	}
	for _, tc := range []struct {
		name     string
		waypoint *v1alpha1.Waypoint
		facts    Facts
		problem  string // "" when the path edge is open
		through  bool
		enroll   []string
	}{
		{name: "a labelled Service and a ready waypoint", facts: withFacts(nil), through: true},
		{name: "the namespace names the waypoint", facts: withFacts(func(f *Facts) {
			f.Services[2].Labels = nil
			f.NamespaceLabels[semantics.LabelUseWaypoint] = "waypoint"
		}), through: true},
		{name: "the Service opts out", facts: withFacts(func(f *Facts) {
			f.Services[2].Labels = map[string]string{semantics.LabelUseWaypoint: "none"}
			f.NamespaceLabels[semantics.LabelUseWaypoint] = "waypoint"
		}), problem: "no waypoint"},
		{name: "no waypoint anywhere", facts: withFacts(func(f *Facts) { f.Services[2].Labels = nil }), problem: "no waypoint"},
		{name: "the graph names a waypoint its Service does not use", waypoint: &v1alpha1.Waypoint{Name: "waypoint"},
			facts: withFacts(func(f *Facts) { f.Services[2].Labels = nil }), problem: "do not use waypoint waypoint"},
		{name: "the waypoint does not exist", facts: withFacts(func(f *Facts) { f.Waypoints = nil }), problem: "does not exist"},
		{name: "the waypoint is not ready: policies in place, edge closed", facts: withFacts(func(f *Facts) { f.Waypoints["waypoint"] = WaypointFacts{} }),
			problem: "not ready", through: true},
		{name: "no Service selects the pods", facts: withFacts(func(f *Facts) { f.Services = f.Services[:2] }), problem: "no Kubernetes Service"},
		{name: "a waypoint of another namespace", facts: withFacts(func(f *Facts) {
			f.Services[2].Labels = map[string]string{semantics.LabelUseWaypoint: "waypoint", semantics.LabelUseWaypointNamespace: "mesh"}
		}), problem: "of another namespace"},
		{name: "two Services, two waypoints", facts: withFacts(func(f *Facts) {
			other := f.Services[2]
			other.Name, other.Labels = "database-2", map[string]string{semantics.LabelUseWaypoint: "other"}
			f.Services = append(f.Services, other)
		}), problem: "different waypoints"},
		{name: "created by the operator: the Service is enrolled", waypoint: &v1alpha1.Waypoint{Create: true},
			facts: withFacts(func(f *Facts) { f.Services[2].Labels = nil }), through: true, enroll: []string{"database"}},
		{name: "created by the operator, not there yet", waypoint: &v1alpha1.Waypoint{Create: true},
			facts: withFacts(func(f *Facts) { f.Services[2].Labels = nil; f.Waypoints = nil }), problem: "does not exist", enroll: []string{"database"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := mustCompile(t, seedGraph(tc.waypoint), DefaultOptions(), tc.facts)
			var problems []string
			for _, p := range res.WaypointProblems {
				problems = append(problems, p.String())
			}
			if tc.problem == "" && len(problems) > 0 || tc.problem != "" && (len(problems) != 1 || !strings.Contains(problems[0], tc.problem)) {
				t.Errorf("problems %q, want one with %q", problems, tc.problem)
			}
			ready, reason, msg := WaypointCondition(res)
			if ready != (tc.problem == "") || ready && reason != v1alpha1.ReasonWaypointReady || !ready && !strings.Contains(msg, "database") {
				t.Errorf("WaypointReady %v %s %q", ready, reason, msg)
			}
			wp := generatedObject[*securityv1.AuthorizationPolicy](res, "shop-wp-database")
			if (wp != nil) != tc.through {
				t.Errorf("waypoint policy %v, want %v", wp != nil, tc.through)
			}
			if !slices.Equal(res.Enroll, tc.enroll) {
				t.Errorf("enroll %v, want %v", res.Enroll, tc.enroll)
			}
			gw := generatedObject[*gatewayv1.Gateway](res, "waypoint")
			if (gw != nil) != (len(tc.enroll) > 0) {
				t.Errorf("Gateway created: %v", gw != nil)
			}
			// Never does ztunnel admit api, the path edge's caller, itself: it would skip the path.
			db := generatedObject[*securityv1.AuthorizationPolicy](res, "shop-svc-database")
			if db != nil && slices.ContainsFunc(db.Spec.Rules, func(r *securityv1beta1.Rule) bool { return len(semantics.HTTPOnly(r)) > 0 || hasPrincipal(r, "sa/api") }) {
				t.Errorf("ztunnel's policy admits the path edge's caller or has HTTP fields: %v", db.Spec.Rules)
			}
		})
	}
}

// A graph in a namespace without ambient mode is compiled as before: no HBONE, no waypoint.
func TestSidecarNamespaceUnchanged(t *testing.T) {
	f := ambientFacts(map[string]string{semantics.LabelUseWaypoint: "waypoint"}, true)
	f.NamespaceLabels = nil
	res := mustCompile(t, seedGraph(nil), DefaultOptions(), f)
	for _, obj := range res.Objects() {
		if np, ok := obj.(*networkingv1.NetworkPolicy); ok && strings.Contains(mustYAML(t, []Object{np}), "15008") {
			t.Errorf("%s opens HBONE", np.Name)
		}
		if strings.Contains(obj.GetName(), "wp-") || strings.Contains(obj.GetName(), "waypoint") {
			t.Errorf("%s generated", obj.GetName())
		}
	}
	if res.Ambient() {
		t.Error("Ambient() on a sidecar graph")
	}
	if len(res.WaypointProblems) > 0 {
		t.Errorf("problems %v", res.WaypointProblems)
	}
}

// The waypoint's policy sees the Service's port, ztunnel's the pod's.
func TestWaypointPorts(t *testing.T) {
	res := mustCompile(t, seedGraph(nil), DefaultOptions(), ambientFacts(map[string]string{semantics.LabelUseWaypoint: "waypoint"}, true))
	wp := generatedObject[*securityv1.AuthorizationPolicy](res, "shop-wp-database")
	if got := wp.Spec.Rules[0].To[0].Operation.Ports; !slices.Equal(got, []string{"80"}) {
		t.Errorf("waypoint rule ports %v, want the Service's [80]", got)
	}
	db := generatedObject[*securityv1.AuthorizationPolicy](res, "shop-svc-database")
	if len(db.Spec.Rules) != 1 || !hasPrincipal(db.Spec.Rules[0], "sa/waypoint") || !slices.Equal(db.Spec.Rules[0].To[0].Operation.Ports, []string{"5432"}) {
		t.Errorf("ztunnel rule %v, want the waypoint on 5432", db.Spec.Rules)
	}
}

func generatedObject[T Object](res *Result, name string) T {
	var zero T
	for _, obj := range res.Objects() {
		if o, ok := obj.(T); ok && obj.GetName() == name {
			return o
		}
	}
	return zero
}

func hasPrincipal(r *securityv1beta1.Rule, suffix string) bool {
	for _, f := range r.From {
		for _, p := range f.GetSource().GetPrincipals() {
			if strings.HasSuffix(p, suffix) {
				return true
			}
		}
	}
	return false
}

// ztunnel matches port numbers only: a named port is resolved from the pods' container ports, or
// the edge stays closed and the result says why.
func TestAmbientNamedPorts(t *testing.T) {
	sg := seedGraph(nil)
	sg.Spec.Edges = []string{"web->api:http", "api->database:5432"}
	f := ambientFacts(nil, true)
	f.NamedPorts = map[string]map[string]int32{"api": {"http": 8080}}
	res := mustCompile(t, sg, DefaultOptions(), f)
	ap := generatedObject[*securityv1.AuthorizationPolicy](res, "shop-svc-api")
	if ap == nil || !slices.Equal(ap.Spec.Rules[0].To[0].Operation.Ports, []string{"8080"}) {
		t.Errorf("shop-svc-api: %v, want web on the resolved 8080", ap)
	}
	if len(res.UnresolvedPorts) > 0 {
		t.Errorf("unresolved %v", res.UnresolvedPorts)
	}
	f.NamedPorts = nil
	res = mustCompile(t, sg, DefaultOptions(), f)
	if ap := generatedObject[*securityv1.AuthorizationPolicy](res, "shop-svc-api"); ap != nil {
		t.Errorf("shop-svc-api admits %v through a port ztunnel cannot match", ap.Spec.Rules)
	}
	if len(res.UnresolvedPorts) != 1 || !strings.Contains(res.UnresolvedPorts[0], "container port named http") {
		t.Errorf("unresolved %v", res.UnresolvedPorts)
	}
}
