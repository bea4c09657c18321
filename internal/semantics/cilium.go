package semantics

import (
	"cmp"
	"net/netip"
	"slices"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/servicegraph/servicegraph-operator/internal/cilium"
)

// Cilium's CiliumNetworkPolicy (cilium.io/v2), as Cilium v1.20's agent enforces it. Cilium matches
// a policy's selectors against the labels of an identity, each label with a source: a pod's come
// from Kubernetes ("k8s"), an address outside the cluster and the API server have reserved ones
// ("reserved:world", "reserved:kube-apiserver"). Sources read here: pkg/labels (labels.go,
// array.go), pkg/labelsfilter/filter.go, pkg/k8s/utils/utils.go (SanitizePodLabels),
// pkg/k8s/apis/cilium.io/utils/utils.go (ParseToCiliumRule), pkg/policy/api (selector.go,
// entity.go, fqdn.go, rule_validation.go), pkg/policy/types (selector.go, requirements.go),
// pkg/policy/utils/parserules.go, pkg/policy (repository.go, rule.go, l4.go) and
// pkg/fqdn/matchpattern.

// CiliumClusterName is the cluster name Cilium gives its pods' io.cilium.k8s.policy.cluster label
// when none is configured.
const CiliumClusterName = "default"

// Label sources a selector key may name (pkg/labels): "any" (a key without a source) matches a
// label of any source.
const (
	ciliumSourceAny      = "any"
	ciliumSourceK8s      = "k8s"
	ciliumSourceReserved = "reserved"
)

// CiliumLabels are an identity's labels: those of source k8s by key (a pod's), and the reserved
// ones by name ("world", "kube-apiserver": an identity that is no pod). No other source occurs
// here.
type CiliumLabels struct {
	K8s      map[string]string
	Reserved map[string]bool
}

// lookup finds the value of the label of a source and name ("any": a Kubernetes label first, then
// a reserved one).
func (l CiliumLabels) lookup(source, name string) (string, bool) {
	switch source {
	case ciliumSourceK8s:
		v, ok := l.K8s[name]
		return v, ok
	case ciliumSourceReserved:
		return "", l.Reserved[name]
	case ciliumSourceAny:
		if v, ok := l.K8s[name]; ok {
			return v, true
		}
		return "", l.Reserved[name]
	}
	return "", false
}

// CiliumEndpoint is one end of a connection as Cilium's policies see it: a pod's labels (see
// CiliumPod), or an identity outside the cluster (CiliumWorld, CiliumAPIServer) with its address
// and, for a destination, the DNS name Cilium's DNS proxy saw it looked up by.
type CiliumEndpoint struct {
	Labels CiliumLabels
	// IP is the address of an endpoint outside the cluster ("" when not known): CIDR rules match
	// it.
	IP string
	// Host is the name a destination outside the cluster was looked up by, through Cilium's DNS
	// proxy ("" for none): toFQDNs rules match it.
	Host string
}

// world tells whether the endpoint is outside the cluster, as Cilium's world identities are.
func (e CiliumEndpoint) world() bool { return e.Labels.Reserved["world"] }

// Keys of the labels Cilium gives a pod, without their source.
var (
	ciliumNamespaceKey       = strings.TrimPrefix(cilium.LabelNamespace, cilium.SourcePrefix)
	ciliumServiceAccountKey  = strings.TrimPrefix(cilium.LabelServiceAccount, cilium.SourcePrefix)
	ciliumNamespaceLabelsKey = strings.TrimPrefix(cilium.NamespaceLabelPrefix, cilium.SourcePrefix)
	ciliumClusterKey         = "io.cilium.k8s.policy.cluster"
)

