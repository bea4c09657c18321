package cilium

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/cilium/cilium/pkg/crypto/certificatemanager"
	"github.com/cilium/cilium/pkg/endpoint/regeneration"
	envoypolicy "github.com/cilium/cilium/pkg/envoy/policy"
	"github.com/cilium/cilium/pkg/identity"
	ipcachetypes "github.com/cilium/cilium/pkg/ipcache/types"
	"github.com/cilium/cilium/pkg/option"
	"github.com/cilium/cilium/pkg/policy"
	"github.com/cilium/cilium/pkg/policy/api"
	policyutils "github.com/cilium/cilium/pkg/policy/utils"
	testpolicy "github.com/cilium/cilium/pkg/testutils/policy"
	ciliumtypes "github.com/cilium/cilium/pkg/types"
	"github.com/cilium/cilium/pkg/u8proto"
)

// Table is what a set of policies lets through, one line per endpoint, direction, protocol, port
// and peer: "shop/database in TCP/5432 shop/api" → what the peer may send at layer 7 there:
// "L4" (anything), or its HTTP or DNS rules. ANY stands for every protocol or port, * for every
// identity.
type Table map[string]string

func (t Table) add(ep, dir, proto, port, peer, l7 string) {
	t[fmt.Sprintf("%s %s %s/%s %s", ep, dir, proto, port, peer)] = l7
}

// Lines lists the table sorted, for diffs.
func (t Table) Lines() []string {
	out := make([]string, 0, len(t))
	for k, v := range t {
		out = append(out, k+" => "+v)
	}
	slices.Sort(out)
	return out
}

// anyL7 is a peer's layer 7 when nothing restricts it.
const anyL7 = "L4"

// namedResource is one policy the agent imports, under the resource the watcher files it under.
type namedResource struct {
	namespace, name string
	rules           api.Rules
}

// engine is Cilium's policy repository holding the policies, with the cluster's identities in
// both selector caches, as the agent has it once the policies and endpoints are known.
type engine struct {
	repo    *policy.Repository
	cluster *cluster
}

func newEngine(c *cluster, resources []namedResource) *engine {
	policy.SetPolicyEnabled(option.DefaultEnforcement)
	// On Kubernetes the agent turns allow-localhost "auto" into "always": the node (the kubelet's
	// probes) reaches its pods whatever the policies say.
	option.Config.UnsafeDaemonConfigOption.AllowLocalhost = option.AllowLocalhostAlways
	repo := policy.NewPolicyRepository(logger, nil, nil,
		envoypolicy.NewEnvoyL7RulesTranslator(logger, certificatemanager.NewMockSecretManagerInline()), nil,
		testpolicy.NewPolicyMetricsNoop())
	ids := c.identities()
	var wg sync.WaitGroup
	repo.GetSelectorCache().UpdateIdentities(ids, nil, &wg)
	repo.UpdateIdentities(ids, nil)
	wg.Wait()
	// Egress to a named port resolves against the peer's ports, as the ipcache tells them.
	named := ciliumtypes.NewNamedPortMultiMap()
	for _, e := range c.endpoints {
		if len(e.namedPorts) > 0 {
			named.Update(e.id, nil, portMap(e.namedPorts))
		}
	}
	repo.SetNamedPortsGetter(namedPorts{named})
	for _, r := range resources {
		// What the CiliumNetworkPolicy watcher does with a parsed policy.
		repo.ReplaceByResource(policyutils.RulesToPolicyEntries(r.rules),
			ipcachetypes.NewResourceID(ipcachetypes.ResourceKindCNP, r.namespace, r.name))
	}
	return &engine{repo: repo, cluster: c}
}

type namedPorts struct{ m ciliumtypes.NamedPortMultiMap }

func (n namedPorts) GetNamedPorts() ciliumtypes.NamedPortMultiMap { return n.m }

func portMap(ports map[string]int32) ciliumtypes.NamedPortMap {
	m := ciliumtypes.NamedPortMap{}
	for name, p := range ports {
		if err := m.AddPort(name, int(p), "TCP"); err != nil {
			panic(err)
		}
	}
	return m
}

