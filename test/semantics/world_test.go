package semantics_test

import (
	"cmp"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/servicegraph/servicegraph-operator/internal/eval"
	"github.com/servicegraph/servicegraph-operator/internal/object"
	"github.com/servicegraph/servicegraph-operator/internal/render"
	"github.com/servicegraph/servicegraph-operator/internal/semantics"
)

const (
	// nsNameLabel is the label Kubernetes sets on every namespace to its name.
	nsNameLabel = "kubernetes.io/metadata.name"
	// noneLabel is a label no policy names: it marks the pod and the namespace built to satisfy no
	// selector.
	noneLabel = "semantics.test/none"
	// elsewhere is the namespace that satisfies no namespaceSelector (as far as one can).
	elsewhere = "elsewhere"
	// outside is an address outside the cluster and the ranges the random policies name (but
	// 0.0.0.0/0).
	outside = "192.0.2.7"
)

// protocols are the protocols a NetworkPolicy port may name; every probe goes over each.
var protocols = []corev1.Protocol{corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP}

// knownPorts are the numbers the pods give the port names the random policies use; other names
// (the corpus's) get numbers from 20000 up.
var knownPorts = map[string]int32{"http": 8080, "dns": 53, "metrics": 9102, "grpc": 9090}

// world is a cluster small enough to ask about every connection in it: namespaces, pods (eval's
// workloads, never meshed), addresses outside the cluster, the policies, and the port numbers to
// probe on every protocol.
type world struct {
	name       string
	namespaces map[string]map[string]string // name → labels, kubernetes.io/metadata.name included
	pods       []*eval.Workload
	addrs      []netip.Addr
	policies   []*networkingv1.NetworkPolicy
	ports      []int32
}

