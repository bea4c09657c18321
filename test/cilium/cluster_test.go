package cilium

import (
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/cilium/cilium/pkg/fqdn/dns"
	"github.com/cilium/cilium/pkg/identity"
	k8sutils "github.com/cilium/cilium/pkg/k8s/utils"
	"github.com/cilium/cilium/pkg/labels"
	"github.com/cilium/cilium/pkg/labelsfilter"
	"github.com/cilium/cilium/pkg/policy/api"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8slabels "k8s.io/apimachinery/pkg/labels"

	"github.com/servicegraph/servicegraph-operator/internal/compiler"
	"github.com/servicegraph/servicegraph-operator/internal/graph"
	"github.com/servicegraph/servicegraph-operator/test/world"
)

// clusterName is the agent's cluster name: with policy-default-local-cluster (on by default) the
// selectors of a policy are narrowed to it, so every pod carries it.
const clusterName = "default"

// namespaceLabel is set by Kubernetes on every namespace to its name.
const namespaceLabel = "kubernetes.io/metadata.name"

// Pod named ports: the world's, and those the golden graphs name.
var podPorts = func() map[string]int32 {
	m := maps.Clone(world.NamedPorts)
	m["postgres"], m["8443-tcp"] = 5432, 8443
	return m
}()

var logger = slog.New(slog.NewTextHandler(io.Discard, nil))

func init() {
	// The agent's default identity label filter (which labels make an identity).
	if err := labelsfilter.ParseLabelPrefixCfg(logger, nil, nil, ""); err != nil {
		panic(err)
	}
}

// Decoy kinds: pods no graph declares, there so that "nothing extra" means something.
const (
	real      = ""
	stranger  = "stranger"  // in a graph's namespace, labels of no service
	elsewhere = "elsewhere" // a service's labels and ServiceAccount, in another namespace
	impostor  = "impostor"  // a service's labels in its namespace, another ServiceAccount
)

// endpoint is what Cilium gives an identity: a pod, a reserved entity, an address outside the
// cluster (ip:), or an address the DNS proxy saw a name resolve to (dns:).
type endpoint struct {
	key        string
	pod        bool
	decoy      string
	namespace  string
	labels     map[string]string
	sa         string
	namedPorts map[string]int32
	addr       netip.Addr // ip: and dns:
	name       string     // dns: the name
	id         identity.NumericIdentity
	lbls       labels.LabelArray
}

// cluster is every endpoint the graphs can speak of, with an identity each.
type cluster struct {
	namespaces map[string]map[string]string
	endpoints  []*endpoint
	byID       map[identity.NumericIdentity]*endpoint
	byKey      map[string]*endpoint
	nextLocal  identity.NumericIdentity
}

