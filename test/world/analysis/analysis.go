// Package analysis runs np-guard's netpol-analyzer, an analyzer this project did not write, over
// NetworkPolicies and the pods and namespaces they apply to. A package of its own so that a module
// importing test/world (the Istio tests) does not take the analyzer's dependencies.
package analysis

import (
	"fmt"
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
