package render

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/reflect/protoreflect"
	istionetworkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/compiler"
	"github.com/servicegraph/servicegraph-operator/internal/object"
	"github.com/servicegraph/servicegraph-operator/test/bench/graphgen"
	"github.com/servicegraph/servicegraph-operator/test/world"
)

// These tests hold YAML (the direct writer, with its fallback) to printing exactly what the CLI
// printed before it existed: each object through json.Marshal, unstructured's UnmarshalJSON,
// status and a null creationTimestamp dropped, and sigs.k8s.io/yaml.Marshal (ddReference, the code
// of internal/render/render.go at 0211486).

// ddReference is YAML as it was at 0211486.
func ddReference(objs []object.Object) ([]byte, error) {
	us := make([]*unstructured.Unstructured, len(objs))
	for i, obj := range objs {
		data, err := json.Marshal(obj)
		if err != nil {
			return nil, fmt.Errorf("encoding %s: %w", describe(obj), err)
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(data); err != nil {
			return nil, fmt.Errorf("decoding %s: %w", describe(obj), err)
		}
		delete(u.Object, "status")
		if meta, ok := u.Object["metadata"].(map[string]any); ok {
			if ts, ok := meta["creationTimestamp"]; ok && ts == nil {
				delete(meta, "creationTimestamp")
			}
		}
		us[i] = u
	}
	var buf bytes.Buffer
	for _, u := range us {
		doc, err := yaml.Marshal(u.Object)
		if err != nil {
			return nil, fmt.Errorf("printing %s: %w", describe(u), err)
		}
		buf.WriteString("---\n")
		buf.Write(doc)
	}
	return buf.Bytes(), nil
}

// ddCheck reports where YAML and WriteYAML differ from ddReference on objs: bytes, or errors.
func ddCheck(t *testing.T, label string, objs []object.Object) bool {
	t.Helper()
	want, wantErr := ddReference(objs)
	got, err := YAML(objs)
	var written bytes.Buffer
	writeErr := WriteYAML(&written, objs)
	switch {
	case (err != nil) != (wantErr != nil) || err != nil && err.Error() != wantErr.Error():
		t.Errorf("%s: YAML's error: %v, the reference's: %v", label, err, wantErr)
		return false
	case !bytes.Equal(got, want):
		t.Errorf("%s: YAML (+) differs from the reference (-):\n%s", label, cmp.Diff(string(want), string(got)))
		return false
	case (writeErr != nil) != (wantErr != nil) || wantErr == nil && !bytes.Equal(written.Bytes(), want):
		t.Errorf("%s: WriteYAML (%v) differs from the reference (%v)", label, writeErr, wantErr)
		return false
	}
	return true
}

// ddStrings are strings YAML treats specially: YAML 1.1's other types, indicators, quotes,
// spaces, line breaks, unicode, the empty string and long lines. A line separator inside a string
// is in ddLineSeparators, apart: it makes the difference TestDirectDiffLineSeparators shows, which
// would hide any other.
var ddStrings = []string{
	"yes", "no", "on", "off", "y", "n", "Y", "N", "True", "FALSE", "null", "Null", "NULL", "~", "1e3",
	"0x10", "0o17", "017", "1_000", "+1", "-0", "-1", "1.5", ".inf", "-.Inf", ".NaN", "2001-12-14",
	"2001-12-14T21:59:43.10-05:00", "12:30:00", "1:20", "190:20:30.15", "9223372036854775808", "0", "",
	"-", "- a", ": ", "a: b", "a:", ":a", "#", "a #b", "a#b", "?", "? a", "*a", "&a", "!a", "!!str", "%a",
	"@a", "`a", "|", ">", "'", "\"", "''", "\\", "a'b", "a\"b", "[a]", "{a}", "a,b", "<<", "=", "---",
	"...", " a", "a ", " ", "  ", "a  b", "\t", "a\tb", "\n", "a\nb", "a\n", "\na", "a\n\nb", "\r", "a\r\nb",
	"é", "日本", "\U0001F600", "\u00a0", "a\u00a0", "\u0085", "a\u0085b", "\ufeff", "\u200b", "\u00ad",
	"\u2028", "a\u2028", "a\u2028 b", "\x00", "\x7f", "\x1b[0m", "a\x00b",
	"web→api:8080", "/api/*", "cluster.local/ns/shop/sa/web", "spiffe://cluster.local/ns/a/sa/b",
	"10.0.0.0/8", "::1", "fe80::1%eth0", "*.example.com", "app.kubernetes.io/name",
	strings.Repeat("x", 200), strings.Repeat("word ", 30), strings.Repeat("é", 50), "a " + strings.Repeat("b", 90),
}

// ddFill sets every settable field reachable from v (messages through their generated structs)
// to values made of s: strings to s, integers to large values, bools to true, two items a list,
// two entries a map, down to depth. Floats, bytes and interfaces are left alone.
func ddFill(v reflect.Value, s string, depth int) {
	if depth == 0 || !v.CanSet() {
		return
	}
	switch v.Type() {
	case reflect.TypeFor[metav1.Time]():
		v.Set(reflect.ValueOf(metav1.NewTime(time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC))))
		return
	case reflect.TypeFor[intstr.IntOrString]():
		if depth%2 == 0 {
			v.Set(reflect.ValueOf(intstr.FromString(s)))
		} else {
			v.Set(reflect.ValueOf(intstr.FromInt32(math.MaxInt32)))
		}
		return
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64:
		v.SetInt(1<<53 + 1)
	case reflect.Int8, reflect.Int16, reflect.Int32:
		v.SetInt(int64(-1) << (v.Type().Bits() - 1))
	case reflect.Uint32, reflect.Uint16, reflect.Uint8:
		v.SetUint(1<<v.Type().Bits() - 1)
	case reflect.Uint, reflect.Uint64:
		v.SetUint(math.MaxInt64)
	case reflect.Pointer:
		if v.Type().Elem().Kind() != reflect.Struct || !strings.HasPrefix(v.Type().Elem().PkgPath(), "google.golang.org/protobuf/types/") {
			v.Set(reflect.New(v.Type().Elem()))
			ddFill(v.Elem(), s, depth-1)
		}
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return
		}
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		ddFill(v.Index(0), s, depth-1)
		ddFill(v.Index(1), s, depth-1)
	case reflect.Map:
		if v.Type().Key().Kind() != reflect.String {
			return
		}
		v.Set(reflect.MakeMap(v.Type()))
		for _, k := range []string{"k", "k2"} {
			e := reflect.New(v.Type().Elem()).Elem()
			ddFill(e, s, depth-1)
			v.SetMapIndex(reflect.ValueOf(k).Convert(v.Type().Key()), e)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				ddFill(v.Field(i), s, depth)
			}
		}
	}
}

