package lint

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/servicegraph/servicegraph-operator/internal/object"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/cilium"
	"github.com/servicegraph/servicegraph-operator/internal/compiler"
)

// decode reads a "---"-separated stream of the kinds the linter checks, each object at line
// 10*i+1 of file "test.yaml".
func decode(t *testing.T, stream string) []Object {
	t.Helper()
	var objs []Object
	for i, doc := range strings.Split(stream, "\n---\n") {
		var meta struct{ Kind string }
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
			t.Fatal(err)
		}
		var obj object.Object
		switch meta.Kind {
		case "ServiceGraph":
			obj = &v1alpha1.ServiceGraph{}
		case "NetworkPolicy":
			obj = &networkingv1.NetworkPolicy{}
		case "AuthorizationPolicy":
			obj = &securityv1.AuthorizationPolicy{}
		case "PeerAuthentication":
			obj = &securityv1.PeerAuthentication{}
		case "CiliumNetworkPolicy":
			obj = &cilium.CiliumNetworkPolicy{}
		case "CiliumClusterwideNetworkPolicy":
			obj = &cilium.CiliumClusterwideNetworkPolicy{}
		case "Service":
			obj = &corev1.Service{}
		case "Namespace":
			obj = &corev1.Namespace{}
		case "Pod", "Deployment", "StatefulSet", "DaemonSet":
			data, err := yaml.YAMLToJSON([]byte(doc))
			if err != nil {
				t.Fatal(err)
			}
			w := &corev1.PodTemplate{}
			if err := ReadWorkload(data, w); err != nil {
				t.Fatal(err)
			}
			objs = append(objs, Object{File: "test.yaml", Line: 10*i + 1, Object: w})
			continue
		case "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration", "APIService", "CustomResourceDefinition",
			"ServiceMonitor", "PodMonitor", "Ingress", "Gateway":
			obj = &unstructured.Unstructured{}
		default:
			t.Fatalf("document %d: kind %q", i, meta.Kind)
		}
		if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
			t.Fatalf("document %d: %v\n%s", i, err, doc)
		}
		objs = append(objs, Object{File: "test.yaml", Line: 10*i + 1, Object: obj})
	}
	return objs
}

// graphYAML is a ServiceGraph shop/shop with the given spec.
func graphYAML(spec string) string {
	return "apiVersion: policy.servicegraph.io/v1alpha1\nkind: ServiceGraph\nmetadata: {name: shop, namespace: shop}\nspec:\n" + spec
}

// npYAML is a NetworkPolicy "np" in namespace shop with the given spec.
func npYAML(spec string) string {
	return "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: np, namespace: shop}\nspec:\n" + spec
}

// istioYAML is an Istio policy of the kind named "p" in the namespace with the given spec.
func istioYAML(kind, namespace, spec string) string {
	return "apiVersion: security.istio.io/v1\nkind: " + kind + "\nmetadata: {name: p, namespace: " + namespace + "}\nspec:\n" + spec
}

const (
	threeServices  = "  services: [{name: web}, {name: api}, {name: db}]\n"
	defaultDenyNP  = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny, namespace: shop}\nspec: {podSelector: {}, policyTypes: [Ingress, Egress]}"
	fromWeb        = "    from: [{podSelector: {matchLabels: {app: web}}}]\n"
	webPrincipal   = "  - from: [{source: {principals: [cluster.local/ns/shop/sa/web]}}]\n"
	selectorAPI    = "  selector: {matchLabels: {app: api}}\n"
	ingressFromWeb = "  podSelector: {matchLabels: {app: api}}\n  ingress:\n  - ports: [{port: 80}]\n" + fromWeb
)

// serviceYAML is a Service shop/api in front of the api pods, with one port.
func serviceYAML(port string) string {
	return "apiVersion: v1\nkind: Service\nmetadata: {name: api, namespace: shop}\nspec:\n  selector: {app: api}\n  ports: [" + port + "]"
}

func atLeast(findings []Finding, s Severity) []Finding {
	return slices.DeleteFunc(slices.Clone(findings), func(f Finding) bool { return !f.Severity.AtLeast(s) })
}

func rulesOf(findings []Finding) []string {
	var ids []string
	for _, f := range findings {
		ids = append(ids, f.Rule)
	}
	return ids
}

// TestRules: each rule reports the bad manifest, and the good one at most as a note.
func TestRules(t *testing.T) {
	for _, tc := range allRuleCases() {
		t.Run(tc.rule+" "+tc.name, func(t *testing.T) {
			if got := Lint(decode(t, tc.bad), DefaultOptions()); !slices.Contains(rulesOf(atLeast(got, SeverityWarning)), tc.rule) {
				t.Errorf("bad manifest: want %s, got %v", tc.rule, got)
			}
			if got := Lint(decode(t, tc.good), DefaultOptions()); slices.Contains(rulesOf(atLeast(got, SeverityWarning)), tc.rule) {
				t.Errorf("good manifest: want no %s, got %v", tc.rule, got)
			}
		})
	}
}

