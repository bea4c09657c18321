package semantics_test

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	npeval "github.com/np-guard/netpol-analyzer/pkg/netpol/eval"
	corev1 "k8s.io/api/core/v1"

	"github.com/servicegraph/servicegraph-operator/test/world/analysis"
)

// namedPortTowardAddress is netpol-analyzer's refusal of an egress rule with a named port that
// selects an address (pkg/netpol/eval/internal/k8s/netpol.go, getPortsRange: "cannot convert named
// port for an IP destination"). connlist fails on the whole world then, so the world's pairs are
// computed one by one as connlist does (its policy engine's AllAllowedConnectionsBetweenWorkloadPeers
// over GetPeersList), and the pairs it refuses are left out.
const namedPortTowardAddress = "cannot convert named port for an IP destination"

// analyzer is what netpol-analyzer says about a world.
type analyzer struct {
	// conns are the allowed connections connlist lists, by "src -> dst" (a pod "ns/name", a range
	// "ip:a-b, c-d").
	conns map[string]*portSet
	// ranges are the address ranges connlist lists: disjoint, cut at every boundary any policy names.
	ranges []ipRange
	// refused are the pairs netpol-analyzer cannot evaluate, with its error.
	refused map[string]string
}

type portSet struct {
	all    bool
	ranges map[corev1.Protocol][][2]int32
}

type ipRange struct {
	key   string
	spans [][2]netip.Addr
}

// analyze asks netpol-analyzer (through test/world/analysis, as the compiler's tests do) for every
// allowed connection of the world.
func analyze(w *world) (*analyzer, error) {
	conns, err := analysis.Analyze(w.objects(), slices.Sorted(maps.Keys(w.namespaces)))
	if err != nil {
		if strings.Contains(err.Error(), namedPortTowardAddress) {
			return analyzePairs(w)
		}
		return nil, err
	}
	a := &analyzer{conns: map[string]*portSet{}, refused: map[string]string{}}
	for key := range conns {
		src, dst, spec, err := parseConnection(key)
		if err != nil {
			return nil, err
		}
		ps := a.pair(src, dst)
		if spec == "ALL" {
			ps.all = true
			continue
		}
		proto, ports, ok := strings.Cut(spec, "/")
		from, to, isRange := strings.Cut(ports, "-")
		if !isRange {
			to = from
		}
		lo, err1 := strconv.Atoi(from)
		hi, err2 := strconv.Atoi(to)
		if !ok || err1 != nil || err2 != nil {
			return nil, fmt.Errorf("analyzer: cannot read %q", key)
		}
		ps.ranges[corev1.Protocol(proto)] = append(ps.ranges[corev1.Protocol(proto)], [2]int32{int32(lo), int32(hi)})
	}
	return a, nil
}

// analyzePairs computes each pair's allowed connections as connlist does, keeping the pairs it
// refuses apart.
func analyzePairs(w *world) (*analyzer, error) {
	pe := npeval.NewPolicyEngine()
	for _, o := range w.objects() {
		if err := pe.InsertObject(o); err != nil {
			return nil, fmt.Errorf("policy engine: %w", err)
		}
	}
	peers, err := pe.GetPeersList()
	if err != nil {
		return nil, fmt.Errorf("policy engine: %w", err)
	}
	key := func(p npeval.Peer) string {
		if p.IsPeerIPType() {
			return "ip:" + p.String()
		}
		return p.Namespace() + "/" + p.Name()
	}
	a := &analyzer{conns: map[string]*portSet{}, refused: map[string]string{}}
	for _, src := range peers {
		for _, dst := range peers {
			if src.IsPeerIPType() && dst.IsPeerIPType() || src.String() == dst.String() {
				continue // as connlist's includePairOfWorkloads
			}
			conns, err := pe.AllAllowedConnectionsBetweenWorkloadPeers(src, dst)
			if err != nil {
				a.refused[key(src)+" -> "+key(dst)] = err.Error()
				a.pair(key(src), key(dst))
				continue
			}
			if conns.IsEmpty() {
				continue
			}
			ps := a.pair(key(src), key(dst))
			ps.all = conns.AllConnections()
			for proto, ranges := range conns.ProtocolsAndPortsMap() {
				for _, r := range ranges {
					ps.ranges[proto] = append(ps.ranges[proto], [2]int32{int32(r.Start()), int32(r.End())})
				}
			}
		}
	}
	return a, nil
}