// newCluster lays out the pods of the graphs' services and peers (with decoys), kube-dns and
// istiod, Cilium's reserved identities, addresses in and around every range the graphs name, and
// names in and around every host; fqdns are the toFQDNs selectors of the policies, which decide the
// labels of the addresses learnt through DNS, as Cilium's name manager does.
func newCluster(t *testing.T, graphs []*graph.Graph, fqdns []api.FQDNSelector) *cluster {
	t.Helper()
	c := &cluster{namespaces: map[string]map[string]string{}, byID: map[identity.NumericIdentity]*endpoint{},
		byKey: map[string]*endpoint{}, nextLocal: identity.IdentityScopeLocal + 1}
	opts := compiler.DefaultOptions()
	c.pod(opts.DNS.Namespace, "kube-dns", opts.DNS.Labels, "coredns", real)
	c.pod(opts.Istiod.Namespace, "istiod", opts.Istiod.Labels, "istiod", real)
	var hosts []string
	var cidrs [][2][]string
	for _, g := range graphs {
		c.pod(g.Namespace, "stranger", map[string]string{"app": "stranger"}, "stranger", stranger)
		for _, s := range g.Services {
			switch {
			case s.Remote != nil:
				c.pod(s.Remote.GatewayNamespace, "eastwest-gateway", s.Remote.GatewayLabels, "eastwest", real)
				cidrs = append(cidrs, [2][]string{s.Remote.CIDRs, nil})
			case s.External != nil:
				x := s.External
				hosts = append(hosts, x.Hosts...)
				cidrs = append(cidrs, [2][]string{x.CIDRs, x.Except})
				c.externalPods(t, s.Name, x)
			default:
				c.pod(s.Namespace, s.Name, s.Labels, s.ServiceAccount, real)
				c.pod("elsewhere", s.Name, s.Labels, s.ServiceAccount, elsewhere)
				c.pod(s.Namespace, s.Name+"-impostor", s.Labels, "impostor", impostor)
			}
		}
	}
	for _, r := range cidrs {
		for _, a := range probeAddrs(r[0], r[1]) {
			if _, ok := c.byKey["ip:"+a.String()]; ok {
				continue
			}
			c.add(&endpoint{key: "ip:" + a.String(), addr: a}, labels.GetCIDRLabels(netip.PrefixFrom(a, a.BitLen())).LabelArray())
		}
	}
	// Each name resolves to an address of its own, labelled as Cilium's name manager labels an
	// address once its DNS proxy has seen the name resolve: with the fqdn label of every toFQDNs
	// selector the name matches (ToRegex, the proxy's own matching). That the proxy sees the
	// lookups is the graph's DNS rule's doing (allow-dns with DNS rules); a graph with allowDNS
	// false relies on a policy of its own for that.
	slices.Sort(hosts)
	next := netip.MustParseAddr("198.18.0.1") // the benchmarking range: no graph names it
	for _, name := range probeNames(slices.Compact(hosts)) {
		lbls := labels.GetCIDRLabels(netip.PrefixFrom(next, 32))
		for _, sel := range fqdns {
			if re, err := sel.ToRegex(); err == nil && re.MatchString(dns.FQDN(name)) {
				l := sel.IdentityLabel()
				lbls[l.Key] = l
			}
		}
		c.add(&endpoint{key: "dns:" + name, addr: next, name: name}, lbls.LabelArray())
		next = next.Next()
	}
	identity.IterateReservedIdentities(func(id identity.NumericIdentity, i *identity.Identity) {
		e := &endpoint{key: "reserved:" + id.String(), id: id, lbls: i.LabelArray}
		c.endpoints, c.byID[id], c.byKey[e.key] = append(c.endpoints, e), e, e
	})
	return c
}

// externalPods are pods an external peer with namespaces selects, and pods it must not: another
// pod in its namespaces, and its pods in a namespace it does not select.
func (c *cluster) externalPods(t *testing.T, name string, x *graph.External) {
	t.Helper()
	pod := map[string]string{"app": name}
	if x.PodSelector != nil {
		pod = satisfying(t, x.PodSelector)
	}
	namespaces := x.Namespaces
	if x.NamespaceSelector != nil {
		ns := name + "-ns"
		c.namespaces[ns] = satisfying(t, x.NamespaceSelector)
		namespaces = []string{ns}
	}
	for _, ns := range namespaces {
		c.pod(ns, name, pod, "default", real)
		c.pod(ns, "stranger", map[string]string{"app": "stranger"}, "default", stranger)
	}
	if len(namespaces) > 0 {
		c.pod(name+"-elsewhere", name, pod, "default", elsewhere)
	}
}

// satisfying are labels a selector selects, built from its terms.
func satisfying(t *testing.T, s *metav1.LabelSelector) map[string]string {
	t.Helper()
	out := maps.Clone(s.MatchLabels)
	if out == nil {
		out = map[string]string{}
	}
	for _, e := range s.MatchExpressions {
		switch e.Operator {
		case metav1.LabelSelectorOpIn:
			out[e.Key] = e.Values[0]
		case metav1.LabelSelectorOpExists:
			out[e.Key] = "x"
		}
	}
	if !selects(s, out) {
		t.Fatalf("cannot build labels selector %v selects", s)
	}
	return out
}