func ddNetworkPolicy(s string) *networkingv1.NetworkPolicy {
	np := &networkingv1.NetworkPolicy{}
	ddFill(reflect.ValueOf(np).Elem(), s, 8)
	np.TypeMeta = metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"}
	np.ManagedFields = nil // FieldsV1 holds raw JSON
	return np
}

// ddIstioKinds make the Istio kinds the compiler outputs, empty but for their type.
var ddIstioKinds = []func() object.Object{
	func() object.Object {
		return &securityv1.AuthorizationPolicy{TypeMeta: metav1.TypeMeta{APIVersion: "security.istio.io/v1", Kind: "AuthorizationPolicy"}}
	},
	func() object.Object {
		return &securityv1.PeerAuthentication{TypeMeta: metav1.TypeMeta{APIVersion: "security.istio.io/v1", Kind: "PeerAuthentication"}}
	},
	func() object.Object {
		return &istionetworkingv1.Sidecar{TypeMeta: metav1.TypeMeta{APIVersion: "networking.istio.io/v1", Kind: "Sidecar"}}
	},
	func() object.Object {
		return &istionetworkingv1.ServiceEntry{TypeMeta: metav1.TypeMeta{APIVersion: "networking.istio.io/v1", Kind: "ServiceEntry"}}
	},
}

