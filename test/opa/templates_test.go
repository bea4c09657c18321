package opa

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/open-policy-agent/frameworks/constraint/pkg/client"
	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"
)

var (
	networkPolicy      = schema.GroupKind{Group: "networking.k8s.io", Kind: "NetworkPolicy"}
	authorization      = schema.GroupKind{Group: "security.istio.io", Kind: "AuthorizationPolicy"}
	peerAuthentication = schema.GroupKind{Group: "security.istio.io", Kind: "PeerAuthentication"}
	namespaceKind      = schema.GroupKind{Kind: "Namespace"}
)

// TestManifests checks what Gatekeeper and kustomize rely on: each template is a valid v1
// ConstraintTemplate whose name is its kind in lower case and whose Rego package is its name, every
// template carries the same lib, templates that read data.inventory say what they need synced and
// sync.yaml syncs it, the kustomizations list every file, and the example Constraints are valid for
// their templates' parameter schemas.
func TestManifests(t *testing.T) {
	var lib string
	for _, f := range templateFiles(t) {
		ct := loadTemplate(t, f)
		kind := ct.Spec.CRD.Spec.Names.Kind
		if ct.Name != strings.ToLower(kind) {
			t.Errorf("%s: name %q, want %q (Gatekeeper requires the kind in lower case)", f, ct.Name, strings.ToLower(kind))
		}
		if len(ct.Spec.Targets) != 1 || ct.Spec.Targets[0].Target != targetName {
			t.Fatalf("%s: want one target %s", f, targetName)
		}
		target := ct.Spec.Targets[0]
		if !strings.HasPrefix(target.Rego, "package "+ct.Name+"\n") {
			t.Errorf("%s: the Rego's package is not %s", f, ct.Name)
		}
		if len(target.Libs) != 1 {
			t.Fatalf("%s: want one lib, the shared one", f)
		}
		if lib == "" {
			lib = target.Libs[0]
		} else if target.Libs[0] != lib {
			t.Errorf("%s: its lib differs from the other templates': keep the copies equal", f)
		}
		if sync := ct.Annotations["metadata.gatekeeper.sh/requires-sync-data"]; strings.Contains(target.Rego, "data.inventory") != (sync != "") {
			t.Errorf("%s: reads data.inventory: %v, but requires-sync-data is %q", f, strings.Contains(target.Rego, "data.inventory"), sync)
		}
	}

	syncs := readYAMLDocs(t, filepath.Join(gatekeeperDir, "sync.yaml"))
	synced, _, _ := unstructured.NestedSlice(syncs[0].Object, "spec", "sync", "syncOnly")
	for _, want := range []map[string]any{{"group": "", "version": "v1", "kind": "Namespace"}, {"group": "policy.servicegraph.io", "version": "v1alpha1", "kind": "ServiceGraph"}} {
		if !slices.ContainsFunc(synced, func(s any) bool { return equalJSON(s, want) }) {
			t.Errorf("sync.yaml does not sync %v", want)
		}
	}

	for _, dir := range []string{"templates", "constraints"} {
		var k struct{ Resources []string }
		data, err := os.ReadFile(filepath.Join(gatekeeperDir, dir, "kustomization.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.Unmarshal(data, &k); err != nil {
			t.Fatal(err)
		}
		files, _ := filepath.Glob(filepath.Join(gatekeeperDir, dir, "*.yaml"))
		var names []string
		for _, f := range files {
			if filepath.Base(f) != "kustomization.yaml" {
				names = append(names, filepath.Base(f))
			}
		}
		slices.Sort(names)
		slices.Sort(k.Resources)
		if !slices.Equal(names, k.Resources) {
			t.Errorf("%s/kustomization.yaml lists %v, the directory holds %v", dir, k.Resources, names)
		}
	}

	cs := exampleConstraints(t)
	newClient(t, cs...) // fails on a constraint its template's schema refuses
	kinds := map[string]bool{}
	for _, c := range cs {
		kinds[c.GetKind()] = true
	}
	for _, f := range templateFiles(t) {
		if kind := loadTemplate(t, f).Spec.CRD.Spec.Names.Kind; !kinds[kind] {
			t.Errorf("no example Constraint of kind %s", kind)
		}
	}
}

func equalJSON(a, b any) bool {
	x, _ := yaml.Marshal(a)
	y, _ := yaml.Marshal(b)
	return string(x) == string(y)
}

// policyCase is one object reviewed by the example Constraints (params nil) or by one constraint
// of the template with these parameters, and the rule IDs it must violate.
type policyCase struct {
	name   string
	params map[string]any
	user   string
	obj    string
	want   []string
}

func runPolicyCases(t *testing.T, kind string, gk schema.GroupKind, cases []policyCase) {
	examples := newClient(t, exampleConstraints(t)...)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := examples
			if tc.params != nil {
				c = newClient(t, constraint(kind, tc.params, gk))
			}
			user := tc.user
			if user == "" {
				user = "alice"
			}
			got := review(t, c, request(object(t, tc.obj), admissionv1.Create, user))
			if !slices.Equal(rules(got), tc.want) {
				t.Errorf("rules %v, want %v; violations:\n%v", rules(got), tc.want, got)
			}
		})
	}
}

