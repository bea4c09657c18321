package traffic

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/servicegraph/servicegraph-operator/internal/object"
	"github.com/servicegraph/servicegraph-operator/test/world"
)

// Manifests are the scenario's namespaces (sidecar injection on), a Deployment per workload and
// the Services in front of them: one per port the traffic reaches a workload on, or one with all
// of them for a MultiPort workload. Service ports differ from the pod ports they target, and a
// named pod port is targeted by its name, so discover must resolve both.
func (s *Scenario) Manifests() []object.Object {
	var objs []object.Object
	for _, ns := range s.World.Namespaces {
		n := world.Namespace(ns)
		n.Labels["istio-injection"] = "enabled"
		objs = append(objs, n)
	}
	for _, w := range s.Workloads {
		objs = append(objs, deployment(w))
		ports := s.ServicePorts(w)
		if w.MultiPort || len(ports) == 1 {
			objs = append(objs, service(w, w.Name, ports))
			continue
		}
		for _, p := range ports {
			objs = append(objs, service(w, fmt.Sprintf("%s-%d", w.Name, p), []int32{p}))
		}
	}
	return objs
}

// YAML is the objects as one multi-document file.
func YAML(objs []object.Object) ([]byte, error) {
	var docs []string
	for _, o := range objs {
		data, err := yaml.Marshal(o)
		if err != nil {
			return nil, err
		}
		docs = append(docs, string(data))
	}
	return []byte(strings.Join(docs, "---\n")), nil
}

func deployment(w *Workload) *appsv1.Deployment {
	var ports []corev1.ContainerPort
	for _, name := range slices.Sorted(maps.Keys(world.NamedPorts)) {
		ports = append(ports, corev1.ContainerPort{Name: name, ContainerPort: world.NamedPorts[name], Protocol: corev1.ProtocolTCP})
	}
	for _, p := range w.Ports {
		ports = append(ports, corev1.ContainerPort{ContainerPort: p, Protocol: corev1.ProtocolTCP})
	}
	return &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: w.Name, Namespace: w.Namespace},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: w.Labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: w.Labels},
				Spec: corev1.PodSpec{ServiceAccountName: w.ServiceAccount,
					Containers: []corev1.Container{{Name: "app", Image: "registry.example/" + w.Name, Ports: ports}}},
			},
		},
	}
}

// service is a Service named name selecting the workload's pods on the pod ports given.
func service(w *Workload, name string, podPorts []int32) *corev1.Service {
	svc := &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: w.Namespace},
		Spec:       corev1.ServiceSpec{Selector: w.Labels},
	}
	for i, p := range podPorts {
		target := intstr.FromInt32(p)
		if n := portName(p); n != "" {
			target = intstr.FromString(n)
		}
		svc.Spec.Ports = append(svc.Spec.Ports, corev1.ServicePort{Name: fmt.Sprintf("p%d", p), Port: 20000 + int32(i),
			TargetPort: target, Protocol: corev1.ProtocolTCP})
	}
	return svc
}
