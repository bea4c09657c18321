package render

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	istionetworkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/cilium"
	"github.com/servicegraph/servicegraph-operator/internal/compiler"
	"github.com/servicegraph/servicegraph-operator/internal/object"
	"github.com/servicegraph/servicegraph-operator/test/bench/graphgen"
)

// directOrFail prints one object with the direct encoder, which must cover it, and checks that
// the bytes are those of the JSON path (ToUnstructured and sigs.k8s.io/yaml, the output before the
// direct encoder existed).
func directOrFail(t *testing.T, obj object.Object) string {
	t.Helper()
	want, err := yamlViaJSON(nil, obj)
	if err != nil {
		t.Fatal(err)
	}
	got, err := newYAMLWriter().document(nil, obj)
	if err != nil {
		t.Fatalf("%s: the direct encoder does not cover it: %v", describe(obj), err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Fatalf("%s: direct (+) differs from the JSON path (-):\n%s", describe(obj), diff)
	}
	return string(got)
}

// The compiled goldens, read back into the typed objects the compiler makes (NetworkPolicies,
// Istio's security and networking kinds, a Gateway, CiliumNetworkPolicies), print directly to the same bytes.
func TestDirectPrintsTheGoldens(t *testing.T) {
	files, _ := filepath.Glob("../compiler/testdata/golden/*.yaml")
	files = append(files, "../cli/testdata/graphs.golden.yaml")
	kinds := map[string]func() object.Object{
		"NetworkPolicy":       func() object.Object { return &networkingv1.NetworkPolicy{} },
		"AuthorizationPolicy": func() object.Object { return &securityv1.AuthorizationPolicy{} },
		"PeerAuthentication":  func() object.Object { return &securityv1.PeerAuthentication{} },
		"ServiceEntry":        func() object.Object { return &istionetworkingv1.ServiceEntry{} },
		"Sidecar":             func() object.Object { return &istionetworkingv1.Sidecar{} },
		"Gateway":             func() object.Object { return &gatewayv1.Gateway{} },
		"CiliumNetworkPolicy": func() object.Object { return &cilium.CiliumNetworkPolicy{} },
	}
	seen := map[string]int{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for doc := range strings.SplitSeq(strings.TrimPrefix(string(data), "---\n"), "---\n") {
			var meta metav1.TypeMeta
			if err := yaml.Unmarshal([]byte(doc), &meta); err != nil || kinds[meta.Kind] == nil {
				t.Fatalf("%s: a document of kind %q: %v", f, meta.Kind, err)
			}
			obj := kinds[meta.Kind]()
			if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if got := directOrFail(t, obj); got != doc {
				t.Fatalf("%s: %s does not print back to its golden:\n%s", f, describe(obj), cmp.Diff(doc, got))
			}
			seen[meta.Kind]++
		}
	}
	if len(seen) != len(kinds) {
		t.Errorf("kinds seen %v, want all of %d", seen, len(kinds))
	}
}

// The sample graphs compile to objects the direct encoder covers, printing what the JSON path does.
func TestDirectPrintsTheSamples(t *testing.T) {
	for _, f := range []string{"../../config/samples/policy_v1alpha1_servicegraph.yaml", "../../examples/gitops/base/shop.yaml"} {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sg := &v1alpha1.ServiceGraph{}
		if err := yaml.UnmarshalStrict(data, sg); err != nil {
			t.Fatal(err)
		}
		if sg.Namespace == "" {
			sg.Namespace = "shop"
		}
		res, err := compiler.Compile(sg, compiler.DefaultOptions(), compiler.Facts{})
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, obj := range res.Objects() {
			directOrFail(t, obj)
		}
	}
}

// What ToUnstructured leaves out of a desired state, the direct encoder leaves out too: a status of
// any shape and a null metadata.creationTimestamp (not one elsewhere, nor a set one).
func TestDirectLeavesOutWhatToUnstructuredDrops(t *testing.T) {
	for _, obj := range []map[string]any{
		{"metadata": map[string]any{"creationTimestamp": nil, "name": "a"}, "status": map[string]any{"x": int64(1)}},
		{"metadata": map[string]any{"creationTimestamp": nil}, "spec": map[string]any{"creationTimestamp": nil}, "status": nil},
		{"metadata": map[string]any{"creationTimestamp": "2024-01-01T00:00:00Z", "name": "b"}, "status": "s", "zzz": []any{}},
		{"metadata": map[string]any{"labels": map[string]any{"creationTimestamp": nil}}, "status": []any{int64(1)}},
	} {
		u := &unstructured.Unstructured{Object: obj}
		u.SetAPIVersion("v1")
		u.SetKind("ConfigMap")
		if got := directOrFail(t, u); strings.Contains(got, "\nstatus:") {
			t.Errorf("kept the status:\n%s", got)
		}
	}
}

// A large input is printed in parts, joined in order: the bytes of the JSON path, object by object
// (a generated 300-service graph's 600 objects, most of them AuthorizationPolicies); WriteYAML
// writes the same. The first object to fail is the one whose error YAML returns, as when it printed
// through JSON, and WriteYAML then writes nothing.
func TestYAMLInParts(t *testing.T) {
	res, err := compiler.Compile(graphgen.Graph("big", "big", 300, 1), compiler.DefaultOptions(), compiler.Facts{})
	if err != nil {
		t.Fatal(err)
	}
	objs := res.Objects()
	var want []byte
	for _, obj := range objs {
		if want, err = yamlViaJSON(append(want, "---\n"...), obj); err != nil {
			t.Fatal(err)
		}
	}
	got, err := YAML(objs)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("YAML in parts: %v, differs from the JSON path: %v", err, !bytes.Equal(got, want))
	}
	var written bytes.Buffer
	if err := WriteYAML(&written, objs); err != nil || !bytes.Equal(written.Bytes(), want) {
		t.Fatalf("WriteYAML: %v, differs from the JSON path: %v", err, !bytes.Equal(written.Bytes(), want))
	}
	kindless := func(name string) object.Object {
		np := networkPolicy(name)
		np.TypeMeta = metav1.TypeMeta{}
		return np
	}
	objs = append(objs[:len(objs):len(objs)], kindless("last"))
	objs[len(objs)/2+1] = kindless("middle")
	_, err = YAML(objs)
	_, want2 := ToUnstructured(kindless("middle"))
	if err == nil || want2 == nil || err.Error() != want2.Error() {
		t.Errorf("YAML of objects without kind: %v, want the first one's error %v", err, want2)
	}
	written.Reset()
	if err := WriteYAML(&written, objs); err == nil || written.Len() > 0 {
		t.Errorf("WriteYAML of objects without kind: %v, and wrote %d bytes, want an error and nothing", err, written.Len())
	}
}

