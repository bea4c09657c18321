package world

import (
	"fmt"
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/servicegraph/servicegraph-operator/internal/object"
)

// namespaceLabel is set by Kubernetes on every namespace to its name.
const namespaceLabel = "kubernetes.io/metadata.name"

// Objects are the namespaces and pods of the world, with kube-dns and istiod: one pod per
// service, declaring the named ports.
func (w *World) Objects() []object.Object {
	objs := []object.Object{
		Namespace("kube-system"), Namespace("istio-system"),
		Pod("kube-system", "kube-dns", map[string]string{"k8s-app": "kube-dns"}, 0),
		Pod("istio-system", "istiod", map[string]string{"app": "istiod"}, 1),
	}
	for _, ns := range w.Namespaces {
		objs = append(objs, Namespace(ns))
	}
	for i, s := range w.Services {
		objs = append(objs, Pod(s.Namespace, s.Name, s.Labels(), i+2))
	}
	return objs
}

// Namespace is a namespace with the label Kubernetes sets on it.
func Namespace(name string) *corev1.Namespace {
	return &corev1.Namespace{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{namespaceLabel: name}},
	}
}

// Pod is the i-th pod of the world, declaring the named ports.
func Pod(ns, name string, labels map[string]string, i int) *corev1.Pod {
	var ports []corev1.ContainerPort
	for _, n := range slices.Sorted(maps.Keys(NamedPorts)) {
		ports = append(ports, corev1.ContainerPort{Name: n, ContainerPort: NamedPorts[n], Protocol: corev1.ProtocolTCP})
	}
	ip := fmt.Sprintf("10.0.%d.%d", i/250, i%250+1)
	return &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app", Ports: ports}}},
		Status:     corev1.PodStatus{HostIP: "192.168.0.1", PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}},
	}
}
