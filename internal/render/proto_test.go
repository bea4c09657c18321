package render

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/reflect/protoreflect"
	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
	istionetworkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/servicegraph/servicegraph-operator/internal/object"
)

// Istio objects whose specs have random fields set (every kind of field: strings, enums known and
// unknown, 32- and 64-bit integers, maps, repeated messages, oneofs, well-known types, floats,
// bytes) print directly to the JSON path's bytes (jsonpb's) wherever the direct encoder takes them,
// and the encoder takes most of the security kinds the compiler makes.
func TestDirectPrintsRandomIstioSpecs(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	kinds := []func() (object.Object, protoreflect.Message){
		func() (object.Object, protoreflect.Message) {
			o := &securityv1.AuthorizationPolicy{TypeMeta: metav1.TypeMeta{APIVersion: "security.istio.io/v1", Kind: "AuthorizationPolicy"}}
			return o, o.Spec.ProtoReflect()
		},
		func() (object.Object, protoreflect.Message) {
			o := &securityv1.PeerAuthentication{TypeMeta: metav1.TypeMeta{APIVersion: "security.istio.io/v1", Kind: "PeerAuthentication"}}
			return o, o.Spec.ProtoReflect()
		},
		func() (object.Object, protoreflect.Message) {
			o := &istionetworkingv1.Sidecar{TypeMeta: metav1.TypeMeta{APIVersion: "networking.istio.io/v1", Kind: "Sidecar"}}
			return o, o.Spec.ProtoReflect()
		},
		func() (object.Object, protoreflect.Message) {
			o := &istionetworkingv1.ServiceEntry{TypeMeta: metav1.TypeMeta{APIVersion: "networking.istio.io/v1", Kind: "ServiceEntry"}}
			return o, o.Spec.ProtoReflect()
		},
		func() (object.Object, protoreflect.Message) {
			o := &istionetworkingv1.DestinationRule{TypeMeta: metav1.TypeMeta{APIVersion: "networking.istio.io/v1", Kind: "DestinationRule"}}
			return o, o.Spec.ProtoReflect()
		},
	}
	direct := make([]int, len(kinds))
	const n = 600
	for i := range n {
		obj, spec := kinds[i%len(kinds)]()
		obj.SetName("x")
		fillMessage(rng, spec, 4)
		want, wantErr := yamlViaJSON(nil, obj)
		got, err := newYAMLWriter().document(nil, obj)
		switch {
		case errors.Is(err, errUnsupported):
			continue
		case err != nil || wantErr != nil:
			t.Fatalf("%s: direct: %v, JSON path: %v", describe(obj), err, wantErr)
		case !bytes.Equal(got, want):
			t.Fatalf("%s: direct (+) differs from the JSON path (-):\n%s", describe(obj), cmp.Diff(string(want), string(got)))
		}
		direct[i%len(kinds)]++
	}
	if direct[0] < n/len(kinds)/3 || direct[1] < n/len(kinds)/3 {
		t.Errorf("printed directly, by kind: %v of %d each", direct, n/len(kinds))
	}
}

// jsonpb writes 64-bit integers as strings; the one such field an Istio spec has is deep in a
// DestinationRule (deprecated there, and still printed).
func TestDirectPrintsIstio64BitIntegers(t *testing.T) {
	dr := &istionetworkingv1.DestinationRule{TypeMeta: metav1.TypeMeta{APIVersion: "networking.istio.io/v1", Kind: "DestinationRule"}}
	dr.Name, dr.Spec.Host = "x", "h"
	dr.Spec.TrafficPolicy = &networkingv1alpha3.TrafficPolicy{LoadBalancer: &networkingv1alpha3.LoadBalancerSettings{
		LbPolicy: &networkingv1alpha3.LoadBalancerSettings_ConsistentHash{ConsistentHash: &networkingv1alpha3.LoadBalancerSettings_ConsistentHashLB{
			MinimumRingSize: 1 << 40,
		}},
	}}
	if got := directOrFail(t, dr); !strings.Contains(got, `minimumRingSize: "1099511627776"`) {
		t.Errorf("the ring size is not a string:\n%s", got)
	}
}

// fillMessage sets each field of m with even odds, messages down to depth.
func fillMessage(rng *rand.Rand, m protoreflect.Message, depth int) {
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if rng.IntN(2) == 0 || fd.Message() != nil && depth == 0 {
			continue
		}
		switch {
		case fd.IsList():
			l := m.Mutable(fd).List()
			for range rng.IntN(3) {
				if fd.Message() != nil {
					fillMessage(rng, l.AppendMutable().Message(), depth-1)
				} else {
					l.Append(randomScalar(rng, fd))
				}
			}
		case fd.IsMap():
			mv := m.Mutable(fd).Map()
			for range rng.IntN(3) {
				k := randomScalar(rng, fd.MapKey()).MapKey()
				if fd.MapValue().Message() != nil {
					fillMessage(rng, mv.Mutable(k).Message(), depth-1)
				} else {
					mv.Set(k, randomScalar(rng, fd.MapValue()))
				}
			}
		case fd.Message() != nil:
			fillMessage(rng, m.Mutable(fd).Message(), depth-1)
		default:
			m.Set(fd, randomScalar(rng, fd))
		}
	}
}

func randomScalar(rng *rand.Rand, fd protoreflect.FieldDescriptor) protoreflect.Value {
	switch fd.Kind() {
	case protoreflect.StringKind:
		return protoreflect.ValueOfString(randomString(rng))
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(rng.IntN(2) == 0)
	case protoreflect.EnumKind:
		values := fd.Enum().Values()
		if rng.IntN(5) == 0 {
			return protoreflect.ValueOfEnum(protoreflect.EnumNumber(1000 + rng.IntN(10))) // no name
		}
		return protoreflect.ValueOfEnum(values.Get(rng.IntN(values.Len())).Number())
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return protoreflect.ValueOfInt32(rng.Int32() - 1<<30)
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return protoreflect.ValueOfUint32(rng.Uint32())
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return protoreflect.ValueOfInt64(rng.Int64() - 1<<62)
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return protoreflect.ValueOfUint64(rng.Uint64())
	case protoreflect.FloatKind:
		return protoreflect.ValueOfFloat32(rng.Float32())
	case protoreflect.DoubleKind:
		return protoreflect.ValueOfFloat64(rng.Float64())
	}
	return protoreflect.ValueOfBytes([]byte(randomString(rng)))
}