// Random objects, typed and unstructured, with keys and strings made of what YAML treats specially
// (numbers, bools, indicators, quotes, spaces, long lines, unicode): wherever the direct encoder
// prints one, it prints the JSON path's bytes; the rest it must leave to that path (errUnsupported).
func TestDirectMatchesTheJSONPathOnRandomObjects(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	direct := 0
	const n = 3000
	for i := range n {
		var obj object.Object
		if i%2 == 0 {
			np := networkPolicy("np")
			np.Labels, np.Annotations = randomStrings(rng), randomStrings(rng)
			port := intstr.FromString(randomString(rng))
			if rng.IntN(2) == 0 {
				port = intstr.FromInt32(rng.Int32N(70000))
			}
			np.Spec.Ingress[0].Ports[0].Port = &port
			np.Spec.PodSelector.MatchLabels = randomStrings(rng)
			obj = np
		} else {
			u := &unstructured.Unstructured{Object: randomMap(rng, 3)}
			u.SetAPIVersion("v1")
			u.SetKind("ConfigMap")
			obj = u
		}
		want, wantErr := yamlViaJSON(nil, obj)
		got, err := newYAMLWriter().document(nil, obj)
		switch {
		case errors.Is(err, errUnsupported):
			continue
		case err != nil || wantErr != nil:
			t.Fatalf("direct: %v, JSON path: %v", err, wantErr)
		case !bytes.Equal(got, want):
			t.Fatalf("object %d: direct (+) differs from the JSON path (-):\n%s", i, cmp.Diff(string(want), string(got)))
		}
		direct++
	}
	if direct < n/2 {
		t.Errorf("the direct encoder printed only %d of %d objects", direct, n)
	}
}