const npHeader = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web, namespace: shop}
`

func TestNetworkPolicy(t *testing.T) {
	runPolicyCases(t, "ServiceGraphNoAllowAllNetworkPolicy", networkPolicy, []policyCase{
		{name: "default deny", obj: npHeader + `spec: {podSelector: {}, policyTypes: [Ingress, Egress]}`},
		{name: "ingress without from", obj: npHeader + `spec: {podSelector: {}, ingress: [{ports: [{port: 80}]}]}`, want: []string{"NP001"}},
		{name: "from null", obj: npHeader + `spec: {podSelector: {}, ingress: [{from: null}]}`, want: []string{"NP001"}},
		{name: "empty peer (the API server refuses it first)", obj: npHeader + `spec: {podSelector: {}, ingress: [{from: [{podSelector: {matchLabels: {app: api}}}, {}]}]}`, want: nil},
		{name: "from pods", obj: npHeader + `spec: {podSelector: {}, ingress: [{from: [{podSelector: {}}]}]}`},
		{name: "ingress not in force", obj: npHeader + `spec: {podSelector: {}, policyTypes: [Egress], ingress: [{}]}`},
		{name: "every namespace", obj: npHeader + `spec: {podSelector: {}, ingress: [{from: [{namespaceSelector: {}}]}]}`, want: []string{"NP006"}},
		{name: "every namespace, empty pod selector", obj: npHeader + `spec: {podSelector: {}, ingress: [{from: [{namespaceSelector: {}, podSelector: {}}]}]}`, want: []string{"NP006"}},
		{name: "every namespace on a port", obj: npHeader + `spec: {podSelector: {}, ingress: [{from: [{namespaceSelector: {}}], ports: [{port: 8080}]}]}`, want: []string{"NP012"}},
		{name: "every namespace on a protocol", obj: npHeader + `spec: {podSelector: {}, ingress: [{from: [{namespaceSelector: {}}], ports: [{protocol: UDP}]}]}`, want: []string{"NP006"}},
		{name: "every namespace on every port by range", obj: npHeader + `spec: {podSelector: {}, ingress: [{from: [{namespaceSelector: {}}], ports: [{port: 1, endPort: 65535}]}]}`, want: []string{"NP006"}},
		{name: "pods of every namespace", obj: npHeader + `spec: {podSelector: {}, ingress: [{from: [{namespaceSelector: {}, podSelector: {matchLabels: {app: prometheus}}}]}]}`},
		{name: "namespaces but some", obj: npHeader + `spec: {podSelector: {}, ingress: [{from: [{namespaceSelector: {matchExpressions: [{key: team, operator: NotIn, values: [x]}]}}]}]}`, want: []string{"NP006"}},
		{name: "namespaces with a label", obj: npHeader + `spec: {podSelector: {}, ingress: [{from: [{namespaceSelector: {matchExpressions: [{key: team, operator: Exists}]}}]}]}`},
		{name: "internet with except", obj: npHeader + `spec: {podSelector: {matchLabels: {app: web}}, ingress: [{from: [{ipBlock: {cidr: 0.0.0.0/0, except: [10.0.0.0/8]}}]}]}`, want: []string{"NP004"}},
		{name: "IPv6 internet", obj: npHeader + `spec: {podSelector: {matchLabels: {app: web}}, ingress: [{from: [{ipBlock: {cidr: "::/0"}}]}]}`, want: []string{"NP004"}},
		{name: "halves", obj: npHeader + `spec: {podSelector: {matchLabels: {app: web}}, ingress: [{from: [{ipBlock: {cidr: 0.0.0.0/1}}, {ipBlock: {cidr: 128.0.0.0/1}}]}]}`, want: []string{"NP004"}},
		{name: "two quarters, apart", obj: npHeader + `spec: {podSelector: {matchLabels: {app: web}}, ingress: [{from: [{ipBlock: {cidr: 0.0.0.0/2}}, {ipBlock: {cidr: 128.0.0.0/2}}]}]}`, want: []string{"NP004"}},
		{name: "one quarter", obj: npHeader + `spec: {podSelector: {matchLabels: {app: web}}, ingress: [{from: [{ipBlock: {cidr: 0.0.0.0/2}}, {ipBlock: {cidr: 10.0.0.0/8}}]}]}`},
		{name: "a private range", obj: npHeader + `spec: {podSelector: {matchLabels: {app: web}}, ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8}}]}]}`},
		{name: "a bad CIDR", obj: npHeader + `spec: {podSelector: {matchLabels: {app: web}}, ingress: [{from: [{ipBlock: {cidr: 0.0.0.0/0x}}]}]}`},
		{name: "egress to the internet", obj: npHeader + `spec: {podSelector: {}, policyTypes: [Egress], egress: [{to: [{ipBlock: {cidr: 0.0.0.0/0}}]}]}`, want: []string{"NP007"}},
		{name: "egress to the internet for DNS", obj: npHeader + `spec: {podSelector: {}, policyTypes: [Egress], egress: [{to: [{ipBlock: {cidr: 0.0.0.0/0}}], ports: [{port: 53, protocol: UDP}]}]}`, want: []string{"NP007"}},
		{name: "egress to every pod for DNS", obj: npHeader + `spec: {podSelector: {}, policyTypes: [Egress], egress: [{to: [{namespaceSelector: {}}], ports: [{port: 53, protocol: UDP}, {port: dns-tcp, protocol: TCP}]}]}`},
		{name: "egress to every pod", obj: npHeader + `spec: {podSelector: {}, policyTypes: [Egress], egress: [{to: [{namespaceSelector: {}}], ports: [{port: 53}, {port: 443}]}]}`, want: []string{"NP007"}},
		{name: "egress to every pod, port as a string", obj: npHeader + `spec: {podSelector: {}, policyTypes: [Egress], egress: [{to: [{namespaceSelector: {}}], ports: [{port: "53"}]}]}`, want: []string{"NP007"}},
		{name: "egress without to is NP002, not checked", obj: npHeader + `spec: {podSelector: {}, policyTypes: [Egress], egress: [{}]}`},
		{name: "egress not in force", obj: npHeader + `spec: {podSelector: {}, policyTypes: [Ingress], egress: [{to: [{ipBlock: {cidr: 0.0.0.0/0}}]}]}`},
		{name: "egress in force without policyTypes", obj: npHeader + `spec: {podSelector: {}, egress: [{to: [{ipBlock: {cidr: 0.0.0.0/0}}]}]}`, want: []string{"NP007"}},
		{name: "every rule at once", obj: npHeader + `spec: {podSelector: {}, ingress: [{}, {from: [{namespaceSelector: {}}, {ipBlock: {cidr: 0.0.0.0/0}}]}], egress: [{to: [{ipBlock: {cidr: "::/0"}}]}]}`, want: []string{"NP001", "NP004", "NP006", "NP007"}},
		{name: "extensions/v1beta1 is not checked", obj: `{apiVersion: extensions/v1beta1, kind: NetworkPolicy, metadata: {name: web, namespace: shop}, spec: {podSelector: {}, ingress: [{}]}}`},

		{name: "lint-ignore", obj: `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web, namespace: shop, annotations: {policy.servicegraph.io/lint-ignore: NP001}}