// newWorld builds the world of a policy set. Namespaces: the policies', the given ones (with
// their labels), for each namespaceSelector no namespace satisfies yet one with labels satisfying
// it, and one ("elsewhere") satisfying none. In each namespace, one pod per label set: the given
// ones, for the policy's podSelector and each peer's podSelector that no set satisfies yet labels
// satisfying it, and labels satisfying none. Every pod declares container ports for the numbered
// and named ports the rules name, but the pod satisfying none, which declares none. Addresses: the
// edges of every ipBlock and of its excepts, and one outside the cluster. Probed ports: each
// numbered port, both ends of each range and the port on each side of it, the number of each named
// port, and a port no rule names.
func newWorld(name string, policies []*networkingv1.NetworkPolicy, namespaces map[string]map[string]string, labelSets []map[string]string) *world {
	w := &world{name: name, namespaces: map[string]map[string]string{}, policies: policies}
	for ns, l := range namespaces {
		w.namespaces[ns] = maps.Clone(l)
	}
	addNamespace := func(ns string, l map[string]string) {
		if w.namespaces[ns] == nil {
			w.namespaces[ns] = map[string]string{}
		}
		maps.Copy(w.namespaces[ns], l)
	}
	addLabels := func(l map[string]string) {
		if !slices.ContainsFunc(labelSets, func(x map[string]string) bool { return maps.Equal(x, l) }) {
			labelSets = append(labelSets, l)
		}
	}
	labelSets = slices.Clone(labelSets)
	// A selector gets a namespace or a label set of its own unless one already satisfies it.
	selectPods := func(sel *metav1.LabelSelector) {
		if !slices.ContainsFunc(labelSets, func(l map[string]string) bool { return matches(sel, l) }) {
			addLabels(semantics.LabelsMatching(sel))
		}
	}
	selectNamespace := func(sel *metav1.LabelSelector) {
		for ns, l := range w.namespaces {
			if matches(sel, withName(ns, l)) {
				return
			}
		}
		l := semantics.LabelsMatching(sel)
		ns := l[nsNameLabel]
		if ns == "" {
			ns = fmt.Sprintf("ns-%d", len(w.namespaces))
		}
		addNamespace(ns, l)
	}
	named := map[string][]corev1.Protocol{}
	numbered := map[corev1.Protocol][]int32{}
	var blocks []*networkingv1.IPBlock
	for _, np := range policies {
		addNamespace(np.Namespace, nil)
		selectPods(&np.Spec.PodSelector)
		var peers []networkingv1.NetworkPolicyPeer
		var ports []networkingv1.NetworkPolicyPort
		for _, r := range np.Spec.Ingress {
			peers, ports = append(peers, r.From...), append(ports, r.Ports...)
		}
		for _, r := range np.Spec.Egress {
			peers, ports = append(peers, r.To...), append(ports, r.Ports...)
		}
		for _, p := range peers {
			if p.NamespaceSelector != nil {
				selectNamespace(p.NamespaceSelector)
			}
			if p.PodSelector != nil {
				selectPods(p.PodSelector)
			}
			if p.IPBlock != nil {
				blocks = append(blocks, p.IPBlock)
			}
		}
		for _, p := range ports {
			proto := protocolOf(p.Protocol)
			switch {
			case p.Port == nil:
			case p.Port.StrVal != "":
				if !slices.Contains(named[p.Port.StrVal], proto) {
					named[p.Port.StrVal] = append(named[p.Port.StrVal], proto)
				}
			default:
				numbered[proto] = append(numbered[proto], p.Port.IntVal)
				w.ports = append(w.ports, p.Port.IntVal)
				if p.EndPort != nil {
					numbered[proto] = append(numbered[proto], *p.EndPort)
					w.ports = append(w.ports, p.Port.IntVal-1, *p.EndPort, *p.EndPort+1)
				}
			}
		}
	}
	addNamespace(elsewhere, map[string]string{noneLabel: "true"})
	for ns := range w.namespaces {
		w.namespaces[ns][nsNameLabel] = ns // as the API server sets it, whatever a selector wanted
	}
	addLabels(map[string]string{noneLabel: "true"})

	// Named ports get distinct numbers; a name the rules use with several protocols is declared
	// with each in turn by successive pods (a pod's port names are unique).
	names := slices.Sorted(maps.Keys(named))
	numberOf := map[string]int32{}
	next := int32(20000)
	for _, n := range names {
		if p, ok := knownPorts[n]; ok {
			numberOf[n] = p
			continue
		}
		numberOf[n] = next
		next++
	}
	for i, ns := range slices.Sorted(maps.Keys(w.namespaces)) {
		for j, l := range labelSets {
			pod := &eval.Workload{
				Namespace: ns, Name: fmt.Sprintf("pod-%d", j), Labels: maps.Clone(l),
				IP: fmt.Sprintf("10.244.%d.%d", i, j+1), ServiceAccount: "default",
			}
			if l[noneLabel] == "" {
				for _, n := range names {
					pod.Ports = append(pod.Ports, corev1.ContainerPort{Name: n, ContainerPort: numberOf[n], Protocol: named[n][len(w.pods)%len(named[n])]})
				}
				for _, proto := range protocols {
					for _, p := range slices.Compact(slices.Sorted(slices.Values(numbered[proto]))) {
						if !slices.ContainsFunc(pod.Ports, func(c corev1.ContainerPort) bool { return c.ContainerPort == p && c.Protocol == proto }) {
							pod.Ports = append(pod.Ports, corev1.ContainerPort{ContainerPort: p, Protocol: proto})
						}
					}
				}
			}
			w.pods = append(w.pods, pod)
		}
	}
	for _, p := range numberOf {
		w.ports = append(w.ports, p)
	}
	w.ports = append(w.ports, unnamedPort(policies))
	w.ports = slices.DeleteFunc(w.ports, func(p int32) bool { return p < 1 || p > 65535 })
	slices.Sort(w.ports)
	w.ports = slices.Compact(w.ports)

	podIPs := map[netip.Addr]bool{}
	for _, p := range w.pods {
		podIPs[netip.MustParseAddr(p.IP)] = true
	}
	addrs := []netip.Addr{netip.MustParseAddr(outside)}
	for _, b := range blocks {
		for _, c := range append([]string{b.CIDR}, b.Except...) {
			if p, err := netip.ParsePrefix(c); err == nil && p.Addr().Is4() {
				addrs = append(addrs, edges(p.Masked())...)
			}
		}
	}
	for _, a := range addrs {
		if a.IsValid() && !podIPs[a] && !slices.Contains(w.addrs, a) {
			w.addrs = append(w.addrs, a)
		}
	}
	slices.SortFunc(w.addrs, netip.Addr.Compare)
	return w
}

// edges are a range's first and last addresses and the addresses just outside it.
func edges(p netip.Prefix) []netip.Addr {
	first := p.Addr()
	last := first
	for i := p.Bits(); i < 32; i++ {
		b := last.As4()
		bit := 31 - i
		b[3-bit/8] |= 1 << (bit % 8)
		last = netip.AddrFrom4(b)
	}
	return []netip.Addr{first, last, first.Prev(), last.Next()}
}

