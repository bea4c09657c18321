package opa

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	templatesv1 "github.com/open-policy-agent/frameworks/constraint/pkg/apis/templates/v1"
	"github.com/open-policy-agent/frameworks/constraint/pkg/client"
	"github.com/open-policy-agent/frameworks/constraint/pkg/client/drivers/rego"
	"github.com/open-policy-agent/frameworks/constraint/pkg/core/constraints"
	"github.com/open-policy-agent/frameworks/constraint/pkg/handler"
	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"
)

const (
	gatekeeperDir = "../../config/gatekeeper"
	// targetName is Gatekeeper's admission target: templates name it, and the framework routes
	// reviews and inventory data through the handler of that name.
	targetName = "admission.k8s.gatekeeper.sh"
)

// k8sTarget is a test stand-in for Gatekeeper's K8sValidationTarget (which lives in the Gatekeeper
// module, not the framework): it gives templates the input Gatekeeper gives them (input.review is
// the AdmissionRequest: kind, name, namespace, operation, userInfo, object, oldObject), stores
// synced objects where Gatekeeper does (data.inventory.cluster[GROUP/VERSION][KIND][NAME] and
// data.inventory.namespace[NAMESPACE][GROUP/VERSION][KIND][NAME]), and matches constraints on
// spec.match.kinds, namespaces and excludedNamespaces.
type k8sTarget struct{}

var _ handler.TargetHandler = k8sTarget{}

func (k8sTarget) GetName() string { return targetName }

func (k8sTarget) MatchSchema() apiextensions.JSONSchemaProps {
	stringList := apiextensions.JSONSchemaProps{Type: "array", Items: &apiextensions.JSONSchemaPropsOrArray{Schema: &apiextensions.JSONSchemaProps{Type: "string"}}}
	return apiextensions.JSONSchemaProps{
		Type: "object",
		Properties: map[string]apiextensions.JSONSchemaProps{
			"kinds": {Type: "array", Items: &apiextensions.JSONSchemaPropsOrArray{Schema: &apiextensions.JSONSchemaProps{
				Type:       "object",
				Properties: map[string]apiextensions.JSONSchemaProps{"apiGroups": stringList, "kinds": stringList},
			}}},
			"namespaces":         stringList,
			"excludedNamespaces": stringList,
		},
	}
}

func (k8sTarget) ProcessData(obj any) (bool, []string, any, error) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return false, nil, nil, fmt.Errorf("data of type %T, want *unstructured.Unstructured", obj)
	}
	if u.GetNamespace() == "" {
		return true, []string{"cluster", u.GetAPIVersion(), u.GetKind(), u.GetName()}, u.Object, nil
	}
	return true, []string{"namespace", u.GetNamespace(), u.GetAPIVersion(), u.GetKind(), u.GetName()}, u.Object, nil
}

func (k8sTarget) HandleReview(obj any) (bool, any, error) {
	req, ok := obj.(*admissionv1.AdmissionRequest)
	return ok, req, nil
}

func (k8sTarget) ValidateConstraint(*unstructured.Unstructured) error { return nil }

func (k8sTarget) ToMatcher(constraint *unstructured.Unstructured) (constraints.Matcher, error) {
	var m matcher
	match, _, err := unstructured.NestedMap(constraint.Object, "spec", "match")
	if err != nil {
		return nil, err
	}
	data, err := json.Marshal(match)
	if err != nil {
		return nil, err
	}
	return m, json.Unmarshal(data, &m)
}

type matcher struct {
	Kinds []struct {
		APIGroups []string `json:"apiGroups"`
		Kinds     []string `json:"kinds"`
	} `json:"kinds"`
	Namespaces         []string `json:"namespaces"`
	ExcludedNamespaces []string `json:"excludedNamespaces"`
}

func (m matcher) Match(review any) (bool, error) {
	req := review.(*admissionv1.AdmissionRequest)
	kindOK := len(m.Kinds) == 0
	for _, k := range m.Kinds {
		kindOK = kindOK || anyMatch(k.APIGroups, req.Kind.Group) && anyMatch(k.Kinds, req.Kind.Kind)
	}
	ns := req.Namespace
	if req.Kind.Group == "" && req.Kind.Kind == "Namespace" {
		ns = req.Name // Gatekeeper matches a Namespace by its own name
	}
	return kindOK && (len(m.Namespaces) == 0 || anyMatch(m.Namespaces, ns)) &&
		!slices.ContainsFunc(m.ExcludedNamespaces, func(p string) bool { return globMatch(p, ns) }), nil
}

func anyMatch(patterns []string, value string) bool {
	return slices.ContainsFunc(patterns, func(p string) bool { return globMatch(p, value) })
}

// globMatch is Gatekeeper's namespace match: a name, "*", or a prefix ending in "*".
func globMatch(pattern, value string) bool {
	if prefix, ok := strings.CutSuffix(pattern, "*"); ok {
		return strings.HasPrefix(value, prefix)
	}
	return pattern == value
}

// readYAMLDocs reads the objects of a multi-document YAML file.
func readYAMLDocs(t testing.TB, path string) []*unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return splitYAML(t, path, data)
}