spec: {podSelector: {}, ingress: [{}, {from: [{namespaceSelector: {}}]}]}`, want: []string{"NP006"}},
		{name: "lint-ignore, lower case and spaces", obj: `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web, namespace: shop, annotations: {policy.servicegraph.io/lint-ignore: "np001 NP006,"}}
spec: {podSelector: {}, ingress: [{}, {from: [{namespaceSelector: {}}]}]}`},
		{name: "lint-ignore not honoured", params: map[string]any{"honorLintIgnore": false}, obj: `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web, namespace: shop, annotations: {policy.servicegraph.io/lint-ignore: NP001}}
spec: {podSelector: {}, ingress: [{}]}`, want: []string{"NP001"}},
		{name: "exempt namespace", params: map[string]any{"exemptNamespaces": []any{"sh*"}}, obj: npHeader + `spec: {podSelector: {}, ingress: [{}]}`},
		{name: "other namespace", params: map[string]any{"exemptNamespaces": []any{"shopping"}}, obj: npHeader + `spec: {podSelector: {}, ingress: [{}]}`, want: []string{"NP001"}},
		{name: "exempt name", params: map[string]any{"exemptNames": []any{"shop/web"}}, obj: npHeader + `spec: {podSelector: {}, ingress: [{}]}`},
		{name: "exempt user", params: map[string]any{"exemptUsernames": []any{"alice"}}, obj: npHeader + `spec: {podSelector: {}, ingress: [{}]}`},
		{name: "other user", params: map[string]any{"exemptUsernames": []any{"alice"}}, user: "bob", obj: npHeader + `spec: {podSelector: {}, ingress: [{}]}`, want: []string{"NP001"}},
		{name: "rules selected", params: map[string]any{"rules": []any{"NP004"}}, obj: npHeader + `spec: {podSelector: {}, ingress: [{}, {from: [{ipBlock: {cidr: 0.0.0.0/0}}]}]}`, want: []string{"NP004"}},
	})
}

const apHeader = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: api, namespace: shop}
`