// plain must only accept strings that yaml.v2 prints as they are, as a value and as a key: every
// string of up to three characters from an alphabet of letters, digits and YAML's indicators, and
// every word of yaml.v2's resolve table.
func TestPlainAgreesWithYAML(t *testing.T) {
	alphabet := strings.Split("aynNoOtTfFZ_/09-.:*@=+~#!&' ,?[]{}|>%`\"", "")
	words := []string{"y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "true", "True", "TRUE",
		"false", "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF", "null", "Null", "NULL", "~",
		".nan", ".inf", "-.inf", "<<", "yess", "nul", "offf", "a:", "a:b", "a::", "/api/*", "x-1.2_3/4@5=6+7~8"}
	strs := append([]string{}, words...)
	for _, a := range alphabet {
		for _, b := range append(alphabet, "") {
			for _, c := range append(alphabet, "") {
				strs = append(strs, a+b+c)
			}
		}
	}
	accepted := 0
	for _, s := range strs {
		if !plain(s) {
			continue
		}
		accepted++
		value, err := yaml.Marshal([]string{s})
		if err != nil || string(value) != "- "+s+"\n" {
			t.Errorf("plain(%q), but yaml.v2 prints the value %q", s, value)
		}
		key, err := yaml.Marshal(map[string]int{s: 0})
		if err != nil || string(key) != s+": 0\n" {
			t.Errorf("plain(%q), but yaml.v2 prints the key %q", s, key)
		}
	}
	if accepted < len(strs)/10 {
		t.Errorf("plain accepted %d of %d strings", accepted, len(strs))
	}
}

// yamlLess, with its shortcut for ASCII, orders keys as yaml.v2's own comparison does.
func TestYAMLLessAsYAML(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for range 200000 {
		a, b := randomString(rng), randomString(rng)
		if rng.IntN(2) == 0 { // a common prefix, as keys have
			b = a + b
		}
		if yamlLess(a, b) != runeLess(a, b) || yamlLess(b, a) != runeLess(b, a) {
			t.Fatalf("yamlLess(%q, %q) = %v, yaml.v2's is %v", a, b, yamlLess(a, b), runeLess(a, b))
		}
	}
}

var pieces = []string{"a", "Z", "x", "0", "9", "12", "-", ".", "_", "/", ":", " ", "#", "*", "&", "!",
	"'", `"`, `\`, "\t", "\n", "é", "日本", "y", "yes", "On", "null", "~", "<<", "0x1F", "1e3", "1:20",
	"---", "...", "?", ",", "[", "{", "}", "@", "`", "%", "|", ">", "=", "+", "0b1", "2001-12-14", ".inf"}

func randomString(rng *rand.Rand) string {
	var b strings.Builder
	if rng.IntN(10) == 0 { // a long line, folded by yaml.v2 where it passes column 80
		for range 8 + rng.IntN(20) {
			b.WriteString("word ")
		}
	}
	for range rng.IntN(5) {
		b.WriteString(pieces[rng.IntN(len(pieces))])
	}
	return b.String()
}

func randomStrings(rng *rand.Rand) map[string]string {
	m := map[string]string{}
	for range rng.IntN(4) {
		m[randomString(rng)] = randomString(rng)
	}
	return m
}

func randomMap(rng *rand.Rand, depth int) map[string]any {
	m := map[string]any{}
	for range rng.IntN(5) {
		m[randomString(rng)] = randomValue(rng, depth-1)
	}
	return m
}

func randomValue(rng *rand.Rand, depth int) any {
	switch k := rng.IntN(8); {
	case depth > 0 && k == 0:
		return randomMap(rng, depth)
	case depth > 0 && k == 1:
		var l []any
		for range rng.IntN(4) {
			l = append(l, randomValue(rng, depth-1))
		}
		return l
	case k == 2:
		return rng.Int64N(1<<40) - 1<<39
	case k == 3:
		return rng.IntN(2) == 0
	case k == 4:
		return nil
	case k == 5 && rng.IntN(4) == 0:
		return rng.Float64() // unstructured holds floats; the direct encoder leaves them to JSON
	}
	return randomString(rng)
}