// splitYAML reads the objects of a multi-document YAML stream.
func splitYAML(t testing.TB, name string, data []byte) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	for _, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(data), -1) {
		var obj map[string]any
		if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if obj != nil {
			out = append(out, &unstructured.Unstructured{Object: obj})
		}
	}
	return out
}

// templateFiles are the ConstraintTemplates of config/gatekeeper/templates.
func templateFiles(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(gatekeeperDir, "templates", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return slices.DeleteFunc(files, func(f string) bool { return filepath.Base(f) == "kustomization.yaml" })
}

// loadTemplate reads a ConstraintTemplate as Gatekeeper's API server would store it.
func loadTemplate(t testing.TB, path string) *templatesv1.ConstraintTemplate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var ct templatesv1.ConstraintTemplate
	if err := yaml.UnmarshalStrict(data, &ct); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return &ct
}

// exampleConstraints are the Constraints of config/gatekeeper/constraints.
func exampleConstraints(t testing.TB) []*unstructured.Unstructured {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(gatekeeperDir, "constraints", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var out []*unstructured.Unstructured
	for _, f := range files {
		if filepath.Base(f) != "kustomization.yaml" {
			out = append(out, readYAMLDocs(t, f)...)
		}
	}
	return out
}

// newClient is Gatekeeper's constraint framework with its local Rego driver, every template of
// config/gatekeeper and the given constraints.
func newClient(t testing.TB, cs ...*unstructured.Unstructured) *client.Client {
	t.Helper()
	driver, err := rego.New()
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.NewClient(client.Targets(k8sTarget{}), client.Driver(driver), client.EnforcementPoints("audit.gatekeeper.sh", "validation.gatekeeper.sh"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, f := range templateFiles(t) {
		versionless, err := loadTemplate(t, f).ToVersionless()
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if _, err := c.AddTemplate(ctx, versionless); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
	for _, con := range cs {
		if _, err := c.AddConstraint(ctx, con); err != nil {
			t.Fatalf("constraint %s %s: %v", con.GetKind(), con.GetName(), err)
		}
	}
	return c
}

// constraint is a Constraint of a template's kind for the given kinds of object, with parameters.
func constraint(kind string, params map[string]any, match ...schema.GroupKind) *unstructured.Unstructured {
	var kinds []any
	for _, gk := range match {
		kinds = append(kinds, map[string]any{"apiGroups": []any{gk.Group}, "kinds": []any{gk.Kind}})
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "constraints.gatekeeper.sh/v1beta1",
		"kind":       kind,
		"metadata":   map[string]any{"name": "test-" + strings.ToLower(kind)},
		"spec":       map[string]any{"match": map[string]any{"kinds": kinds}},
	}}
	if params != nil {
		_ = unstructured.SetNestedField(u.Object, runtime.DeepCopyJSONValue(params), "spec", "parameters")
	}
	return u
}

// request is an admission request for obj (for DELETE, the old object).
func request(obj *unstructured.Unstructured, operation admissionv1.Operation, user string, groups ...string) *admissionv1.AdmissionRequest {
	gvk := obj.GroupVersionKind()
	raw, err := json.Marshal(obj.Object)
	if err != nil {
		panic(err)
	}
	req := &admissionv1.AdmissionRequest{
		UID:       "test",
		Kind:      metav1.GroupVersionKind{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind},
		Name:      obj.GetName(),
		Namespace: obj.GetNamespace(),
		Operation: operation,
		UserInfo:  authenticationv1.UserInfo{Username: user, Groups: groups},
	}
	if operation == admissionv1.Delete {
		req.OldObject = runtime.RawExtension{Raw: raw}
	} else {
		req.Object = runtime.RawExtension{Raw: raw}
	}
	return req
}

// violation is one result of a review.
type violation struct {
	constraint, action, rule, msg string
}

// ruleID is how every servicegraph template starts a message: [NP001], [GK001], ...
var ruleID = regexp.MustCompile(`^\[([A-Z]{2}\d{3})\] `)

// review runs the request through every template and constraint of c. A message that does not
// start with a rule ID fails the test: the framework reports a Rego evaluation error as a
// violation whose message is the error.
func review(t testing.TB, c *client.Client, req *admissionv1.AdmissionRequest) []violation {
	t.Helper()
	resp, err := c.Review(context.Background(), req)
	if err != nil {
		t.Fatalf("review %s %s/%s: %v", req.Kind.Kind, req.Namespace, req.Name, err)
	}
	var out []violation
	for _, r := range resp.Results() {
		m := ruleID.FindStringSubmatch(r.Msg)
		if m == nil {
			t.Fatalf("review %s %s/%s: a message without a rule ID (a Rego error?): %s", req.Kind.Kind, req.Namespace, req.Name, r.Msg)
		}
		out = append(out, violation{constraint: r.Constraint.GetName(), action: r.EnforcementAction, rule: m[1], msg: r.Msg})
	}
	return out
}

// rules are the distinct rule IDs of violations, sorted.
func rules(vs []violation) []string {
	var out []string
	for _, v := range vs {
		out = append(out, v.rule)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// object reads one object from YAML.
func object(t testing.TB, src string) *unstructured.Unstructured {
	t.Helper()
	var obj map[string]any
	if err := yaml.Unmarshal([]byte(src), &obj); err != nil {
		t.Fatalf("%v\n%s", err, src)
	}
	return &unstructured.Unstructured{Object: obj}
}
