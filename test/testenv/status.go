package testenv

import (
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
)

// Condition returns a condition of the graph, or an empty one.
func Condition(sg *v1alpha1.ServiceGraph, conditionType string) metav1.Condition {
	if c := meta.FindStatusCondition(sg.Status.Conditions, conditionType); c != nil {
		return *c
	}
	return metav1.Condition{}
}

// ReadyAtCurrentGeneration is true once Ready=True describes the graph's current generation.
func ReadyAtCurrentGeneration(sg *v1alpha1.ServiceGraph) bool {
	c := Condition(sg, v1alpha1.ConditionReady)
	return sg.Status.ObservedGeneration == sg.Generation && c.Status == metav1.ConditionTrue && c.ObservedGeneration == sg.Generation
}