// ddFillMessage sets every field of m (the oneofs' member number variant among theirs) to values
// made of s, messages down to depth; well-known types, floats and bytes are left alone.
func ddFillMessage(m protoreflect.Message, s string, variant, depth int) {
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if od := fd.ContainingOneof(); od != nil && !od.IsSynthetic() && od.Fields().Get(variant%od.Fields().Len()) != fd {
			continue
		}
		if fd.Message() != nil && (depth == 0 || strings.HasPrefix(string(fd.Message().FullName()), "google.protobuf.")) {
			continue
		}
		switch {
		case fd.IsList():
			l := m.Mutable(fd).List()
			for range 2 {
				if fd.Message() != nil {
					ddFillMessage(l.AppendMutable().Message(), s, variant, depth-1)
				} else if v, ok := ddScalar(fd, s, variant); ok {
					l.Append(v)
				}
			}
		case fd.IsMap():
			mv := m.Mutable(fd).Map()
			keys := []protoreflect.MapKey{protoreflect.ValueOfString("k").MapKey(), protoreflect.ValueOfString("k2").MapKey()}
			if fd.MapKey().Kind() != protoreflect.StringKind {
				k, _ := ddScalar(fd.MapKey(), s, variant)
				keys = []protoreflect.MapKey{k.MapKey(), protoreflect.ValueOfUint32(80).MapKey()}
			}
			for _, k := range keys {
				if fd.MapValue().Message() != nil {
					ddFillMessage(mv.Mutable(k).Message(), s, variant, depth-1)
				} else if v, ok := ddScalar(fd.MapValue(), s, variant); ok {
					mv.Set(k, v)
				}
			}
		case fd.Message() != nil:
			ddFillMessage(m.Mutable(fd).Message(), s, variant, depth-1)
		default:
			if v, ok := ddScalar(fd, s, variant); ok {
				m.Set(fd, v)
			}
		}
	}
}

func ddScalar(fd protoreflect.FieldDescriptor, s string, variant int) (protoreflect.Value, bool) {
	switch fd.Kind() {
	case protoreflect.StringKind:
		return protoreflect.ValueOfString(s), true
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(true), true
	case protoreflect.EnumKind:
		values := fd.Enum().Values()
		if variant%3 == 2 {
			return protoreflect.ValueOfEnum(1000), true // no name
		}
		return protoreflect.ValueOfEnum(values.Get((variant + 1) % values.Len()).Number()), true
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return protoreflect.ValueOfInt32(math.MinInt32), true
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return protoreflect.ValueOfUint32(math.MaxUint32), true
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return protoreflect.ValueOfInt64(1<<53 + 1), true
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return protoreflect.ValueOfUint64(math.MaxUint64), true
	}
	return protoreflect.Value{}, false
}

// ddIstio is an Istio object of kind k whose metadata and spec are filled with s.
func ddIstio(k int, s string, variant int) object.Object {
	obj := ddIstioKinds[k]()
	v := reflect.ValueOf(obj).Elem()
	ddFill(v.FieldByName("ObjectMeta"), s, 4)
	obj.SetManagedFields(nil)
	spec := v.FieldByName("Spec").Addr().Interface().(protoreflect.ProtoMessage)
	ddFillMessage(spec.ProtoReflect(), s, variant, 5)
	status := v.FieldByName("Status").Addr().Interface().(protoreflect.ProtoMessage)
	ddFillMessage(status.ProtoReflect(), s, variant, 3)
	return obj
}

