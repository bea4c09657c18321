// Package analysis runs np-guard's netpol-analyzer, an analyzer this project did not write, over
// NetworkPolicies and the pods and namespaces they apply to. A package of its own so that a module
// importing test/world (the Istio tests) does not take the analyzer's dependencies.
package analysis

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"

	"github.com/np-guard/netpol-analyzer/pkg/netpol/connlist"
	"k8s.io/cli-runtime/pkg/resource"

	"github.com/servicegraph/servicegraph-operator/internal/object"
	"github.com/servicegraph/servicegraph-operator/internal/render"
	"github.com/servicegraph/servicegraph-operator/test/world"
)

// Analyze returns the connections np-guard's netpol-analyzer finds allowed among the objects
// (namespaces, pods and NetworkPolicies, in the form the reconciler applies) that involve one of
// the given namespaces. An IP range or a port range is listed as such.
func Analyze(objs []object.Object, namespaces []string) (world.Connections, error) {
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
	got := world.Connections{}
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

// MergeIPRanges joins the IP ranges the analyzer lists separately (it cuts the address space at
// every boundary any policy names) where the same connection covers adjacent ranges, so a rule
// reads as the one range it allows: "ip:0.0.0.0-9.255.255.255" and "ip:10.1.0.0-255.255.255.255"
// for 0.0.0.0/0 except 10.0.0.0/16.
func MergeIPRanges(conns world.Connections) world.Connections {
	type ipRange struct{ from, to netip.Addr }
	ranges := map[string][]ipRange{} // the connection with "%s" for the range → its ranges
	out := world.Connections{}
	for key := range conns {
		m := ipRangeKey.FindStringSubmatchIndex(key)
		if m == nil {
			out[key] = true
			continue
		}
		from, err1 := netip.ParseAddr(key[m[2]:m[3]])
		to, err2 := netip.ParseAddr(key[m[4]:m[5]])
		if err1 != nil || err2 != nil {
			out[key] = true
			continue
		}
		shape := key[:m[0]] + "ip:%s" + key[m[1]:]
		ranges[shape] = append(ranges[shape], ipRange{from, to})
	}
	for shape, rs := range ranges {
		slices.SortFunc(rs, func(a, b ipRange) int { return a.from.Compare(b.from) })
		merged := rs[:1]
		for _, r := range rs[1:] {
			last := &merged[len(merged)-1]
			if last.to.Next() == r.from {
				last.to = r.to
				continue
			}
			merged = append(merged, r)
		}
		for _, r := range merged {
			out[fmt.Sprintf(shape, r.from.String()+"-"+r.to.String())] = true
		}
	}
	return out
}

var ipRangeKey = regexp.MustCompile(`ip:([0-9a-fA-F.:]+)-([0-9a-fA-F.:]+)`)