func selects(s *metav1.LabelSelector, lbls map[string]string) bool {
	sel, err := metav1.LabelSelectorAsSelector(s)
	return err == nil && sel.Matches(k8slabels.Set(lbls))
}

// pod adds a pod once, with the identity labels the agent derives from the pod, its namespace and
// ServiceAccount (SanitizePodLabels, then the identity label filter).
func (c *cluster) pod(ns, name string, lbls map[string]string, sa, decoy string) {
	key := ns + "/" + name
	if _, ok := c.byKey[key]; ok {
		return
	}
	if _, ok := c.namespaces[ns]; !ok {
		c.namespaces[ns] = map[string]string{}
	}
	c.namespaces[ns][namespaceLabel] = ns
	meta := &metav1.ObjectMeta{Name: ns, Labels: c.namespaces[ns]}
	all := labels.Map2Labels(k8sutils.SanitizePodLabels(maps.Clone(lbls), meta, sa, clusterName), labels.LabelSourceK8s)
	idLabels, _ := labelsfilter.Filter(all)
	c.add(&endpoint{key: key, pod: true, decoy: decoy, namespace: ns, labels: lbls, sa: sa, namedPorts: podPorts}, idLabels.LabelArray())
}

// add gives the endpoint an identity: one per label set, as the allocator does.
func (c *cluster) add(e *endpoint, lbls labels.LabelArray) {
	for _, o := range c.endpoints {
		if o.lbls.Equals(lbls) {
			panic(fmt.Sprintf("%s and %s would share an identity", o.key, e.key))
		}
	}
	e.lbls = lbls
	if e.pod {
		e.id = identity.NumericIdentity(1000 + len(c.endpoints))
	} else {
		e.id, c.nextLocal = c.nextLocal, c.nextLocal+1
	}
	c.endpoints = append(c.endpoints, e)
	c.byID[e.id], c.byKey[e.key] = e, e
}

// peers counts the endpoints a policy can name (not the datapath's aggregates).
func (c *cluster) peers() int {
	n := 0
	for _, e := range c.endpoints {
		if !aggregate(e.id) {
			n++
		}
	}
	return n
}

// identities are every identity with its labels, for the selector caches.
func (c *cluster) identities() identity.IdentityMap {
	m := identity.IdentityMap{}
	for _, e := range c.endpoints {
		m[e.id] = e.lbls
	}
	return m
}

// probeAddrs are the first and last address of each range, those just outside it, and the first
// and last of each except range.
func probeAddrs(cidrs, except []string) []netip.Addr {
	var out []netip.Addr
	edges := func(s string, outside bool) {
		p := netip.MustParsePrefix(s)
		first, last := p.Addr(), lastAddr(p)
		out = append(out, first, last)
		if outside {
			if a := first.Prev(); a.IsValid() {
				out = append(out, a)
			}
			if a := last.Next(); a.IsValid() {
				out = append(out, a)
			}
		}
	}
	for _, s := range cidrs {
		edges(s, true)
	}
	for _, s := range except {
		edges(s, false)
		out = append(out, netip.MustParsePrefix(s).Addr().Prev()) // the last address before it
	}
	return out
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 1 << (7 - i%8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// probeNames are names each host matches and names it must not: for api.stripe.com, itself and
// a name below it; for *.cdn.example.com, names one and two labels below and the bare domain.
func probeNames(hosts []string) []string {
	out := []string{"example.org"}
	for _, h := range hosts {
		if rest, ok := strings.CutPrefix(h, "*."); ok {
			out = append(out, "a."+rest, "a.b."+rest, rest, "x"+rest)
		} else {
			out = append(out, h, "sub."+h, "x"+h)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// hostMatches is a graph host as Istio reads it: a name exactly, "*.domain" any name below domain.
func hostMatches(host, name string) bool {
	if rest, ok := strings.CutPrefix(host, "*."); ok {
		return strings.HasSuffix(strings.ToLower(name), "."+strings.ToLower(rest))
	}
	return strings.EqualFold(host, name)
}
