package dataplane

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// AddPodsShaped is AddPods for pods whose objects need more than AddPods writes: shape gets each
// Pod object before it is created (annotations, probes, container names). Unlike AddPods it puts
// no sidecar annotation on the pods: what marks them as meshed, if anything, is shape's to say
// (ambient pods carry istio-cni's redirection annotation instead).
func (c *Cluster) AddPodsShaped(ctx context.Context, shape func(*Pod, *corev1.Pod), pods ...*Pod) error {
	for _, p := range pods {
		if p.Outside {
			return fmt.Errorf("%s: AddPodsShaped creates Pod objects; add outside hosts with AddPods", p.Key())
		}
		if err := c.pods.take(p); err != nil {
			return err
		}
		if err := c.createShapedPod(ctx, p, shape); err != nil {
			return err
		}
		if err := c.pods.listen(p); err != nil {
			return err
		}
	}
	return nil
}

// createShapedPod is createPod without the sidecar annotation and with shape's changes.
func (c *Cluster) createShapedPod(ctx context.Context, p *Pod, shape func(*Pod, *corev1.Pod)) error {
	var ports []corev1.ContainerPort
	for _, port := range p.Ports {
		ports = append(ports, corev1.ContainerPort{Name: port.Name, ContainerPort: port.Number, Protocol: port.Protocol})
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: p.Namespace, Name: p.Name, Labels: p.Labels},
		Spec: corev1.PodSpec{
			NodeName:                     NodeName,
			ServiceAccountName:           p.ServiceAccount,
			AutomountServiceAccountToken: new(false),
			Containers:                   []corev1.Container{{Name: "app", Image: "listener", Ports: ports}},
		},
	}
	if shape != nil {
		shape(p, pod)
	}
	if err := c.Client.Create(ctx, pod); err != nil {
		return fmt.Errorf("creating pod %s: %w", p.Key(), err)
	}
	pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, HostIP: p.Slot.Gateway,
		PodIP: p.Slot.IP, PodIPs: []corev1.PodIP{{IP: p.Slot.IP}}}
	if err := c.Client.Status().Update(ctx, pod); err != nil {
		return fmt.Errorf("reporting pod %s running: %w", p.Key(), err)
	}
	return nil
}

// AddHostAt creates a host outside the cluster at an address no pod slot has (istio-cni's
// 169.254.7.127, from which the kubelet's probes of ambient pods arrive): a network namespace of
// the run's own (named after the run, so a killed run's is removed by the next) holding that
// address alone, joined to the node by a veth pair whose node end gets gateway. The node routes
// the address to it, so pods answer it. Nothing is added outside the run's namespaces; the
// namespace, its veth pair and the node's address and route on it go with RemoveHost.
func (c *Cluster) AddHostAt(name, address, gateway string) (*Pod, error) {
	for _, a := range []string{address, gateway} {
		if ip, err := netip.ParseAddr(a); err != nil || !ip.Is4() {
			return nil, fmt.Errorf("AddHostAt %s: %q is not an IPv4 address (the node namespace routes IPv4 only)", name, a)
		}
	}
	netns := c.Topology.Prefix + "-h-" + name
	nodeSide := "h-" + name
	if len(nodeSide) > 15 {
		return nil, fmt.Errorf("AddHostAt: host name %q is too long for an interface name", name)
	}
	node := c.Topology.Node
	h := &Pod{Name: name, Outside: true, Slot: Slot{Netns: netns, IP: address, Gateway: gateway}}
	err := ipAll([][]string{
		{"netns", "add", netns},
		{"-n", netns, "link", "set", "lo", "up"},
		{"-n", netns, "link", "add", "eth0", "type", "veth", "peer", "name", nodeSide, "netns", node},
		{"-n", netns, "addr", "add", address + "/32", "dev", "eth0"},
		{"-n", netns, "link", "set", "eth0", "up"},
		{"-n", netns, "route", "add", gateway, "dev", "eth0", "scope", "link"},
		{"-n", netns, "route", "add", "default", "via", gateway, "dev", "eth0"},
		{"-n", node, "addr", "add", gateway + "/32", "dev", nodeSide},
		{"-n", node, "link", "set", nodeSide, "up"},
		{"-n", node, "route", "add", address + "/32", "dev", nodeSide},
	})
	if err != nil {
		return nil, errors.Join(err, c.RemoveHost(h))
	}
	return h, nil
}

// RemoveHost deletes a host AddHostAt made: its namespace, and with it the veth pair and the
// node's address and route on the pair's node end.
func (c *Cluster) RemoveHost(h *Pod) error {
	if !strings.HasPrefix(h.Slot.Netns, c.Topology.Prefix+"-h-") {
		return fmt.Errorf("RemoveHost: %s is not a host AddHostAt made", h.Slot.Netns)
	}
	return deleteNamespaces(func(name string) bool { return name == h.Slot.Netns })
}