// CiliumPod is a pod as Cilium labels it (pkg/k8s/utils SanitizePodLabels, then the default
// identity-label filter of pkg/labelsfilter): its labels without those Cilium owns
// (io.cilium.k8s...), its namespace's labels under io.cilium.k8s.namespace.labels. (with
// kubernetes.io/metadata.name, which the API server sets), its namespace, its ServiceAccount
// ("default" when unset, as the API server admits a pod) and the cluster's name, all of source
// k8s; less the labels the default filter leaves out of identities (pod-template-hash,
// controller-revision-hash, io.kubernetes..., kubernetes.io..., k8s.io..., ...). A cluster whose
// agent is started with its own --labels filter may keep others.
func CiliumPod(namespace, serviceAccount string, labels, namespaceLabels map[string]string) CiliumEndpoint {
	l := make(map[string]string, len(labels)+len(namespaceLabels)+4)
	put := func(k, v string) {
		if ciliumIdentityLabel(k) {
			l[k] = v
		}
	}
	for k, v := range labels {
		if !strings.HasPrefix(k, "io.cilium.k8s") {
			put(k, v)
		}
	}
	for k, v := range namespaceLabels {
		put(ciliumNamespaceLabelsKey+k, v)
	}
	put(ciliumNamespaceLabelsKey+corev1.LabelMetadataName, namespace)
	put(ciliumNamespaceKey, namespace)
	put(ciliumServiceAccountKey, cmp.Or(serviceAccount, "default"))
	put(ciliumClusterKey, CiliumClusterName)
	return CiliumEndpoint{Labels: CiliumLabels{K8s: l}}
}

// CiliumWorld is an address outside the cluster (a world identity), and the name a destination was
// looked up by ("" for none).
func CiliumWorld(ip, host string) CiliumEndpoint {
	return CiliumEndpoint{Labels: CiliumLabels{Reserved: map[string]bool{"world": true}}, IP: ip, Host: host}
}

// CiliumAPIServer is the Kubernetes API server as Cilium labels it when it runs outside the
// cluster's nodes (a managed control plane): kube-apiserver and world (labels.LabelKubeAPIServerExt).
// One on a node of the cluster is that node's identity (host or remote-node) instead of world.
func CiliumAPIServer(ip string) CiliumEndpoint {
	return CiliumEndpoint{Labels: CiliumLabels{Reserved: map[string]bool{"kube-apiserver": true, "world": true}}, IP: ip}
}

// ciliumLabelFilter is pkg/labelsfilter's default list (defaultLabelPrefixCfg): a label is kept
// in identities unless an ignore prefix matches the start of its key and no longer include prefix
// does. Every entry is a literal prefix but ".*beta.kubernetes.io" (up to the last occurrence)
// and "annotation.*" (the whole key).
var ciliumLabelFilter = []struct {
	prefix string
	ignore bool
}{
	{"io.kubernetes.pod.namespace", false}, {"io.cilium.k8s.namespace.labels", false}, {"app.kubernetes.io", false},
	{"io.cilium.k8s.policy.cluster", false}, {"io.cilium.k8s.policy.serviceaccount", false},
	{"io.kubernetes", true}, {"kubernetes.io", true}, {"statefulset.kubernetes.io/pod-name", true},
	{"apps.kubernetes.io/pod-index", true}, {"batch.kubernetes.io/job-completion-index", true},
	{"batch.kubernetes.io/controller-uid", true}, {"k8s.io", true}, {"pod-template-generation", true},
	{"pod-template-hash", true}, {"controller-revision-hash", true}, {"controller-uid", true},
	{"etcd_node", true}, {"topology.kubernetes.io", true},
}

var identityLabels sync.Map // key → bool: ciliumIdentityLabel's answers

// ciliumIdentityLabel tells whether the default filter keeps a Kubernetes label key in identities
// (labelPrefixCfg.filterLabels): kept unless ignored, or when an include prefix matches more of it
// than the shortest ignore prefix.
func ciliumIdentityLabel(key string) bool {
	if v, ok := identityLabels.Load(key); ok {
		return v.(bool)
	}
	included, ignored := 0, 0
	ignore := func(n int) {
		if ignored == 0 || n < ignored {
			ignored = n
		}
	}
	for _, p := range ciliumLabelFilter {
		switch {
		case !strings.HasPrefix(key, p.prefix):
		case p.ignore:
			ignore(len(p.prefix))
		default:
			included = max(included, len(p.prefix))
		}
	}
	if i := strings.LastIndex(key, "beta.kubernetes.io"); i >= 0 {
		ignore(i + len("beta.kubernetes.io"))
	}
	if strings.HasPrefix(key, "annotation") {
		ignore(len(key))
	}
	keep := ignored == 0 || included > ignored
	identityLabels.Store(key, keep)
	return keep
}

// ciliumKey reads a selector key as Cilium does (labels.ParseSelectLabel): SOURCE:KEY, "$KEY" for
// a reserved label, and a key without a source matches a label of any source.
func ciliumKey(key string) (source, name string) {
	if rest, ok := strings.CutPrefix(key, "$"); ok {
		return ciliumSourceReserved, rest
	}
	if src, rest, ok := strings.Cut(key, ":"); ok && src != "" {
		return src, rest
	}
	return ciliumSourceAny, strings.TrimPrefix(key, ":")
}