// table resolves the policy of each endpoint (ComputeSelectorPolicy), distills it into the map
// state the datapath loads (DistillPolicy), and looks every peer identity up in it on every port
// its entries name (Lookup: the datapath's two lookups, the identity's and its aggregate's), with
// the L7 rules of the proxy redirects (RedirectFilters) where the entry goes through the proxy. A
// port no entry names stands for every other port: allowed there, the peer is allowed on ANY.
func (e *engine) table(t *testing.T, eps []*endpoint) Table {
	t.Helper()
	out := Table{}
	for _, ep := range eps {
		sp, _, err := e.repo.ComputeSelectorPolicy(&identity.Identity{ID: ep.id, LabelArray: ep.lbls, Labels: ep.lbls.Labels()})
		if err != nil {
			t.Fatalf("%s: Cilium cannot resolve its policy: %v", ep.key, err)
		}
		epp := sp.DistillPolicy(logger, &owner{ep: ep}, map[string]uint16{policy.FallbackRedirectID: math.MaxUint16})
		if err := epp.Ready(); err != nil {
			t.Fatalf("%s: %v", ep.key, err)
		}
		l7 := e.l7Rules(&epp.SelectorPolicy.L4Policy, ep)
		ports := map[l4]bool{}
		for k := range epp.Entries() {
			if k.DestPort == 0 {
				continue
			}
			protos := []u8proto.U8proto{k.Nexthdr}
			if k.Nexthdr == 0 {
				protos = []u8proto.U8proto{u8proto.TCP, u8proto.UDP, u8proto.SCTP}
			}
			for _, p := range protos {
				ports[l4{p, k.DestPort}], ports[l4{p, k.EndPort()}] = true, true
			}
		}
		other := uint16(40000)
		for ports[l4{u8proto.TCP, other}] || ports[l4{u8proto.UDP, other}] || ports[l4{u8proto.SCTP, other}] {
			other++
		}
		for _, dir := range []string{"in", "out"} {
			base := policy.EgressKey()
			if dir == "in" {
				base = policy.IngressKey()
			}
			lines := Table{}
			everywhere := 0
			for _, peer := range e.cluster.endpoints {
				if aggregate(peer.id) {
					continue
				}
				allowed := func(p l4) (string, bool) {
					v, _, found := epp.Lookup(base.WithIdentity(peer.id).WithPortProto(p.proto, p.port))
					switch {
					case !found || v.IsDeny():
						return "", false
					case v.IsRedirectEntry():
						if r, ok := l7[l7Key{dir, p.proto.String(), strconv.Itoa(int(p.port)), peer.id}]; ok {
							return r, true
						}
						return "proxy without rules", true
					}
					return anyL7, true
				}
				anyPort := map[u8proto.U8proto]bool{}
				for _, proto := range []u8proto.U8proto{u8proto.TCP, u8proto.UDP, u8proto.SCTP} {
					if v, ok := allowed(l4{proto, other}); ok && v == anyL7 {
						anyPort[proto] = true
					}
				}
				if len(anyPort) == 3 {
					everywhere++
					lines.add(ep.key, dir, "ANY", "ANY", peer.key, anyL7)
					continue
				}
				for p := range ports {
					if anyPort[p.proto] {
						continue
					}
					if v, ok := allowed(p); ok {
						lines.add(ep.key, dir, p.proto.String(), strconv.Itoa(int(p.port)), peer.key, v)
					}
				}
				for proto := range anyPort {
					lines.add(ep.key, dir, proto.String(), "ANY", peer.key, anyL7)
				}
			}
			if everywhere == len(lines) && everywhere == e.cluster.peers() {
				lines = Table{}
				lines.add(ep.key, dir, "ANY", "ANY", "*", anyL7) // not enforced
			}
			maps.Copy(out, lines)
		}
		epp.Detach(logger)
		sp.Detach()
	}
	return out
}

// aggregate is whether the identity is one of the datapath's aggregates (all cluster identities,
// all world addresses, ...): no endpoint has it; Lookup consults it for the identities it stands for.
func aggregate(id identity.NumericIdentity) bool {
	switch id {
	case identity.ReservedIdentityAggregateCluster, identity.ReservedIdentityAggregateClusterMesh,
		identity.ReservedIdentityAggregateWorld, identity.ReservedIdentityAggregateRemoteNode:
		return true
	}
	return false
}

type l4 struct {
	proto u8proto.U8proto
	port  uint16
}

type l7Key struct {
	dir, proto, port string
	peer             identity.NumericIdentity
}

