// Package semantics is the project's one reading of what Kubernetes and Istio do with a policy's
// fields: which workloads a NetworkPolicy, AuthorizationPolicy or PeerAuthentication applies to,
// how each AuthorizationPolicy attribute matches a request, which attributes only HTTP carries and
// what Istio's builder does with them on a TCP connection, and the annotations Istio parses.
// The evaluator (`check`, `diff`, the Bypassed condition), the linter and the compiler read it;
// nothing else interprets a field. Each rule cites the Istio or Kubernetes code it follows, and
// test/istio holds the whole to Istio's own builder.
package semantics

import (
	"strconv"
	"strings"
)

// Istio's defaults: the trust domain of principals and the namespace whose policies without a
// selector apply to the whole mesh.
const (
	DefaultTrustDomain   = "cluster.local"
	DefaultRootNamespace = "istio-system"
)

// AnnotationDryRun makes Istio evaluate and report an AuthorizationPolicy without enforcing it.
const AnnotationDryRun = "istio.io/dry-run"

// DryRun reads the dry-run annotation as Istio's builder does (builder.go isDryRun): with
// strconv.ParseBool, so "true", "True", "1" and "t" all mean a dry run; a value ParseBool refuses
// is logged by istiod and the policy is enforced.
func DryRun(annotations map[string]string) bool {
	v, ok := annotations[AnnotationDryRun]
	if !ok {
		return false
	}
	dry, err := strconv.ParseBool(v)
	return err == nil && dry
}

// SpiffePrefix is what Istio puts before a principal to make a certificate's URI SAN.
const SpiffePrefix = "spiffe://"

// Principal is a workload's identity as AuthorizationPolicies write it:
// TRUST_DOMAIN/ns/NAMESPACE/sa/SERVICE_ACCOUNT.
func Principal(trustDomain, namespace, serviceAccount string) string {
	return trustDomain + "/ns/" + namespace + "/sa/" + serviceAccount
}

// ParsePrincipal reads TRUST_DOMAIN/ns/NAMESPACE/sa/SERVICE_ACCOUNT; ok is false for another shape.
func ParsePrincipal(p string) (trustDomain, namespace, serviceAccount string, ok bool) {
	parts := strings.Split(strings.TrimPrefix(p, SpiffePrefix), "/")
	if len(parts) != 5 || parts[1] != "ns" || parts[3] != "sa" {
		return "", "", "", false
	}
	return parts[0], parts[2], parts[4], true
}