// CiliumSelectorMatches tells whether a selector matches an identity's labels, keys read as
// Cilium reads them (ciliumKey): every matchLabels entry and every expression must hold.
// An operator Cilium does not know matches nothing.
func CiliumSelectorMatches(sel metav1.LabelSelector, l CiliumLabels) bool {
	return ciliumMatches(sel, l, nil)
}

// ciliumMatches is CiliumSelectorMatches with the matchLabels entries skip accepts left out.
func ciliumMatches(sel metav1.LabelSelector, l CiliumLabels, skip func(source, name string) bool) bool {
	for k, v := range sel.MatchLabels {
		src, name := ciliumKey(k)
		if skip != nil && skip(src, name) {
			continue
		}
		if got, ok := l.lookup(src, name); !ok || got != v {
			return false
		}
	}
	for _, e := range sel.MatchExpressions {
		src, name := ciliumKey(e.Key)
		got, ok := l.lookup(src, name)
		in := ok && slices.Contains(e.Values, got)
		switch e.Operator {
		case metav1.LabelSelectorOpIn:
			if !in {
				return false
			}
		case metav1.LabelSelectorOpNotIn:
			if in {
				return false
			}
		case metav1.LabelSelectorOpExists:
			if !ok {
				return false
			}
		case metav1.LabelSelectorOpDoesNotExist:
			if ok {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// CiliumCIDRMatches tells whether a CIDR rule matches an endpoint: one outside the cluster (a CIDR
// selects world identities only, Cilium's default policy-cidr-match-mode) whose address is in the
// range and in none of its exceptions. A bare address is a /32 (or /128).
func CiliumCIDRMatches(r cilium.CIDRRule, e CiliumEndpoint) bool {
	addr, err := netip.ParseAddr(e.IP)
	if err != nil || !e.world() {
		return false
	}
	if p, err := IstioCIDR(r.Cidr); err != nil || !p.Masked().Contains(addr) {
		return false
	}
	for _, x := range r.ExceptCIDRs {
		if p, err := IstioCIDR(x); err == nil && p.Masked().Contains(addr) {
			return false
		}
	}
	return true
}

// ciliumEntities are the reserved labels each entity selects (api.EntitySelectorMapping); "all"
// and "cluster" are below.
var ciliumEntities = map[string][]string{
	cilium.EntityWorld:   {"world", "world-ipv4", "world-ipv6"},
	"world-ipv4":         {"world-ipv4"},
	"world-ipv6":         {"world-ipv6"},
	"host":               {"host"},
	"remote-node":        {"remote-node"},
	"init":               {"init"},
	"ingress":            {"ingress"},
	"health":             {"health"},
	"unmanaged":          {"unmanaged"},
	"none":               {"none"},
	"kube-apiserver":     {"kube-apiserver"},
	cilium.EntityCluster: {"host", "remote-node", "init", "ingress", "health", "unmanaged", "kube-apiserver"},
	"cluster-mesh":       {"host", "remote-node", "init", "ingress", "health", "unmanaged", "kube-apiserver"},
	cilium.EntityAll:     nil,
}

// CiliumEntityMatches tells whether an entity selects an endpoint: "all" every one, "cluster"
// every pod of the cluster and the cluster's nodes and API server, "world" what is outside the
// cluster (world-ipv4 and world-ipv6 by the address's family), others their reserved identity.
func CiliumEntityMatches(entity string, e CiliumEndpoint) bool {
	switch entity {
	case cilium.EntityAll:
		return true
	case cilium.EntityCluster, "cluster-mesh":
		if _, pod := e.Labels.K8s[ciliumClusterKey]; pod {
			return true
		}
	case "world-ipv4", "world-ipv6":
		if addr, err := netip.ParseAddr(e.IP); err == nil && e.world() && addr.Is4() == (entity == "world-ipv4") {
			return true
		}
	}
	for _, name := range ciliumEntities[entity] {
		if e.Labels.Reserved[name] {
			return true
		}
	}
	return false
}

// validEntity tells whether Cilium knows an entity.
func validEntity(entity string) bool {
	_, ok := ciliumEntities[entity]
	return ok
}
