package compiler

import (
	"encoding/json"
	"fmt"

	"github.com/servicegraph/servicegraph-operator/internal/graph"
)

const (
	// MaxObjectBytes keeps every object well under what the API server stores: etcd refuses
	// requests over about 1.5 MiB, and retrying such a write can never succeed.
	MaxObjectBytes = 1 << 20
	// MaxAuthorizationRules is the most rules Istio's CRD accepts in one AuthorizationPolicy.
	MaxAuthorizationRules = 512
)

// checkLimits reports every object the API server would refuse for its size or what its output's
// Limit names, so an oversized graph is an invalid spec (reported once) instead of a write failing
// forever.
func checkLimits(reg Registry, objs []Object) error {
	var problems graph.ErrorList
	for _, obj := range objs {
		item := fmt.Sprintf("%s %q", obj.GetObjectKind().GroupVersionKind().Kind, obj.GetName())
		o := reg.Of(obj)
		if o.Limit != nil {
			if msg := o.Limit(obj); msg != "" {
				problems = append(problems, graph.Error{Item: item, Kind: graph.KindTooLarge, Message: msg})
			}
		}
		if o.RoughSize != nil && o.RoughSize(obj) < MaxObjectBytes/2 {
			continue // far below the limit: skip the costly encoding
		}
		data, err := json.Marshal(obj)
		if err != nil {
			return err
		}
		if len(data) > MaxObjectBytes {
			problems = append(problems, graph.Error{Item: item, Kind: graph.KindTooLarge, Message: fmt.Sprintf(
				"would be %d bytes; the API server stores at most about 1.5 MiB and this operator allows %d: split the callers or shorten their selectors",
				len(data), MaxObjectBytes)})
		}
	}
	return problems.Err()
}

// perItem allows for the quotes, keys and punctuation around one value.
const perItem = 64

// sizer adds up the lengths of an object's variable parts with a generous allowance for the JSON
// around them: within a factor of two of the encoded size, at a fraction of its cost.
type sizer struct{ size int }

func newSizer() *sizer { return &sizer{size: 1024} }

func (s *sizer) labels(m map[string]string) {
	for k, v := range m {
		s.size += len(k) + len(v) + perItem
	}
}

func (s *sizer) strings(list []string) {
	for _, v := range list {
		s.size += len(v) + perItem
	}
}
