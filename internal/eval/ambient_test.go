package eval

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/compiler"
	"github.com/servicegraph/servicegraph-operator/internal/semantics"
)

// ambientSeed is the seed graph compiled for a namespace in ambient mode whose database Service
// goes through a ready waypoint (facts), or, with facts zero, the sidecar-shaped objects the
// operator generated before ambient mode; and its pods, all in ambient mode, with the waypoint's.
func ambientSeed(t *testing.T, facts compiler.Facts) (*Cluster, map[string]*Workload) {
	t.Helper()
	sg := &v1alpha1.ServiceGraph{
		ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: "shop"},
		Spec: v1alpha1.ServiceGraphSpec{
			Services: []v1alpha1.Service{{Name: "web"}, {Name: "api"}, {Name: "database"}},
			Edges:    []string{"web->api:8080", "api->database:5432/data"},
		},
	}
	res, err := compiler.Compile(sg, compiler.DefaultOptions(), facts)
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{Namespaces: map[string]map[string]string{"shop": {semantics.LabelDataplaneMode: "ambient"}}}
	for _, o := range res.Objects() {
		c.Add(o)
	}
	pod := func(name, ip string) *Workload {
		return &Workload{Namespace: "shop", Name: name, Labels: map[string]string{"app": name}, IP: ip, ServiceAccount: name, Meshed: true,
			Dataplane: semantics.DataplaneAmbient}
	}
	ws := map[string]*Workload{"web": pod("web", "10.0.0.1"), "api": pod("api", "10.0.0.2"), "database": pod("database", "10.0.0.3"),
		"intruder": pod("intruder", "10.0.0.9")}
	ws["waypoint"] = &Workload{Namespace: "shop", Name: "waypoint", Labels: map[string]string{semantics.LabelGatewayName: "waypoint"},
		IP: "10.0.0.10", ServiceAccount: "waypoint", Meshed: true}
	return c, ws
}

func ambientSeedFacts() compiler.Facts {
	svc := func(name string, port int32, labels map[string]string) compiler.KubeService {
		return compiler.KubeService{Name: name, Namespace: "shop", Selector: map[string]string{"app": name}, Labels: labels,
			Ports: []compiler.KubeServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(port)}}}
	}
	return compiler.Facts{
		NamespaceLabels: map[string]string{semantics.LabelDataplaneMode: "ambient"},
		Services: []compiler.KubeService{svc("web", 8080, nil), svc("api", 8080, nil),
			svc("database", 5432, map[string]string{semantics.LabelUseWaypoint: "waypoint"})},
		Waypoints: map[string]compiler.WaypointFacts{"waypoint": {Ready: true, ServiceAccount: "waypoint"}},
	}
}

func TestAmbient(t *testing.T) {
	get := func(path string) *HTTP { return &HTTP{Path: path, Method: "GET", Host: "database"} }
	for _, tc := range []struct {
		name     string
		facts    compiler.Facts
		from, to string
		port     int32
		http     *HTTP
		waypoint bool // database's Services go through the waypoint
		allowed  bool
		// want are substrings of the steps' text.
		want []string
	}{
		{name: "an L4 edge, ztunnel to ztunnel", facts: ambientSeedFacts(), from: "web", to: "api", port: 8080, allowed: true,
			want: []string{"HBONE: the NetworkPolicy sees port 15008", "ztunnel: AuthorizationPolicy shop/shop-svc-api spec.rules[0]"}},
		{name: "ztunnel checks the port", facts: ambientSeedFacts(), from: "web", to: "api", port: 9090, allowed: false,
			want: []string{"ztunnel: no ALLOW rule matches"}},
		{name: "the path edge through the waypoint", facts: ambientSeedFacts(), from: "api", to: "database", port: 5432, http: get("/data"), waypoint: true, allowed: true,
			want: []string{"to waypoint waypoint: AuthorizationPolicy shop/shop-wp-database spec.rules[0]", "from it: ztunnel: AuthorizationPolicy shop/shop-svc-database spec.rules[0]"}},
		{name: "another path, refused by the waypoint", facts: ambientSeedFacts(), from: "api", to: "database", port: 5432, http: get("/admin"), waypoint: true, allowed: false,
			want: []string{"to waypoint waypoint: no ALLOW rule matches"}},
		{name: "a caller without the edge, refused by the waypoint and the NetworkPolicies", facts: ambientSeedFacts(), from: "web", to: "database", port: 5432,
			http: get("/data"), waypoint: true, allowed: false, want: []string{"to waypoint waypoint: no ALLOW rule matches"}},
		{name: "dialling the pod past the waypoint: ztunnel refuses the path edge's caller", facts: ambientSeedFacts(), from: "api", to: "database", port: 5432,
			http: get("/data"), allowed: false, want: []string{"ztunnel: no ALLOW rule matches"}},
		{name: "a stranger", facts: ambientSeedFacts(), from: "intruder", to: "api", port: 8080, allowed: false, want: []string{"ztunnel: no ALLOW rule matches"}},
		// What the operator generated before ambient mode: ztunnel drops the rule with the path.
		{name: "the sidecar-shaped objects in an ambient namespace: the path rule is dropped", from: "api", to: "database", port: 5432, http: get("/data"), allowed: false,
			want: []string{"left out: to[0].operation.paths", "ztunnel: no ALLOW rule matches"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, ws := ambientSeed(t, tc.facts)
			to := *ws[tc.to]
			if tc.waypoint {
				to.Waypoint = &Waypoint{Name: "waypoint", Pods: ws["waypoint"], Services: []string{"database"}, ServicePorts: map[int32]int32{5432: 80}}
			}
			from := ws[tc.from]
			v := c.Check(Request{From: Endpoint{Workload: from, IP: from.IP}, To: &to, Port: tc.port, Protocol: corev1.ProtocolTCP, HTTP: tc.http})
			var text strings.Builder
			for _, s := range v.Steps {
				text.WriteString(string(s.Layer) + " " + s.By + " (" + s.Detail + ")\n")
			}
			if v.Allowed != tc.allowed {
				t.Errorf("allowed %v, want %v\n%s", v.Allowed, tc.allowed, text.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(text.String(), w) {
					t.Errorf("no %q in\n%s", w, text.String())
				}
			}
		})
	}
}
