package semantics

import (
	"cmp"
	"net/netip"
	"regexp"
	"strings"

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

// Reserved labels of identities that are not pods.
const (
	ciliumWorld         = "reserved:world"
	ciliumKubeAPIServer = "reserved:kube-apiserver"
)

// CiliumLabels are an identity's labels by SOURCE:KEY ("k8s:app", "reserved:world").
type CiliumLabels map[string]string

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
func (e CiliumEndpoint) world() bool {
	_, ok := e.Labels[ciliumWorld]
	return ok
}

// CiliumPod is a pod as Cilium labels it (pkg/k8s/utils SanitizePodLabels, then the default
// identity-label filter of pkg/labelsfilter): its labels without those Cilium owns
// (io.cilium.k8s...), its namespace's labels under io.cilium.k8s.namespace.labels. (with
// kubernetes.io/metadata.name, which the API server sets), its namespace, its ServiceAccount
// ("default" when unset, as the API server admits a pod) and the cluster's name, all of source
// k8s; less the labels the default filter leaves out of identities (pod-template-hash,
// controller-revision-hash, io.kubernetes..., kubernetes.io..., k8s.io..., ...). A cluster whose
// agent is started with its own --labels filter may keep others.
func CiliumPod(namespace, serviceAccount string, labels, namespaceLabels map[string]string) CiliumEndpoint {
	l := CiliumLabels{}
	put := func(k, v string) {
		if ciliumIdentityLabel(k) {
			l[ciliumSourceK8s+":"+k] = v
		}
	}
	for k, v := range labels {
		if !strings.HasPrefix(k, "io.cilium.k8s") {
			put(k, v)
		}
	}
	for k, v := range NamespaceLabels(namespace, namespaceLabels) {
		put(strings.TrimPrefix(cilium.NamespaceLabelPrefix, cilium.SourcePrefix)+k, v)
	}
	put(strings.TrimPrefix(cilium.LabelNamespace, cilium.SourcePrefix), namespace)
	put(strings.TrimPrefix(cilium.LabelServiceAccount, cilium.SourcePrefix), cmp.Or(serviceAccount, "default"))
	put("io.cilium.k8s.policy.cluster", CiliumClusterName)
	return CiliumEndpoint{Labels: l}
}

// CiliumWorld is an address outside the cluster (a world identity), and the name a destination was
// looked up by ("" for none).
func CiliumWorld(ip, host string) CiliumEndpoint {
	return CiliumEndpoint{Labels: CiliumLabels{ciliumWorld: ""}, IP: ip, Host: host}
}

// CiliumAPIServer is the Kubernetes API server as Cilium labels it when it runs outside the
// cluster's nodes (a managed control plane): kube-apiserver and world (labels.LabelKubeAPIServerExt).
// One on a node of the cluster is that node's identity (host or remote-node) instead of world.
func CiliumAPIServer(ip string) CiliumEndpoint {
	return CiliumEndpoint{Labels: CiliumLabels{ciliumKubeAPIServer: "", ciliumWorld: ""}, IP: ip}
}

// labelPrefix is one entry of pkg/labelsfilter's default list: a regular expression that must
// match at the start of a key, to keep it in identities or (ignore) to leave it out.
type labelPrefix struct {
	ignore bool
	re     *regexp.Regexp
}

// ciliumLabelFilter is pkg/labelsfilter's default list (defaultLabelPrefixCfg).
var ciliumLabelFilter = func() []labelPrefix {
	var out []labelPrefix
	for _, e := range []string{
		`io\.kubernetes\.pod\.namespace`, `io\.cilium\.k8s\.namespace\.labels`, `app\.kubernetes\.io`,
		`io\.cilium\.k8s\.policy\.cluster`, `io\.cilium\.k8s\.policy\.serviceaccount`,
		`!io\.kubernetes`, `!kubernetes\.io`, `!statefulset\.kubernetes\.io/pod-name`,
		`!apps\.kubernetes\.io/pod-index`, `!batch\.kubernetes\.io/job-completion-index`,
		`!batch\.kubernetes\.io/controller-uid`, `!.*beta\.kubernetes\.io`, `!k8s\.io`,
		`!pod-template-generation`, `!pod-template-hash`, `!controller-revision-hash`, `!controller-uid`,
		`!annotation.*`, `!etcd_node`, `!topology\.kubernetes\.io`,
	} {
		rest, ignore := strings.CutPrefix(e, "!")
		out = append(out, labelPrefix{ignore: ignore, re: regexp.MustCompile(rest)})
	}
	return out
}()

// ciliumIdentityLabel tells whether the default filter keeps a Kubernetes label key in identities
// (labelPrefixCfg.filterLabels): kept unless ignored, or when an include prefix matches more of it
// than the shortest ignore prefix.
func ciliumIdentityLabel(key string) bool {
	included, ignored := 0, 0
	for _, p := range ciliumLabelFilter {
		loc := p.re.FindStringIndex(key)
		if loc == nil || loc[0] != 0 {
			continue
		}
		switch n := loc[1]; {
		case p.ignore && (ignored == 0 || n < ignored):
			ignored = n
		case !p.ignore && n > included:
			included = n
		}
	}
	return ignored == 0 || included > ignored
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

// sourcedKey is a selector key with its source written out: what EndpointSelector.Sanitize makes
// of it.
func sourcedKey(key string) string {
	src, name := ciliumKey(key)
	return src + ":" + name
}

// lookup finds the value of the label a selector key names; a key of any source matches a
// Kubernetes label first, then a reserved one (the only sources the endpoints here carry).
func (l CiliumLabels) lookup(key string) (string, bool) {
	src, name := ciliumKey(key)
	if src != ciliumSourceAny {
		v, ok := l[src+":"+name]
		return v, ok
	}
	for _, s := range []string{ciliumSourceK8s, ciliumSourceReserved} {
		if v, ok := l[s+":"+name]; ok {
			return v, true
		}
	}
	return "", false
}

// CiliumSelectorMatches tells whether a selector matches an identity's labels, keys read as
// Cilium reads them (ciliumKey): every matchLabels entry and every expression must hold.
// An operator Cilium does not know matches nothing.
func CiliumSelectorMatches(sel metav1.LabelSelector, l CiliumLabels) bool {
	for k, v := range sel.MatchLabels {
		if got, ok := l.lookup(k); !ok || got != v {
			return false
		}
	}
	for _, e := range sel.MatchExpressions {
		got, ok := l.lookup(e.Key)
		in := ok && containsString(e.Values, got)
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

func containsString(values []string, s string) bool {
	for _, v := range values {
		if v == s {
			return true
		}
	}
	return false
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
		if _, pod := e.Labels["k8s:io.cilium.k8s.policy.cluster"]; pod {
			return true
		}
	case "world-ipv4", "world-ipv6":
		if addr, err := netip.ParseAddr(e.IP); err == nil && e.world() && addr.Is4() == (entity == "world-ipv4") {
			return true
		}
	}
	for _, name := range ciliumEntities[entity] {
		if _, ok := e.Labels[ciliumSourceReserved+":"+name]; ok {
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