// l7Rules are what the proxy lets a peer send on a port, as Cilium's Envoy policy has it: every
// rule of the port (named ports resolved, as GetDirectionNetworkPolicy does) whose selector
// selects the peer, redirected or not; one without layer-7 rules admits every request.
func (e *engine) l7Rules(sp *policy.L4Policy, ep *endpoint) map[l7Key]string {
	sets, open := map[l7Key][]string{}, map[l7Key]bool{}
	for f := range sp.Ingress.Filters() {
		e.addL7(f, ep, sets, open)
	}
	for f := range sp.Egress.Filters() {
		e.addL7(f, ep, sets, open)
	}
	out := map[l7Key]string{}
	for k, rules := range sets {
		switch {
		case !open[k]:
			out[k] = l7String(rules)
		case slices.ContainsFunc(rules, func(r string) bool { return strings.HasPrefix(r, "dns") }):
			out[k] = "dns name= pattern=*"
		default:
			out[k] = httpAny // consulted only where the port goes through the proxy
		}
	}
	return out
}

func (e *engine) addL7(f *policy.L4Filter, ep *endpoint, sets map[l7Key][]string, open map[l7Key]bool) {
	dir := "out"
	if f.Ingress {
		dir = "in"
	}
	for cs, psp := range f.PerSelectorPolicies {
		rules := ruleStrings(psp)
		for _, id := range cs.GetSelections() {
			port := f.Port
			if f.PortName != "" {
				ports := ep.namedPorts // ingress: this endpoint's own
				if !f.Ingress {
					ports = e.cluster.byID[id].namedPorts
				}
				p, ok := ports[f.PortName]
				if !ok {
					continue
				}
				port = uint16(p)
			}
			k := l7Key{dir, string(f.Protocol), strconv.Itoa(int(port)), id}
			if rules == nil {
				open[k] = true
				if _, ok := sets[k]; !ok {
					sets[k] = nil
				}
				continue
			}
			sets[k] = append(sets[k], rules...)
		}
	}
}

// ruleStrings prints the layer-7 rules of one selector on a port; nil when they admit anything.
func ruleStrings(p *policy.PerSelectorPolicy) []string {
	if p == nil || p.L7Rules.IsEmpty() {
		return nil // layer 4 only
	}
	var rules []string
	for _, h := range p.HTTP {
		if h.Host != "" || len(h.Headers) > 0 || len(h.HeaderMatches) > 0 {
			rules = append(rules, fmt.Sprintf("http %+v", h)) // nothing of the graph's: reported as is
			continue
		}
		if h.Path == "" && h.Method == "" {
			return nil // what Cilium adds when it merges a rule without layer 7 into one with
		}
		rules = append(rules, httpRule(h.Method, h.Path))
	}
	for _, d := range p.DNS {
		rules = append(rules, "dns name="+d.MatchName+" pattern="+d.MatchPattern)
	}
	return rules
}

// httpAny is a port that goes through Cilium's HTTP proxy, which admits every request: unlike a
// port without rules, it takes HTTP only.
const httpAny = "http any request"

// httpRule prints an HTTP rule: its method and path expressions, * for any.
func httpRule(method, path string) string {
	if method == "" {
		method = "*"
	}
	if path == "" {
		path = "*"
	}
	return "http " + method + " " + path
}

// l7String prints a set of rules in one order.
func l7String(rules []string) string {
	slices.Sort(rules)
	return strings.Join(slices.Compact(rules), " | ")
}

// owner is the endpoint as the policy sees it: its own named ports resolve ingress named ports.
type owner struct{ ep *endpoint }

func (o *owner) GetID() uint64 { return uint64(o.ep.id) }
func (o *owner) GetIngressNamedPort(name string, proto u8proto.U8proto) uint16 {
	if proto != u8proto.TCP {
		return 0
	}
	return uint16(o.ep.namedPorts[name])
}
func (o *owner) PolicyDebug(string, ...any)                  {}
func (o *owner) IsHost() bool                                { return false }
func (o *owner) PreviousMapStateSizes() policy.MapStateSizes { return policy.MapStateSizes{} }
func (o *owner) RegenerateIfAlive(*regeneration.ExternalRegenerationMetadata) <-chan bool {
	ch := make(chan bool)
	close(ch)
	return ch
}