func TestAuthorizationPolicy(t *testing.T) {
	runPolicyCases(t, "ServiceGraphNoOpenAuthorizationPolicy", authorization, []policyCase{
		{name: "allow nothing", obj: apHeader + `spec: {}`},
		{name: "allow everything", obj: apHeader + `spec: {rules: [{}]}`, want: []string{"AP005"}},
		{name: "allow everything, v1beta1", obj: `{apiVersion: security.istio.io/v1beta1, kind: AuthorizationPolicy, metadata: {name: api, namespace: shop}, spec: {action: ALLOW, rules: [{}]}}`, want: []string{"AP005"}},
		{name: "empty lists are an empty rule", obj: apHeader + `spec: {rules: [{from: [], to: [], when: []}]}`, want: []string{"AP005"}},
		{name: "deny everything", obj: apHeader + `spec: {action: DENY, rules: [{}]}`},
		{name: "dry run", obj: `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: api, namespace: shop, annotations: {istio.io/dry-run: "true"}}
spec: {rules: [{}]}`},
		{name: "any caller on a port", obj: apHeader + `spec: {selector: {matchLabels: {app: api}}, rules: [{to: [{operation: {ports: ["8080"]}}]}]}`, want: []string{"AP001"}},
		{name: "an empty source", obj: apHeader + `spec: {rules: [{from: [{source: {principals: [cluster.local/ns/shop/sa/web]}}, {source: {}}]}]}`, want: []string{"AP001"}},
		{name: "an empty from", obj: apHeader + `spec: {rules: [{from: [{}]}]}`, want: []string{"AP001"}},
		{name: "a JWT claim", obj: apHeader + `spec: {rules: [{when: [{key: "request.auth.claims[groups]", values: [admins]}]}]}`},
		{name: "a header is not the caller", obj: apHeader + `spec: {rules: [{when: [{key: "request.headers[x-user]", values: [admin]}]}]}`, want: []string{"AP001"}},
		{name: "a rule that matches nothing", obj: apHeader + `spec: {rules: [{to: [{operation: {notMethods: ["*"]}}]}]}`},
		{name: "one principal", obj: apHeader + `spec: {rules: [{from: [{source: {principals: [cluster.local/ns/shop/sa/web]}}]}]}`},
		{name: "any principal", obj: apHeader + `spec: {rules: [{from: [{source: {principals: ["*"]}}]}]}`, want: []string{"AP002"}},
		{name: "a trust domain", obj: apHeader + `spec: {rules: [{from: [{source: {principals: ["cluster.local/*"]}}]}]}`, want: []string{"AP002"}},
		{name: "a service account of any namespace", obj: apHeader + `spec: {rules: [{from: [{source: {principals: ["*/sa/default"]}}]}]}`, want: []string{"AP002"}},
		{name: "a namespace's workloads", obj: apHeader + `spec: {rules: [{from: [{source: {principals: ["cluster.local/ns/shop/*"]}}]}]}`},
		{name: "a service account, any trust domain", obj: apHeader + `spec: {rules: [{from: [{source: {principals: ["*/ns/shop/sa/web"]}}]}]}`},
		{name: "any namespace", obj: apHeader + `spec: {rules: [{from: [{source: {namespaces: ["*"]}}]}]}`, want: []string{"AP002"}},
		{name: "trust domains alone", obj: apHeader + `spec: {rules: [{from: [{source: {trustDomains: [cluster.local]}}]}]}`, want: []string{"AP002"}},
		{name: "any principal but none", obj: apHeader + `spec: {rules: [{from: [{source: {principals: ["*"], notPrincipals: ["*"]}}]}]}`},
		{name: "any principal, denied", obj: apHeader + `spec: {action: DENY, rules: [{from: [{source: {principals: ["*"]}}]}]}`},
		{name: "only not fields is AP007, not checked", obj: apHeader + `spec: {rules: [{from: [{source: {notNamespaces: [evil]}}]}]}`},

		// An empty rule is one finding, AP005: ignoring it leaves nothing (as lint does).
		{name: "lint-ignore", obj: `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: api, namespace: shop, annotations: {policy.servicegraph.io/lint-ignore: "AP005"}}
spec: {rules: [{}, {to: [{operation: {ports: ["80"]}}]}]}`, want: []string{"AP001"}},
		{name: "exempt name", params: map[string]any{"exemptNames": []any{"shop/api"}}, obj: apHeader + `spec: {rules: [{}]}`},
		{name: "rules selected", params: map[string]any{"rules": []any{"AP002"}}, obj: apHeader + `spec: {rules: [{}, {from: [{source: {namespaces: ["*"]}}]}]}`, want: []string{"AP002"}},
	})
}