// Every string field of a NetworkPolicy and of the Istio kinds the compiler makes, every label
// and annotation among them, set to each of ddStrings: YAML prints what the reference prints.
func TestDirectDiffUnusualStrings(t *testing.T) {
	for _, s := range ddStrings {
		ddCheck(t, fmt.Sprintf("NetworkPolicy filled with %q", s), []object.Object{ddNetworkPolicy(s)})
		for _, obj := range []object.Object{
			&gatewayv1.Gateway{TypeMeta: metav1.TypeMeta{APIVersion: "gateway.networking.k8s.io/v1", Kind: "Gateway"}},
			&v1alpha1.ServiceGraph{TypeMeta: metav1.TypeMeta{APIVersion: "policy.servicegraph.io/v1alpha1", Kind: "ServiceGraph"}},
			&corev1.Service{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Service"}},
			&corev1.ConfigMap{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"}},
		} {
			kind := obj.GetObjectKind().GroupVersionKind()
			ddFill(reflect.ValueOf(obj).Elem(), s, 6)
			obj.GetObjectKind().SetGroupVersionKind(kind)
			obj.SetManagedFields(nil)
			ddCheck(t, fmt.Sprintf("%s filled with %q", kind.Kind, s), []object.Object{obj})
		}
		for k := range ddIstioKinds {
			for variant := range 3 {
				obj := ddIstio(k, s, variant)
				ddCheck(t, fmt.Sprintf("%s (variant %d) filled with %q", describe(obj), variant, s), []object.Object{obj})
			}
		}
	}
}

// ddLineSeparators are strings with a line separator (U+2028) or a paragraph separator (U+2029)
// before other characters: yaml.v2 prints them single-quoted, the separator followed by a line's
// indentation, which depends on the scalar's depth.
var ddLineSeparators = []string{"a\u2028b", "a\u2029b", "x\u2028y\u2028z", "web\u2028api", "\u2029a"}

// A line separator in a label, an annotation, and in each string field of the kinds the compiler
// makes: yaml.v2 writes "a\u2028b" as a label's value as 'a\u2028      b' (the separator, then the
// 6 spaces of the value's indentation), and as a field of an AuthorizationPolicy's rule deeper
// still; the direct writer reuses the rendering of its probe (the string alone in a sequence,
// 'a\u2028  b') at any depth.
func TestDirectDiffLineSeparators(t *testing.T) {
	for _, s := range ddLineSeparators {
		np := &networkingv1.NetworkPolicy{TypeMeta: metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"}}
		np.Name, np.Labels = "np", map[string]string{"a": s}
		ddCheck(t, fmt.Sprintf("NetworkPolicy with the label a=%q", s), []object.Object{np})
		ap := ddIstioKinds[0]().(*securityv1.AuthorizationPolicy)
		ap.Name, ap.Annotations = "ap", map[string]string{"note": s}
		ddCheck(t, fmt.Sprintf("AuthorizationPolicy with the annotation note=%q", s), []object.Object{ap})
		ddCheck(t, fmt.Sprintf("NetworkPolicy filled with %q", s), []object.Object{ddNetworkPolicy(s)})
		for k := range ddIstioKinds {
			obj := ddIstio(k, s, 0)
			ddCheck(t, fmt.Sprintf("%s filled with %q", describe(obj), s), []object.Object{obj})
		}
	}
}

// Integers at int64's edges and past 2^53, zero values, empty and nil collections.
func TestDirectDiffNumbersAndEmpties(t *testing.T) {
	np := func() *networkingv1.NetworkPolicy {
		return &networkingv1.NetworkPolicy{TypeMeta: metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
			ObjectMeta: metav1.ObjectMeta{Name: "np"}}
	}
	var objs []object.Object
	for _, n := range []int64{0, 1, -1, 1<<53 + 1, math.MaxInt64, math.MinInt64} {
		o := np()
		o.Generation, o.DeletionGracePeriodSeconds = n, &n
		objs = append(objs, o)
	}
	for _, n := range []int32{0, -1, math.MaxInt32, math.MinInt32} {
		o := np()
		port := intstr.FromInt32(n)
		o.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{{Port: &port, EndPort: &n}}}}
		objs = append(objs, o)
	}
	empty := np()
	empty.Labels, empty.Annotations, empty.Finalizers = map[string]string{}, map[string]string{"": ""}, []string{}
	empty.Spec.PodSelector.MatchLabels = map[string]string{}
	empty.Spec.PodSelector.MatchExpressions = []metav1.LabelSelectorRequirement{{}, {Values: []string{}}, {Values: []string{""}}}
	empty.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{}, {From: []networkingv1.NetworkPolicyPeer{}, Ports: []networkingv1.NetworkPolicyPort{{}}}}
	empty.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{{}, {IPBlock: &networkingv1.IPBlock{}}}}}
	empty.Spec.PolicyTypes = []networkingv1.PolicyType{}
	set := np()
	set.CreationTimestamp = metav1.NewTime(time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC))
	set.DeletionTimestamp = &metav1.Time{}
	objs = append(objs, empty, set)
	for i, o := range objs {
		ddCheck(t, fmt.Sprintf("object %d", i), []object.Object{o})
	}
	for k := range ddIstioKinds {
		ddCheck(t, fmt.Sprintf("empty %T", ddIstioKinds[k]()), []object.Object{ddIstioKinds[k]()})
	}
}