// ruleID is a rule's ID: the kind's letters (CNP for Cilium's policies), then three digits.
var ruleID = regexp.MustCompile(`^[A-Z]{2,3}[0-9]{3}$`)

// allRuleCases are the cases of every rule.
func allRuleCases() []ruleCase {
	return slices.Concat(ruleCases, crossRefCases, ciliumCases)
}

// Every rule has a case, and the catalogue's IDs are unique, sorted and well-formed.
func TestCatalogue(t *testing.T) {
	rules := Rules()
	for i, r := range rules {
		if i > 0 && rules[i-1].ID >= r.ID {
			t.Errorf("rules not sorted or not unique at %s", r.ID)
		}
		if !ruleID.MatchString(r.ID) || r.Summary == "" || r.Hint == "" || (r.Severity != SeverityError && r.Severity != SeverityWarning) {
			t.Errorf("incomplete rule %+v", r)
		}
		if r.ID == ruleUnreadable.ID || r.ID == ruleTemplate.ID || r.ID == ruleRemovedAPI.ID {
			continue // about files, not objects: internal/cli's tests have them
		}
		if !slices.ContainsFunc(allRuleCases(), func(tc ruleCase) bool { return tc.rule == r.ID }) {
			t.Errorf("rule %s has no case in ruleCases", r.ID)
		}
	}
}

// A finding carries the rule's severity and hint and the object's place.
func TestFindingFields(t *testing.T) {
	got := Lint(decode(t, graphYAML(threeServices+"  edges: [web->cache:80]\n")), DefaultOptions())
	want := []Finding{{
		Rule: "SG002", Severity: SeverityError, File: "test.yaml", Line: 1, Kind: "ServiceGraph", Namespace: "shop", Name: "shop",
		Message: `edge "web->cache:80": service "cache" is not declared in spec.services`,
		Hint:    ruleUndeclaredService.Hint,
	}}
	if !slices.Equal(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}

// The lint-ignore annotation drops the rules it lists, and only those.
func TestIgnoreAnnotation(t *testing.T) {
	np := strings.Replace(npYAML("  podSelector: {}\n  ingress: [{}, {from: [{ipBlock: {cidr: 10.0.0.0/8}}]}]\n"), "namespace: shop}",
		"namespace: shop, annotations: {"+AnnotationIgnore+": 'NP001, NP005'}}", 1)
	if got := rulesOf(Lint(decode(t, np), DefaultOptions())); !slices.Equal(got, []string{"NP003"}) {
		t.Errorf("got %v, want [NP003]", got)
	}
}

// The operator's label is no way to switch the linter off: an object that wears it is skipped only
// when a ServiceGraph of the input generates exactly it (same kind, name and spec); any other is
// linted as written by hand and said to claim what it is not.
func TestGeneratedLabelIsNoBypass(t *testing.T) {
	managed := "metadata: {name: np, namespace: shop, labels: {app.kubernetes.io/managed-by: servicegraph-operator}}"
	np := strings.Replace(npYAML("  podSelector: {}\n  ingress: [{}]\n"), "metadata: {name: np, namespace: shop}", managed, 1)
	ap := strings.Replace(istioYAML("AuthorizationPolicy", "shop", "  rules: [{}]\n"), "namespace: shop}",
		"namespace: shop, labels: {app.kubernetes.io/managed-by: servicegraph-operator}}", 1)
	got := rulesOf(Lint(decode(t, np+"\n---\n"+ap), DefaultOptions()))
	for _, want := range []string{"NP001", "IN003", "AP005"} {
		if !slices.Contains(got, want) {
			t.Errorf("a labelled allow-all without its graph: got %v, want %s among them", got, want)
		}
	}

	// The graph's own objects, as the compiler makes them, are its business; a tampered copy is not.
	sg := decode(t, graphYAML(threeServices+"  edges: [web->api:8080]\n"))
	res, err := compiler.Compile(sg[0].Object.(*v1alpha1.ServiceGraph), compiler.DefaultOptions(), compiler.Facts{})
	if err != nil {
		t.Fatal(err)
	}
	objs := slices.Clone(sg)
	for i, obj := range res.Objects() {
		objs = append(objs, Object{File: "generated.yaml", Line: 10*i + 1, Object: obj})
	}
	if got := Lint(objs, DefaultOptions()); len(got) != 0 {
		t.Errorf("a graph with its generated objects: got %v, want nothing", got)
	}
	tampered := res.Objects()[len(res.Objects())-1].DeepCopyObject().(object.Object)
	if dd, ok := tampered.(*networkingv1.NetworkPolicy); ok {
		dd.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{}}
	} else {
		t.Fatalf("the last generated object is a %T, want the default-deny NetworkPolicy", tampered)
	}
	got = rulesOf(Lint(append(slices.Clone(sg), Object{File: "tampered.yaml", Line: 1, Object: tampered}), DefaultOptions()))
	if !slices.Contains(got, "IN003") || !slices.Contains(got, "NP001") {
		t.Errorf("a tampered default-deny: got %v, want IN003 and NP001", got)
	}
}