const paHeader = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: shop}
`

func TestPeerAuthentication(t *testing.T) {
	permissive := map[string]any{"includePermissive": true}
	runPolicyCases(t, "ServiceGraphNoDisabledMTLS", peerAuthentication, []policyCase{
		{name: "strict", obj: paHeader + `spec: {mtls: {mode: STRICT}}`},
		{name: "no mode", obj: paHeader + `spec: {}`},
		{name: "disabled for the namespace", obj: paHeader + `spec: {mtls: {mode: DISABLE}}`, want: []string{"PA001"}},
		{name: "disabled for the mesh, v1beta1", obj: `{apiVersion: security.istio.io/v1beta1, kind: PeerAuthentication, metadata: {name: default, namespace: istio-system}, spec: {mtls: {mode: DISABLE}}}`, want: []string{"PA001"}},
		{name: "disabled for a workload", obj: paHeader + `spec: {selector: {matchLabels: {app: legacy}}, mtls: {mode: DISABLE}}`, want: []string{"PA003"}},
		{name: "disabled on a port", obj: paHeader + `spec: {selector: {matchLabels: {app: api}}, mtls: {mode: STRICT}, portLevelMtls: {"9090": {mode: DISABLE}}}`, want: []string{"PA003"}},
		{name: "permissive", obj: paHeader + `spec: {mtls: {mode: PERMISSIVE}}`},
		{name: "permissive, included", params: permissive, obj: paHeader + `spec: {mtls: {mode: PERMISSIVE}}`, want: []string{"PA002"}},
		{name: "permissive workload", obj: paHeader + `spec: {selector: {matchLabels: {app: api}}, mtls: {mode: PERMISSIVE}, portLevelMtls: {"8080": {mode: PERMISSIVE}}}`},
		{name: "permissive workload, included", params: permissive, obj: paHeader + `spec: {selector: {matchLabels: {app: api}}, mtls: {mode: PERMISSIVE}}`, want: []string{"PA003"}},
		{name: "permissive port, included", params: permissive, obj: paHeader + `spec: {selector: {matchLabels: {app: api}}, portLevelMtls: {"8080": {mode: PERMISSIVE}}}`, want: []string{"PA003"}},
		{name: "lint-ignore", obj: `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: shop, annotations: {policy.servicegraph.io/lint-ignore: PA001}}