// ddNumbered is an object with a json.Number field, which encoding/json writes as the number it
// holds (unstructured then reads it as an int64), not as a string.
type ddNumbered struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              ddNumberedSpec `json:"spec"`
}

type ddNumberedSpec struct {
	Count json.Number `json:"count"`
	Any   any         `json:"any,omitempty"`
}

func (o *ddNumbered) DeepCopyObject() runtime.Object { c := *o; return &c }

// The direct encoder prints a json.Number as the string it is ("5" quoted), not as the number
// encoding/json writes (5), nor as encoding/json's error for one that is no number.
func TestDirectDiffJSONNumber(t *testing.T) {
	for _, spec := range []ddNumberedSpec{
		{Count: "5"},
		{Count: "5", Any: json.Number("7")},
		{Count: "", Any: map[string]any{"n": json.Number("9007199254740993")}},
		{Count: "1.5"},
		{Count: "abc"}, // encoding/json refuses it
	} {
		obj := &ddNumbered{TypeMeta: metav1.TypeMeta{APIVersion: "example.com/v1", Kind: "Numbered"}, Spec: spec}
		obj.Name = "n"
		ddCheck(t, fmt.Sprintf("Numbered with spec %+v", spec), []object.Object{obj})
	}
}

// The compiler's outputs for random worlds (Istio on, off, and the namespaces in ambient mode)
// and for generated graphs, printed together as the CLI prints them.
func TestDirectDiffCompiledGraphs(t *testing.T) {
	istioOff := compiler.Facts{Missing: compiler.Builtin().KindsOf(compiler.LayerIstio)}
	ambient := compiler.Facts{NamespaceLabels: map[string]string{"istio.io/dataplane-mode": "ambient"},
		Waypoints: map[string]compiler.WaypointFacts{"waypoint": {Ready: true, ServiceAccount: "waypoint"}}}
	ambient.NamespaceLabels["istio.io/use-waypoint"] = "waypoint"
	printed := 0
	for seed := range uint64(40) {
		rng := rand.New(rand.NewPCG(seed, 99))
		w := world.Random(rng, world.Options{MaxServices: 25, Namespaces: 3})
		var objs []object.Object
		for i, sg := range w.Graphs(rng) {
			facts := []compiler.Facts{{}, istioOff, ambient}[(int(seed)+i)%3]
			res, err := compiler.Compile(sg, compiler.DefaultOptions(), facts)
			if err != nil {
				t.Logf("seed %d: %s: %v", seed, sg.Namespace, err)
				continue
			}
			objs = append(objs, res.Objects()...)
		}
		ddCheck(t, fmt.Sprintf("world seed %d", seed), objs)
		printed += len(objs)
	}
	for _, n := range []int{2, 3, 10, 70, 260} {
		res, err := compiler.Compile(graphgen.Graph("g", "gen", n, uint64(n)), compiler.DefaultOptions(), compiler.Facts{})
		if err != nil {
			t.Fatal(err)
		}
		ddCheck(t, fmt.Sprintf("graphgen %d services", n), res.Objects())
		printed += len(res.Objects())
	}
	t.Logf("%d compiled objects", printed)
}

