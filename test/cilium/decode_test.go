package cilium

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"

	cmtypes "github.com/cilium/cilium/pkg/clustermesh/types"
	ciliumv2 "github.com/cilium/cilium/pkg/k8s/apis/cilium.io/v2"
	"github.com/cilium/cilium/pkg/policy/api"

	"github.com/servicegraph/servicegraph-operator/internal/cilium"
	"github.com/servicegraph/servicegraph-operator/internal/render"
)

// asCilium reads a generated CiliumNetworkPolicy as the API server and the agent do: the JSON the
// operator applies, checked against Cilium's CRD schema, decoded with Cilium's own type, unknown fields refused; encoded again by Cilium's type and by
// ours, nothing may differ (a field Cilium's type drops or renames would). Then the watcher's
// parse (the namespace and cluster added to every selector, Sanitize on the spec), and Sanitize
// on each rule it yields, as the policy import does.
func asCilium(t *testing.T, p *cilium.CiliumNetworkPolicy) namedResource {
	t.Helper()
	u, err := render.ToUnstructured(p)
	if err != nil {
		t.Fatal(err)
	}
	applied, err := u.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	theirs := &ciliumv2.CiliumNetworkPolicy{}
	dec := json.NewDecoder(bytes.NewReader(applied))
	dec.DisallowUnknownFields()
	if err := dec.Decode(theirs); err != nil {
		t.Fatalf("%s: Cilium's type refuses it: %v\n%s", p.Name, err, applied)
	}
	ours := &cilium.CiliumNetworkPolicy{}
	if err := json.Unmarshal(applied, ours); err != nil {
		t.Fatal(err)
	}
	checkSchema(t, p.Name, u.Object)
	want := generic(t, applied)
	for name, obj := range map[string]any{"Cilium's": theirs, "the operator's": ours} {
		data, err := json.Marshal(obj)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, generic(t, data)); diff != "" {
			t.Errorf("%s: %s type does not keep the object as applied (-applied +re-encoded):\n%s", p.Name, name, diff)
		}
	}
	rules, err := theirs.Parse(logger, cmtypes.LocalClusterNameForPolicies(cmtypes.DefaultPolicyConfig, clusterName))
	if err != nil {
		t.Fatalf("%s: Cilium refuses it: %v", p.Name, err)
	}
	for _, r := range rules {
		if err := r.Sanitize(); err != nil {
			t.Errorf("%s: Cilium's Sanitize refuses a rule: %v", p.Name, err)
		}
	}
	return namedResource{namespace: p.Namespace, name: p.Name, rules: rules}
}

// generic is JSON as maps, without what an encoding of a desired state does not carry: a null
// creationTimestamp and an empty status.
func generic(t *testing.T, data []byte) map[string]any {
	t.Helper()
	m := map[string]any{}
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	if s, ok := m["status"].(map[string]any); ok && len(s) == 0 {
		delete(m, "status")
	}
	if meta, ok := m["metadata"].(map[string]any); ok && meta["creationTimestamp"] == nil {
		delete(meta, "creationTimestamp")
	}
	return m
}

// fqdnSelectors are the toFQDNs selectors of the rules: the names Cilium's DNS proxy learns.
func fqdnSelectors(resources []namedResource) []api.FQDNSelector {
	var out []api.FQDNSelector
	for _, r := range resources {
		for _, rule := range r.rules {
			for _, e := range rule.Egress {
				out = append(out, e.ToFQDNs...)
			}
		}
	}
	return out
}
