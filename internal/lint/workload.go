package lint

import (
	"encoding/json"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// podShape is what lint reads of a pod or pod template: labels, annotations, containers' ports, and
// whether it runs on the node's network.
type podShape struct {
	Metadata metav1.ObjectMeta `json:"metadata"`
	Spec     struct {
		HostNetwork bool `json:"hostNetwork"`
		Containers  []struct {
			Name  string                 `json:"name"`
			Ports []corev1.ContainerPort `json:"ports"`
		} `json:"containers"`
	} `json:"spec"`
}

// ReadWorkload reads (from JSON) a workload's kind, name and namespace and its pods' labels,
// annotations, container ports and hostNetwork, leniently: nothing else of it is checked, and a
// malformed container only loses its ports.
func ReadWorkload(data []byte, w *corev1.PodTemplate) error {
	var obj struct {
		metav1.TypeMeta `json:",inline"`
		Metadata        metav1.ObjectMeta `json:"metadata"`
		Spec            struct {
			Template    json.RawMessage `json:"template"`
			JobTemplate struct {
				Spec struct {
					Template json.RawMessage `json:"template"`
				} `json:"spec"`
			} `json:"jobTemplate"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(data, &obj); err != nil {
		return err
	}
	w.TypeMeta, w.Name, w.Namespace = obj.TypeMeta, obj.Metadata.Name, obj.Metadata.Namespace
	pod := obj.Spec.Template
	switch obj.Kind {
	case "Pod":
		pod = data
	case "CronJob":
		pod = obj.Spec.JobTemplate.Spec.Template
	}
	var shape podShape
	_ = json.Unmarshal(pod, &shape) // lenient: what decodes is kept
	w.Template.Labels, w.Template.Annotations = shape.Metadata.Labels, shape.Metadata.Annotations
	w.Template.Spec.HostNetwork = shape.Spec.HostNetwork
	for _, c := range shape.Spec.Containers {
		w.Template.Spec.Containers = append(w.Template.Spec.Containers, corev1.Container{Name: c.Name, Ports: c.Ports})
	}
	return nil
}
