// Package auditlog proves the API server audit policy in config/audit/policy.yaml: the
// kube-apiserver's own policy loader accepts it and its rules give each request the intended level
// (this file), and a real API server started with it writes the expected events (suite_test.go).
package auditlog

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"

	auditinternal "k8s.io/apiserver/pkg/apis/audit"
	"k8s.io/apiserver/pkg/audit/policy"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"

	"github.com/servicegraph/servicegraph-operator/test/testenv"
)

// policyFile is the shipped policy, the one the tests start the API server with.
var policyFile = filepath.Join(testenv.Root(), "config", "audit", "policy.yaml")

// TestPolicyLevels evaluates the policy with the API server's own evaluator.
func TestPolicyLevels(t *testing.T) {
	p, err := policy.LoadPolicyFromFile(policyFile)
	if err != nil {
		t.Fatalf("the API server's loader refuses %s: %v", policyFile, err)
	}
	eval := policy.NewPolicyRuleEvaluator(p)
	const (
		none     = auditinternal.LevelNone
		metadata = auditinternal.LevelMetadata
		full     = auditinternal.LevelRequestResponse
	)
	for _, tc := range []struct {
		verb, group, resource, subresource string
		want                               auditinternal.Level
	}{
		{"create", "policy.servicegraph.io", "servicegraphs", "", full},
		{"update", "policy.servicegraph.io", "servicegraphs", "", full},
		{"patch", "policy.servicegraph.io", "servicegraphs", "", full},
		{"delete", "policy.servicegraph.io", "servicegraphs", "", full},
		{"deletecollection", "policy.servicegraph.io", "servicegraphs", "", full},
		{"update", "policy.servicegraph.io", "servicegraphs", "status", metadata},
		{"patch", "policy.servicegraph.io", "servicegraphs", "status", metadata},
		{"get", "policy.servicegraph.io", "servicegraphs", "", none},
		{"list", "policy.servicegraph.io", "servicegraphs", "", none},
		{"watch", "policy.servicegraph.io", "servicegraphs", "", none},
		{"get", "policy.servicegraph.io", "servicegraphs", "status", none},
		{"create", "networking.k8s.io", "networkpolicies", "", full},
		{"patch", "networking.k8s.io", "networkpolicies", "", full},
		{"update", "networking.k8s.io", "networkpolicies", "", full},
		{"delete", "networking.k8s.io", "networkpolicies", "", full},
		{"deletecollection", "networking.k8s.io", "networkpolicies", "", full},
		{"get", "networking.k8s.io", "networkpolicies", "", none},
		{"list", "networking.k8s.io", "networkpolicies", "", none},
		{"watch", "networking.k8s.io", "networkpolicies", "", none},
		{"create", "security.istio.io", "authorizationpolicies", "", full},
		{"update", "security.istio.io", "authorizationpolicies", "", full},
		{"delete", "security.istio.io", "peerauthentications", "", full},
		{"patch", "security.istio.io", "peerauthentications", "", full},
		{"list", "security.istio.io", "authorizationpolicies", "", none},
		{"watch", "security.istio.io", "peerauthentications", "", none},
		{"create", "networking.istio.io", "serviceentries", "", full},
		{"patch", "networking.istio.io", "sidecars", "", full},
		{"list", "networking.istio.io", "sidecars", "", none},
		// Outside the watched resources: nothing (the catch-all of the standalone file).
		{"create", "", "pods", "", none},
		{"create", "", "namespaces", "", none},
		{"update", "networking.k8s.io", "ingresses", "", none},
		{"create", "networking.istio.io", "virtualservices", "", none},
		{"update", "networking.k8s.io", "networkpolicies", "status", none},
		{"create", "events.k8s.io", "events", "", none},
		{"update", "coordination.k8s.io", "leases", "", none},
	} {
		attrs := authorizer.AttributesRecord{
			User: &user.DefaultInfo{Name: "someone"}, Verb: tc.verb, APIGroup: tc.group, APIVersion: "v1",
			Resource: tc.resource, Subresource: tc.subresource, Namespace: "shop", Name: "x", ResourceRequest: true,
		}
		got := eval.EvaluatePolicyRule(attrs)
		name := tc.verb + " " + tc.group + "/" + tc.resource
		if tc.subresource != "" {
			name += "/" + tc.subresource
		}
		if got.Level != tc.want {
			t.Errorf("%s: level %s, want %s", name, got.Level, tc.want)
		}
		if got.Level != none {
			if !slices.Contains(got.OmitStages, auditinternal.StageRequestReceived) {
				t.Errorf("%s: stage RequestReceived is recorded; want one event per request", name)
			}
			if !got.OmitManagedFields {
				t.Errorf("%s: managedFields are recorded", name)
			}
		}
	}
	// Non-resource requests (/healthz, /metrics, discovery) are not recorded either.
	if got := eval.EvaluatePolicyRule(authorizer.AttributesRecord{User: &user.DefaultInfo{Name: "someone"}, Verb: "get", Path: "/healthz"}); got.Level != none {
		t.Errorf("GET /healthz: level %s, want None", got.Level)
	}
}

// TestPolicyMergedIntoAClusterPolicy puts the rules in front of a cluster policy that records
// everything at Metadata (the snippet's documented use, without its last rule): reads of the
// watched resources stay unrecorded, their changes keep their levels, and the cluster's own rule
// still applies to everything else.
func TestPolicyMergedIntoAClusterPolicy(t *testing.T) {
	data, err := os.ReadFile(policyFile)
	if err != nil {
		t.Fatal(err)
	}
	const catchAll = "- level: None\n"
	if !bytes.HasSuffix(data, []byte(catchAll)) {
		t.Fatalf("%s does not end with its catch-all rule %q", policyFile, catchAll)
	}
	merged := append(bytes.TrimSuffix(data, []byte(catchAll)), "- level: Metadata # the cluster's own policy\n"...)
	p, err := policy.LoadPolicyFromBytes(merged)
	if err != nil {
		t.Fatal(err)
	}
	eval := policy.NewPolicyRuleEvaluator(p)
	for _, tc := range []struct {
		verb, group, resource, subresource string
		want                               auditinternal.Level
	}{
		{"get", "policy.servicegraph.io", "servicegraphs", "", auditinternal.LevelNone},
		{"watch", "networking.k8s.io", "networkpolicies", "", auditinternal.LevelNone},
		{"list", "security.istio.io", "authorizationpolicies", "", auditinternal.LevelNone},
		{"patch", "policy.servicegraph.io", "servicegraphs", "", auditinternal.LevelRequestResponse},
		{"patch", "policy.servicegraph.io", "servicegraphs", "status", auditinternal.LevelMetadata},
		{"delete", "security.istio.io", "peerauthentications", "", auditinternal.LevelRequestResponse},
		{"create", "", "pods", "", auditinternal.LevelMetadata},
		{"get", "", "pods", "", auditinternal.LevelMetadata},
	} {
		attrs := authorizer.AttributesRecord{
			User: &user.DefaultInfo{Name: "someone"}, Verb: tc.verb, APIGroup: tc.group, APIVersion: "v1",
			Resource: tc.resource, Subresource: tc.subresource, Namespace: "shop", Name: "x", ResourceRequest: true,
		}
		if got := eval.EvaluatePolicyRule(attrs).Level; got != tc.want {
			t.Errorf("%s %s/%s/%s: level %s, want %s", tc.verb, tc.group, tc.resource, tc.subresource, got, tc.want)
		}
	}
}