// The compiler's outputs for random worlds with each string field, label and annotation replaced,
// at random, by one of ddStrings.
func TestDirectDiffPerturbedCompiledObjects(t *testing.T) {
	for seed := range uint64(150) {
		rng := rand.New(rand.NewPCG(seed, 7))
		w := world.Random(rng, world.Options{MaxServices: 12, Namespaces: 2})
		for _, sg := range w.Graphs(rng) {
			res, err := compiler.Compile(sg, compiler.DefaultOptions(), compiler.Facts{})
			if err != nil {
				continue
			}
			for _, obj := range res.Objects() {
				ddPerturb(rng, reflect.ValueOf(obj).Elem())
				pick := func() string { return ddStrings[rng.IntN(len(ddStrings))] }
				obj.SetLabels(map[string]string{"app": pick(), pick(): "x"})
				obj.SetAnnotations(map[string]string{"note": pick()})
				ddCheck(t, fmt.Sprintf("seed %d: perturbed %s", seed, describe(obj)), []object.Object{obj})
			}
		}
	}
}

// ddPerturb replaces, with odds of one in three, each settable string reachable from v (but the
// kind and apiVersion) with one of ddStrings.
func ddPerturb(rng *rand.Rand, v reflect.Value) {
	switch v.Kind() {
	case reflect.String:
		if v.CanSet() && rng.IntN(3) == 0 {
			v.SetString(ddStrings[rng.IntN(len(ddStrings))])
		}
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			ddPerturb(rng, v.Elem())
		}
	case reflect.Slice:
		for i := range v.Len() {
			ddPerturb(rng, v.Index(i))
		}
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[metav1.TypeMeta]() {
			return
		}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				ddPerturb(rng, v.Field(i))
			}
		}
	}
}

// Unstructured objects, as the CLI's commands also print them (a status, a null
// creationTimestamp, lists of maps, nested empties).
func TestDirectDiffUnstructured(t *testing.T) {
	for i, s := range ddStrings {
		u := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "v1", "kind": "ConfigMap",
			"metadata": map[string]any{"name": "cm", "creationTimestamp": nil, "labels": map[string]any{"a": s}},
			"data":     map[string]any{s: s, "k": s},
			"list":     []any{s, map[string]any{"a": s, "b": []any{s, int64(i)}}, []any{s}, []any{}, map[string]any{}},
			"status":   map[string]any{"s": s},
		}}
		ddCheck(t, fmt.Sprintf("ConfigMap with %q", s), []object.Object{u})
	}
	for i, obj := range []map[string]any{
		{"kind": "A", "metadata": map[string]any{"creationTimestamp": nil}},
		{"kind": "A", "status": "s"},
		{"kind": "A", "metadata": nil, "spec": map[string]any{"creationTimestamp": nil, "status": nil}},
		{"kind": "A", "metadata": []any{map[string]any{"creationTimestamp": nil}}},
		{"kind": "A", "apiVersion": "", "a": []any{[]any{[]any{}}, []any{map[string]any{}}, map[string]any{"b": []any{}}}},
		{"kind": "", "apiVersion": "v1"},
		{"kind": int64(1), "apiVersion": "v1"},
		{"kind": "A", "0": "a", "_": "b", "Z": "c", "é": "d", "10": "e", "9": "f", "a1": "g", "a01": "h"},
	} {
		ddCheck(t, fmt.Sprintf("unstructured %d", i), []object.Object{&unstructured.Unstructured{Object: obj}})
	}
	pod := &corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}}
	ddFill(reflect.ValueOf(pod).Elem(), "x", 4)
	pod.ManagedFields = nil
	ddCheck(t, "a filled Pod", []object.Object{pod})
}
