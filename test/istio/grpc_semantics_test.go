package istio

import (
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	corev1 "k8s.io/api/core/v1"

	"istio.io/istio/pilot/pkg/config/kube/crd"

	"github.com/servicegraph/servicegraph-operator/internal/eval"
)

// TestProxylessGRPCAgreesWithEval makes real calls over mutual TLS, through hand-written
// AuthorizationPolicies in the spellings the evaluator once read differently from Istio, and checks
// that grpc-go's RBAC engine, configured by Istio's discovery server, admits exactly the calls
// eval admits. Callers: web (the policy's namespace), web of another namespace, and an intruder.
// Dry runs are left to TestEvalAgreesWithIstiosBuilder: Istio's proxyless-gRPC generator
// (pilot/pkg/networking/grpcgen lds.go buildRBAC) ignores istio.io/dry-run and enforces the policy,
// unlike the sidecar's builder.
func TestProxylessGRPCAgreesWithEval(t *testing.T) {
	m := newMesh(t)
	cases := []struct {
		name     string
		policies string // NS and OTHER stand for the case's namespaces
		admitted []string
	}{
		{"serviceAccounts: a bare name is the policy's namespace", "action: ALLOW\n  rules: [{from: [{source: {serviceAccounts: [web]}}]}]", []string{"web"}},
		{"serviceAccounts: NAMESPACE/NAME", "action: ALLOW\n  rules: [{from: [{source: {serviceAccounts: [OTHER/web]}}]}]", []string{"other-web"}},
		{"namespaces: a * inside", "action: ALLOW\n  rules: [{from: [{source: {namespaces: ['o*r-CASE']}}]}]", []string{"other-web", "intruder"}},
		{"principals: a suffix", "action: ALLOW\n  rules: [{from: [{source: {principals: ['*/sa/web']}}]}]", []string{"web", "other-web"}},
		{"principals: * at both ends is a literal suffix", "action: ALLOW\n  rules: [{from: [{source: {principals: ['*/sa/web*']}}]}]", nil},
		{"trustDomains: a wildcard", "action: ALLOW\n  rules: [{from: [{source: {trustDomains: ['*.local'], notNamespaces: [OTHER]}}]}]", []string{"web"}},
		{"DENY by principal suffix", "action: DENY\n  rules: [{from: [{source: {principals: ['*/sa/intruder']}}]}]\n---\nALLOW\n  rules: [{from: [{source: {principals: ['*']}}]}]", []string{"web", "other-web"}},
	}
	calls := 0
	for i, tc := range cases {
		ns, other := fmt.Sprintf("shop-%d", i), fmt.Sprintf("other-%d", i)
		api := newWorkload("api", ns)
		callers := map[string]*workload{"web": newWorkload("web", ns), "other-web": newWorkload("web", other), "intruder": newWorkload("intruder", other)}
		for _, w := range []*workload{api, callers["web"], callers["other-web"], callers["intruder"]} {
			m.add(w)
		}
		// Proxyless gRPC servers take PERMISSIVE as plain text only: STRICT makes them speak mTLS.
		strict, _, err := crd.ParseInputs("apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: strict, namespace: " + ns + "}\nspec: {mtls: {mode: STRICT}}\n")
		if err != nil {
			t.Fatal(err)
		}
		m.apply(append(strict, mutualTLS(ns))...)
		cluster := &eval.Cluster{}
		for j, spec := range strings.Split(tc.policies, "\n---\n") {
			if !strings.HasPrefix(spec, "action:") {
				spec = "action: " + spec
			}
			spec = strings.NewReplacer("OTHER", other, "CASE", fmt.Sprint(i)).Replace(spec)
			doc := fmt.Sprintf("apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: p%d\n  namespace: %s\nspec:\n  selector: {matchLabels: {app: api}}\n  %s\n", j, ns, spec)
			configs, _, err := crd.ParseInputs(doc)
			if err != nil || len(configs) != 1 {
				t.Fatalf("%s: %v\n%s", tc.name, err, doc)
			}
			if err := istioValidate(doc); err != nil {
				t.Fatalf("%s: istiod refuses it: %v", tc.name, err)
			}
			m.apply(configs[0])
			cluster.Add(decodeAP(t, doc))
		}
		dest := &eval.Workload{Namespace: ns, Name: "api", Labels: api.Labels, ServiceAccount: "api", Meshed: true}
		for _, name := range []string{"web", "other-web", "intruder"} {
			c := callers[name]
			v := cluster.Check(eval.Request{From: eval.Endpoint{Workload: &eval.Workload{Namespace: c.Namespace, Name: c.Name, ServiceAccount: c.ServiceAccount, Meshed: true}},
				To: dest, Port: int32(api.port), Protocol: corev1.ProtocolTCP, HTTP: &eval.HTTP{Path: healthCheck, Method: "POST", Host: api.host()}})
			wantAdmitted := false
			for _, a := range tc.admitted {
				wantAdmitted = wantAdmitted || a == name
			}
			if v.Allowed != wantAdmitted {
				t.Errorf("%s: %s: eval says allowed=%v, the case says %v (%s)", tc.name, name, v.Allowed, wantAdmitted, v.Steps[3].By)
			}
			want := codes.PermissionDenied
			if v.Allowed {
				want = codes.OK
			}
			m.expect(c, api, want)
			calls++
		}
	}
	t.Logf("%d real gRPC calls over mutual TLS agree with eval", calls)
}
