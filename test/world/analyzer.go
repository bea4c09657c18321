package world

import (
	"fmt"
	"maps"
	"slices"

	"github.com/np-guard/netpol-analyzer/pkg/netpol/connlist"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/resource"

	"github.com/servicegraph/servicegraph-operator/internal/object"
	"github.com/servicegraph/servicegraph-operator/internal/render"
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

// Analyze returns the connections np-guard's netpol-analyzer finds allowed among the objects
// (namespaces, pods and NetworkPolicies, in the form the reconciler applies) that involve one of
// the given namespaces. An IP range or a port range is listed as such.
func Analyze(objs []object.Object, namespaces []string) (Connections, error) {
	var infos []*resource.Info
	for _, o := range objs {
		u, err := render.ToUnstructured(o)
		if err != nil {
			return nil, err
		}
		infos = append(infos, &resource.Info{Object: u, Source: "objects"})
	}
	analyzer := connlist.NewConnlistAnalyzer(connlist.WithMuteErrsAndWarns())
	conns, _, err := analyzer.ConnlistFromResourceInfos(infos)
	if err != nil {
		return nil, fmt.Errorf("analyzer: %w", err)
	}
	for _, e := range analyzer.Errors() {
		return nil, fmt.Errorf("analyzer: %w", e.Error())
	}
	got := Connections{}
	for _, c := range conns {
		src, dst := c.Src(), c.Dst()
		if !slices.Contains(namespaces, src.Namespace()) && !slices.Contains(namespaces, dst.Namespace()) {
			continue
		}
		srcKey, dstKey := peerKey(src), peerKey(dst)
		if c.AllProtocolsAndPorts() {
			got[srcKey+" -> "+dstKey+" ALL"] = true
			continue
		}
		for proto, ranges := range c.ProtocolsAndPorts() {
			for _, r := range ranges {
				if r.Start() != r.End() {
					got[fmt.Sprintf("%s -> %s %s/%d-%d", srcKey, dstKey, proto, r.Start(), r.End())] = true
					continue
				}
				got.Add(srcKey, dstKey, proto, int32(r.Start()))
			}
		}
	}
	return got, nil
}

func peerKey(p connlist.Peer) string {
	if p.IsPeerIPType() {
		return "ip:" + p.String()
	}
	return p.Namespace() + "/" + p.Name()
}