// lint-ignore takes rule IDs in any case and says when one names no rule.
func TestIgnoreUnknownRule(t *testing.T) {
	np := strings.Replace(npYAML("  podSelector: {}\n  ingress: [{}]\n"), "namespace: shop}",
		"namespace: shop, annotations: {"+AnnotationIgnore+": 'np001,NP999'}}", 1)
	got := Lint(decode(t, np), DefaultOptions())
	if rules := rulesOf(got); slices.Contains(rules, "NP001") || !slices.Contains(rules, "IN005") {
		t.Errorf("got %v, want NP001 ignored and IN005", rules)
	}
}

// The root namespace is an option: there, a selector-less PeerAuthentication is mesh-wide and a
// selector-less ALLOW policy for named callers is a note.
func TestRootNamespace(t *testing.T) {
	objs := decode(t, istioYAML("PeerAuthentication", "mesh", "  mtls: {mode: PERMISSIVE}\n")+"\n---\n"+
		istioYAML("AuthorizationPolicy", "mesh", "  rules:\n"+webPrincipal))
	got := atLeast(Lint(objs, Options{RootNamespace: "mesh"}), SeverityWarning)
	if len(got) != 1 || got[0].Message != "mtls.mode PERMISSIVE applies to the whole mesh (root namespace mesh)" {
		t.Errorf("got %+v", got)
	}
}

// Findings are sorted by file, line and rule, whatever the input order.
func TestOrder(t *testing.T) {
	objs := decode(t, npYAML("  podSelector: {}\n  ingress: [{}, {from: [{ipBlock: {cidr: 10.0.0.0/8}}]}]\n")+"\n---\n"+graphYAML(threeServices+"  edges: [api->api:1]\n  mtls: PERMISSIVE\n"))
	objs[0].File, objs[1].File = "b.yaml", "a.yaml"
	got := Lint(objs, DefaultOptions())
	want := []string{"SG004", "NP001", "NP003"} // the graph is namespace shop's default-deny
	if !slices.Equal(rulesOf(got), want) {
		t.Errorf("got %v, want %v", rulesOf(got), want)
	}
}

func TestParseSeverity(t *testing.T) {
	for _, s := range []string{"error", "warning"} {
		if got, err := ParseSeverity(s); err != nil || string(got) != s {
			t.Errorf("ParseSeverity(%q) = %q, %v", s, got, err)
		}
	}
	if _, err := ParseSeverity("info"); err == nil {
		t.Error("ParseSeverity(info): want an error")
	}
	if !SeverityError.AtLeast(SeverityWarning) || SeverityWarning.AtLeast(SeverityError) || !SeverityWarning.AtLeast(SeverityWarning) {
		t.Error("AtLeast orders error above warning")
	}
}

// An empty report is still an object with an array, not null.
func TestEmptyJSON(t *testing.T) {
	data, err := Report{Objects: 2}.JSON()
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	if findings, ok := got["findings"].([]any); !ok || len(findings) != 0 {
		t.Errorf("findings = %#v, want []", got["findings"])
	}
	if text := string(Report{Objects: 1}.Text()); text != "0 errors, 0 warnings, 0 notes in 1 object\n" {
		t.Errorf("Text() = %q", text)
	}
}

// A policy gets one finding per rule and direction however many of its rules are open, and NP004
// says when except ranges are carved out.
func TestOneFindingPerPolicy(t *testing.T) {
	np := npYAML("  podSelector: {matchLabels: {app: api}}\n  ingress: [{}, {from: [{}]}, {ports: [{port: 80}]}, {from: [{ipBlock: {cidr: 0.0.0.0/0, except: [10.0.0.0/8, 192.168.0.0/16]}}]}]\n")
	got := Lint(decode(t, np), DefaultOptions())
	var np001, np004 []string
	for _, f := range got {
		switch f.Rule {
		case "NP001":
			np001 = append(np001, f.Message)
		case "NP004":
			np004 = append(np004, f.Message)
		}
	}
	if want := "spec.ingress[0] has no from, spec.ingress[2] has no from: it admits every source"; len(np001) != 1 || np001[0] != want {
		t.Errorf("NP001: %q, want one: %q", np001, want)
	}
	if want := "spec.ingress[3] admits every IPv4 address but 2 except range(s): in the cluster and out"; len(np004) != 1 || np004[0] != want {
		t.Errorf("NP004: %q, want %q", np004, want)
	}
}