spec: {mtls: {mode: DISABLE}}`},
	})
}

// TestEnforcementActions checks the example Constraints' split: what `servicegraph lint` calls an
// error is denied, a warning only warned about.
func TestEnforcementActions(t *testing.T) {
	c := newClient(t, exampleConstraints(t)...)
	for _, tc := range []struct {
		obj  string
		want map[string]string
	}{
		{npHeader + `spec: {podSelector: {}, ingress: [{}, {from: [{namespaceSelector: {}}, {ipBlock: {cidr: 0.0.0.0/0}}]}], egress: [{to: [{ipBlock: {cidr: "::/0"}}]}]}`,
			map[string]string{"NP001": "deny", "NP004": "deny", "NP006": "deny", "NP007": "warn"}},
		{npHeader + `spec: {podSelector: {}, ingress: [{from: [{namespaceSelector: {}}], ports: [{port: 8080}]}]}`, map[string]string{"NP012": "warn"}},
		{apHeader + `spec: {rules: [{}, {to: [{operation: {ports: ["80"]}}]}, {from: [{source: {principals: ["*"]}}]}]}`, map[string]string{"AP001": "warn", "AP002": "warn", "AP005": "deny"}},
		{paHeader + `spec: {mtls: {mode: DISABLE}, selector: {matchLabels: {app: api}}, portLevelMtls: {"80": {mode: DISABLE}}}`, map[string]string{"PA003": "warn"}},
		{paHeader + `spec: {mtls: {mode: DISABLE}}`, map[string]string{"PA001": "deny"}},
	} {
		got := map[string]string{}
		for _, v := range review(t, c, request(object(t, tc.obj), admissionv1.Create, "alice")) {
			got[v.rule] = v.action
		}
		if !equalJSON(got, tc.want) {
			t.Errorf("%s\nactions %v, want %v", tc.obj, got, tc.want)
		}
	}
}

// addData syncs objects into the client's inventory, as Gatekeeper's sync does.
func addData(t *testing.T, c *client.Client, objs ...string) {
	t.Helper()
	for _, o := range objs {
		if _, err := c.AddData(context.Background(), object(t, o)); err != nil {
			t.Fatal(err)
		}
	}
}

const (
	enforcedShop = `{apiVersion: v1, kind: Namespace, metadata: {name: shop, labels: {policy.servicegraph.io/enforced: "true"}}}`
	plainDev     = `{apiVersion: v1, kind: Namespace, metadata: {name: dev}}`
	shopGraph    = `{apiVersion: policy.servicegraph.io/v1alpha1, kind: ServiceGraph, metadata: {name: shop, namespace: shop}, spec: {}}`
	operatorUser = "system:serviceaccount:servicegraph-system:servicegraph-controller-manager"
)

func TestOperatorOwnsPolicies(t *testing.T) {
	examples := newClient(t, exampleConstraints(t)...)
	custom := newClient(t, constraint("ServiceGraphOperatorOwnsPolicies", map[string]any{"operatorUsername": "system:serviceaccount:ops:sg", "breakGlassGroup": "sre"},
		networkPolicy, authorization, peerAuthentication))
	for _, c := range []*client.Client{examples, custom} {
		addData(t, c, enforcedShop, plainDev, shopGraph)
	}
	np := func(ns string) *unstructured.Unstructured {
		return object(t, `{apiVersion: networking.k8s.io/v1, kind: NetworkPolicy, metadata: {name: allow-web, namespace: `+ns+`}, spec: {podSelector: {matchLabels: {app: web}}, ingress: [{from: [{podSelector: {matchLabels: {app: api}}}]}]}}`)
	}
	ap := object(t, apHeader+`spec: {selector: {matchLabels: {app: api}}, rules: [{from: [{source: {principals: [cluster.local/ns/shop/sa/web]}}]}]}`)
	pa := object(t, paHeader+`spec: {mtls: {mode: STRICT}}`)
	for _, tc := range []struct {
		name   string
		c      *client.Client
		obj    *unstructured.Unstructured
		op     admissionv1.Operation
		user   string
		groups []string
		want   bool
	}{
		{name: "a user creates", c: examples, obj: np("shop"), op: admissionv1.Create, user: "alice", want: true},
		{name: "a user updates", c: examples, obj: np("shop"), op: admissionv1.Update, user: "alice", groups: []string{"system:authenticated"}, want: true},
		{name: "a user deletes", c: examples, obj: np("shop"), op: admissionv1.Delete, user: "alice", want: true},
		{name: "a user creates an AuthorizationPolicy", c: examples, obj: ap, op: admissionv1.Create, user: "alice", want: true},
		{name: "a user creates a PeerAuthentication", c: examples, obj: pa, op: admissionv1.Create, user: "alice", want: true},
		{name: "the operator", c: examples, obj: np("shop"), op: admissionv1.Update, user: operatorUser},
		{name: "break glass", c: examples, obj: np("shop"), op: admissionv1.Create, user: "alice", groups: []string{"system:authenticated", "servicegraph:break-glass"}},
		{name: "the garbage collector", c: examples, obj: np("shop"), op: admissionv1.Delete, user: "system:serviceaccount:kube-system:generic-garbage-collector"},
		{name: "a namespace not enforced", c: examples, obj: np("dev"), op: admissionv1.Create, user: "alice"},
		{name: "a namespace not synced", c: examples, obj: np("new"), op: admissionv1.Create, user: "alice"},
		{name: "audit", c: examples, obj: np("shop"), op: "", user: ""},
		{name: "another operator", c: custom, obj: np("shop"), op: admissionv1.Create, user: "system:serviceaccount:ops:sg"},
		{name: "the default operator is not it", c: custom, obj: np("shop"), op: admissionv1.Create, user: operatorUser, want: true},
		{name: "another group", c: custom, obj: np("shop"), op: admissionv1.Create, user: "alice", groups: []string{"sre"}},
		{name: "the default group is not it", c: custom, obj: np("shop"), op: admissionv1.Create, user: "alice", groups: []string{"servicegraph:break-glass"}, want: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := review(t, tc.c, request(tc.obj, tc.op, tc.user, tc.groups...))
			switch {
			case tc.want && (len(got) != 1 || got[0].rule != "GK001" || tc.c == examples && got[0].action != "deny"):
				t.Errorf("violations %v, want one GK001, denied", got)
			case !tc.want && len(got) > 0:
				t.Errorf("violations %v, want none", got)
			}
		})
	}
}

func TestEnforcedNamespaceHasGraph(t *testing.T) {
	examples := newClient(t, exampleConstraints(t)...)
	exempt := newClient(t, constraint("ServiceGraphEnforcedNamespaceHasGraph", map[string]any{"exemptNamespaces": []any{"sandbox-*"}}, namespaceKind))
	for _, c := range []*client.Client{examples, exempt} {
		addData(t, c, enforcedShop, plainDev, shopGraph,
			`{apiVersion: policy.servicegraph.io/v1, kind: ServiceGraph, metadata: {name: next, namespace: next}, spec: {}}`,
			`{apiVersion: v1, kind: ConfigMap, metadata: {name: graph, namespace: empty}}`)
	}
	enforced := func(name, value string) *unstructured.Unstructured {
		return object(t, `{apiVersion: v1, kind: Namespace, metadata: {name: `+name+`, labels: {policy.servicegraph.io/enforced: "`+value+`"}}}`)
	}
	for _, tc := range []struct {
		name string
		c    *client.Client
		obj  *unstructured.Unstructured
		op   admissionv1.Operation
		want bool
	}{
		{name: "with a graph", c: examples, obj: enforced("shop", "true")},
		{name: "with a graph of another version", c: examples, obj: enforced("next", "true")},
		{name: "without a graph", c: examples, obj: enforced("empty", "true"), want: true},
		{name: "without a graph, at admission", c: examples, obj: enforced("empty", "true"), op: admissionv1.Create, want: true},
		{name: "deleted", c: examples, obj: enforced("empty", "true"), op: admissionv1.Delete},
		{name: "not enforced", c: examples, obj: enforced("empty", "false")},
		{name: "not labelled", c: examples, obj: object(t, plainDev)},
		{name: "exempt", c: exempt, obj: enforced("sandbox-1", "true")},
		{name: "not exempt", c: exempt, obj: enforced("prod", "true"), want: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := review(t, tc.c, request(tc.obj, tc.op, ""))
			switch {
			case tc.want && (len(got) != 1 || got[0].rule != "GK002" || tc.c == examples && got[0].action != "dryrun"):
				t.Errorf("violations %v, want one GK002, dryrun", got)
			case !tc.want && len(got) > 0:
				t.Errorf("violations %v, want none", got)
			}
		})
	}
}
