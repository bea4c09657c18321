package compiler

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/graph"
)

// fanIn is a graph where n callers call one service.
func fanIn(n int, callerLabels int) *v1alpha1.ServiceGraph {
	sg := &v1alpha1.ServiceGraph{ObjectMeta: metav1.ObjectMeta{Name: "fan", Namespace: "ns"}}
	sg.Spec.Services = []v1alpha1.Service{{Name: "hub"}}
	for i := range n {
		name := fmt.Sprintf("caller-%d", i)
		svc := v1alpha1.Service{Name: name}
		if callerLabels > 0 {
			match := map[string]string{}
			for l := range callerLabels {
				match[fmt.Sprintf("example.com/label-%03d", l)] = strings.Repeat("v", 60)
			}
			svc.Selector = &metav1.LabelSelector{MatchLabels: match}
		}
		sg.Spec.Services = append(sg.Spec.Services, svc)
		sg.Spec.Edges = append(sg.Spec.Edges, name+"->hub:8080")
	}
	return sg
}

func TestLimits(t *testing.T) {
	if _, err := Compile(fanIn(MaxAuthorizationRules, 0), DefaultOptions(), Facts{}); err != nil {
		t.Fatalf("%d callers must compile: %v", MaxAuthorizationRules, err)
	}
	_, err := Compile(fanIn(MaxAuthorizationRules+1, 0), DefaultOptions(), Facts{})
	if err == nil || !strings.Contains(err.Error(), `AuthorizationPolicy "fan-svc-hub": would have 513 rules; Istio accepts at most 512`) {
		t.Errorf("513 callers: got %v", err)
	}
	_, err = Compile(fanIn(100, 120), DefaultOptions(), Facts{})
	var list graph.ErrorList
	if !errors.As(err, &list) || len(list) == 0 || list[0].Kind != graph.KindTooLarge ||
		!strings.Contains(err.Error(), `NetworkPolicy "fan-svc-hub": would be `) {
		t.Errorf("oversized NetworkPolicy: got %v", err)
	}
}

// Each output's RoughSize must stay within a factor of two of the encoded size, or objects near
// the limit would skip the exact check.
func TestRoughSizeBoundsTheEncodedSize(t *testing.T) {
	for _, sg := range []*v1alpha1.ServiceGraph{fanIn(50, 0), fanIn(20, 30), fanIn(3, 1)} {
		res, err := Compile(sg, DefaultOptions(), Facts{})
		if err != nil {
			t.Fatal(err)
		}
		for _, obj := range res.Objects() {
			rough := res.Outputs.Of(obj).RoughSize
			if rough == nil {
				continue // always encoded
			}
			if data, _ := json.Marshal(obj); rough(obj)*2 < len(data) {
				t.Errorf("%s: rough size %d, encoded %d", obj.GetName(), rough(obj), len(data))
			}
		}
	}
}