// pair returns the allowed connections of a pair, noting the address ranges it names.
func (a *analyzer) pair(src, dst string) *portSet {
	ps := a.conns[src+" -> "+dst]
	if ps != nil {
		return ps
	}
	ps = &portSet{ranges: map[corev1.Protocol][][2]int32{}}
	a.conns[src+" -> "+dst] = ps
	for _, peer := range []string{src, dst} {
		if !strings.HasPrefix(peer, "ip:") || slices.ContainsFunc(a.ranges, func(r ipRange) bool { return r.key == peer }) {
			continue
		}
		r := ipRange{key: peer}
		for _, span := range strings.Split(strings.TrimPrefix(peer, "ip:"), ", ") {
			from, to, _ := strings.Cut(span, "-")
			lo, err1 := netip.ParseAddr(from)
			hi, err2 := netip.ParseAddr(to)
			if err1 != nil || err2 != nil {
				panic(fmt.Sprintf("analyzer: cannot read the range %q", peer))
			}
			r.spans = append(r.spans, [2]netip.Addr{lo, hi})
		}
		a.ranges = append(a.ranges, r)
	}
	return ps
}

// parseConnection splits a key of world.Connections: "src -> dst ALL", "src -> dst TCP/80" or
// "src -> dst TCP/80-90" (a range peer holds ", " and spaces, the port part none).
func parseConnection(key string) (src, dst, spec string, err error) {
	src, rest, ok := strings.Cut(key, " -> ")
	i := strings.LastIndex(rest, " ")
	if !ok || i < 0 {
		return "", "", "", fmt.Errorf("analyzer: cannot read %q", key)
	}
	return src, rest[:i], rest[i+1:], nil
}

// peer is the analyzer's name for an endpoint: a pod's "ns/name", or the listed range holding an
// address ("" when no listed connection involves that range).
func (a *analyzer) peer(e endpoint) string {
	if e.pod != nil {
		return e.pod.Namespace + "/" + e.pod.Name
	}
	for _, r := range a.ranges {
		for _, s := range r.spans {
			if s[0].Compare(e.addr) <= 0 && e.addr.Compare(s[1]) <= 0 {
				return r.key
			}
		}
	}
	return ""
}

// pairView is what netpol-analyzer says about one ordered pair of endpoints.
type pairView struct {
	src, dst string   // its names for them ("" for an address whose range it lists nothing for)
	ports    *portSet // nil when it lists nothing for the pair
	refused  string   // its error when it cannot evaluate the pair
}

func (a *analyzer) lookup(src, dst endpoint) pairView {
	v := pairView{src: a.peer(src), dst: a.peer(dst)}
	if v.src == "" {
		v.src = "the range of " + src.String()
	}
	if v.dst == "" {
		v.dst = "the range of " + dst.String()
	}
	v.refused = a.refused[v.src+" -> "+v.dst]
	v.ports = a.conns[v.src+" -> "+v.dst]
	return v
}

// allows tells whether netpol-analyzer allows the pair a connection.
func (v pairView) allows(proto corev1.Protocol, port int32) bool {
	if v.ports == nil {
		return false
	}
	if v.ports.all {
		return true
	}
	for _, r := range v.ports.ranges[proto] {
		if r[0] <= port && port <= r[1] {
			return true
		}
	}
	return false
}

// String is what netpol-analyzer lists for the pair.
func (v pairView) String() string {
	if v.refused != "" {
		return v.refused
	}
	if v.ports == nil {
		return fmt.Sprintf("nothing listed from %s to %s", v.src, v.dst)
	}
	var parts []string
	if v.ports.all {
		parts = append(parts, "ALL")
	}
	for _, p := range slices.Sorted(maps.Keys(v.ports.ranges)) {
		for _, r := range v.ports.ranges[p] {
			if r[0] == r[1] {
				parts = append(parts, fmt.Sprintf("%s/%d", p, r[0]))
			} else {
				parts = append(parts, fmt.Sprintf("%s/%d-%d", p, r[0], r[1]))
			}
		}
	}
	return fmt.Sprintf("%s -> %s lists %s", v.src, v.dst, strings.Join(parts, ", "))
}
