package outcome

import (
	"fmt"
	"reflect"
	"testing"

	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/graph"
)

func TestCallers(t *testing.T) {
	many := func(callees, callers int) func(*v1alpha1.ServiceGraph) {
		return func(sg *v1alpha1.ServiceGraph) {
			sg.Spec.Services, sg.Spec.Edges = nil, nil
			for i := range callers {
				sg.Spec.Services = append(sg.Spec.Services, v1alpha1.Service{Name: fmt.Sprintf("c%02d", i)})
			}
			for i := range callees {
				callee := fmt.Sprintf("s%03d", i)
				sg.Spec.Services = append(sg.Spec.Services, v1alpha1.Service{Name: callee})
				for j := range callers {
					sg.Spec.Edges = append(sg.Spec.Edges, fmt.Sprintf("c%02d->%s:80", j, callee))
				}
			}
		}
	}
	tests := []struct {
		name    string
		sg      *v1alpha1.ServiceGraph
		want    []v1alpha1.ServiceCallers
		omitted int32
	}{
		{name: "seed", sg: seed(), want: []v1alpha1.ServiceCallers{
			{Service: "api", From: []string{"web on 8080"}},
			{Service: "database", From: []string{"api on 5432/data"}},
		}},
		{name: "callers by name, several edges, protocols, methods, other namespaces and peers", sg: seed(func(sg *v1alpha1.ServiceGraph) {
			sg.Spec.Services = append(sg.Spec.Services, v1alpha1.Service{Name: "prometheus", Namespace: "monitoring"})
			sg.Spec.External = []v1alpha1.External{{Name: "office", CIDRs: []string{"192.0.2.0/24"}, Unmeshed: true}}
			sg.Spec.Edges = append(sg.Spec.Edges, "office->web:443", "prometheus->api:9090", "api->prometheus:9091")
			sg.Spec.Connections = []v1alpha1.Connection{
				{From: "web", To: "api", Ports: []v1alpha1.ConnectionPort{{Port: intstr.FromInt32(8081), Protocol: v1alpha1.ProtocolHTTP}}, Methods: []string{"GET"}, Paths: []string{"/orders*"}},
				{From: "web", To: "api", Ports: []v1alpha1.ConnectionPort{{Port: intstr.FromInt32(53), Protocol: v1alpha1.ProtocolUDP}}},
			}
		}), want: []v1alpha1.ServiceCallers{
			{Service: "api", From: []string{"monitoring/prometheus on 9090", "web on 53(UDP)", "web on 8080", "web on 8081(HTTP) [GET /orders*]"}},
			{Service: "database", From: []string{"api on 5432/data"}},
			{Service: "prometheus", From: []string{"api on 9091"}},
			{Service: "web", From: []string{"office on 443"}},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g, err := graph.Build(tc.sg)
			if err != nil {
				t.Fatal(err)
			}
			got, omitted := Callers(g)
			if !reflect.DeepEqual(got, tc.want) || omitted != tc.omitted {
				t.Errorf("got %q, %d omitted\nwant %q, %d", got, omitted, tc.want, tc.omitted)
			}
		})
	}
	t.Run("bounded", func(t *testing.T) {
		g, err := graph.Build(seed(many(maxCalledServices+7, maxCallersPerService+5)))
		if err != nil {
			t.Fatal(err)
		}
		got, omitted := Callers(g)
		if len(got) != maxCalledServices || omitted != 7 || got[0].Service != "s000" || got[maxCalledServices-1].Service != "s099" {
			t.Fatalf("%d services listed (first %s), %d omitted", len(got), got[0].Service, omitted)
		}
		from := got[0].From
		if len(from) != maxCallersPerService+1 || from[0] != "c00 on 80" || from[maxCallersPerService] != "and 5 more" {
			t.Errorf("callers of s000: %q", from)
		}
		g, err = graph.Build(seed(many(3, maxCallersPerService)))
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := Callers(g); len(got[0].From) != maxCallersPerService {
			t.Errorf("exactly the limit: %q", got[0].From)
		}
	})
}