// unnamedPort is a port no rule of the policies names, in no range.
func unnamedPort(policies []*networkingv1.NetworkPolicy) int32 {
	for _, candidate := range []int32{7777, 23456, 1, 65535, 40001} {
		named := false
		for _, np := range policies {
			for _, p := range rulePorts(np) {
				if p.Port != nil && p.Port.StrVal == "" && p.Port.IntVal <= candidate && candidate <= cmp.Or(ptrValue(p.EndPort), p.Port.IntVal) {
					named = true
				}
			}
		}
		if !named {
			return candidate
		}
	}
	return 40001
}

func rulePorts(np *networkingv1.NetworkPolicy) []networkingv1.NetworkPolicyPort {
	var out []networkingv1.NetworkPolicyPort
	for _, r := range np.Spec.Ingress {
		out = append(out, r.Ports...)
	}
	for _, r := range np.Spec.Egress {
		out = append(out, r.Ports...)
	}
	return out
}

func ptrValue(p *int32) int32 {
	if p == nil {
		return 0
	}
	return *p
}

func protocolOf(p *corev1.Protocol) corev1.Protocol {
	if p == nil {
		return corev1.ProtocolTCP
	}
	return *p
}

// matches tells whether a selector matches labels.
func matches(sel *metav1.LabelSelector, l map[string]string) bool {
	s, err := metav1.LabelSelectorAsSelector(sel)
	return err == nil && s.Matches(labels.Set(l))
}

// withName are a namespace's labels with kubernetes.io/metadata.name.
func withName(ns string, l map[string]string) map[string]string {
	out := maps.Clone(l)
	if out == nil {
		out = map[string]string{}
	}
	out[nsNameLabel] = ns
	return out
}

// endpoint is a connection's end: a pod, or an address outside the cluster.
type endpoint struct {
	pod  *eval.Workload
	addr netip.Addr
}

func (e endpoint) String() string {
	if e.pod != nil {
		return e.pod.Namespace + "/" + e.pod.Name
	}
	return e.addr.String()
}

func (w *world) endpoints() []endpoint {
	var out []endpoint
	for _, p := range w.pods {
		out = append(out, endpoint{pod: p})
	}
	for _, a := range w.addrs {
		out = append(out, endpoint{addr: a})
	}
	return out
}

// objects are the world as the API server would hold it: namespaces, running pods with their IPs
// and ports, and the policies.
func (w *world) objects() []object.Object {
	var objs []object.Object
	for _, ns := range slices.Sorted(maps.Keys(w.namespaces)) {
		objs = append(objs, &corev1.Namespace{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
			ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: maps.Clone(w.namespaces[ns])},
		})
	}
	for _, p := range w.pods {
		objs = append(objs, &corev1.Pod{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
			ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace, Labels: maps.Clone(p.Labels)},
			Spec: corev1.PodSpec{
				ServiceAccountName: p.ServiceAccount,
				Containers:         []corev1.Container{{Name: "app", Image: "app", Ports: slices.Clone(p.Ports)}},
			},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, HostIP: "192.168.0.1", PodIP: p.IP, PodIPs: []corev1.PodIP{{IP: p.IP}}},
		})
	}
	for _, np := range w.policies {
		objs = append(objs, typedPolicy(np))
	}
	return objs
}

func typedPolicy(np *networkingv1.NetworkPolicy) *networkingv1.NetworkPolicy {
	c := np.DeepCopy()
	c.TypeMeta = metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"}
	return c
}

// policiesYAML prints the policies as a multi-document YAML stream.
func policiesYAML(policies []*networkingv1.NetworkPolicy) string {
	objs := make([]object.Object, len(policies))
	for i, np := range policies {
		objs[i] = typedPolicy(np)
	}
	out, err := render.YAML(objs)
	if err != nil {
		return err.Error()
	}
	return string(out)
}

// describe prints the world's namespaces and pods, for a failure message.
func (w *world) describe() string {
	var b strings.Builder
	for _, ns := range slices.Sorted(maps.Keys(w.namespaces)) {
		fmt.Fprintf(&b, "namespace %s %v\n", ns, labels.Set(w.namespaces[ns]))
	}
	for _, p := range w.pods {
		var ports []string
		for _, c := range p.Ports {
			ports = append(ports, fmt.Sprintf("%s=%s/%d", cmp.Or(c.Name, "-"), c.Protocol, c.ContainerPort))
		}
		fmt.Fprintf(&b, "pod %s/%s ip %s labels {%v} ports [%s]\n", p.Namespace, p.Name, p.IP, labels.Set(p.Labels), strings.Join(ports, " "))
	}
	return b.String()
}
