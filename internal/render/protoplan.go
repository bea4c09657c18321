package render

import (
	"reflect"
	"strconv"
	"strings"
	"sync"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// encodeMessage writes a generated message (a pointer to its struct) as encodeProto does, reading
// the struct's fields directly where a plan covers its type: protobuf reflection wraps every field
// and list it reads (half of printing an AuthorizationPolicy).
func encodeMessage(w *yamlWriter, v reflect.Value) error {
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return errUnsupported // no message to print: left to jsonpb
	}
	plan := planOf(v)
	if plan == nil {
		return encodeProto(w, v.Interface().(protoreflect.ProtoMessage).ProtoReflect())
	}
	if err := w.beginMap(); err != nil {
		return err
	}
	s := v.Elem()
	for _, f := range plan.fields {
		fv := s.Field(f.index)
		if !f.populated(fv) {
			continue
		}
		if err := w.field(f.name, f.key, f.enc, fv); err != nil {
			return err
		}
	}
	w.end()
	return nil
}

// protoPlan reads a generated message's struct as jsonpb reads the message: its fields in
// yaml.v2's order of their JSON names, each printed when populated (proto3 without presence: a
// non-zero scalar, a non-empty list or map, a set message).
type protoPlan struct{ fields []planField }

type planField struct {
	name, key string // the JSON name, and as written if plainly
	index     int    // in the struct
	populated func(reflect.Value) bool
	enc       encoderFunc
}

// protoPlans caches a plan per struct type; a type without one (a oneof, a field kind the plan
// does not read) holds a nil plan and is printed through protobuf reflection.
var protoPlans sync.Map // reflect.Type -> *protoPlan

func planOf(v reflect.Value) *protoPlan {
	if p, ok := protoPlans.Load(v.Type()); ok {
		return p.(*protoPlan)
	}
	p := newPlan(v.Type().Elem(), v.Interface().(protoreflect.ProtoMessage).ProtoReflect())
	protoPlans.Store(v.Type(), p)
	return p
}

func newPlan(t reflect.Type, m protoreflect.Message) *protoPlan {
	list, err := protoFields(m)
	if err != nil || t.Kind() != reflect.Struct || m.Descriptor().Oneofs().Len() > 0 {
		return nil
	}
	byName := map[string]int{} // proto field name -> struct field, from the generated tags
	for i := range t.NumField() {
		for opt := range strings.SplitSeq(t.Field(i).Tag.Get("protobuf"), ",") {
			if name, ok := strings.CutPrefix(opt, "name="); ok {
				byName[name] = i
			}
		}
	}
	plan := &protoPlan{}
	for _, fd := range list.fields {
		i, ok := byName[string(fd.Name())]
		if !ok {
			return nil
		}
		f := planField{name: fd.JSONName(), key: plainKey(fd.JSONName()), index: i, populated: populated}
		ft := t.Field(i).Type
		switch {
		case fd.IsList() && ft.Kind() == reflect.Slice:
			f.enc = planList(singularEncoder(fd, ft.Elem()))
		case fd.IsMap() && ft.Kind() == reflect.Map && ft.Key().Kind() == reflect.String:
			f.enc = planMap(singularEncoder(fd.MapValue(), ft.Elem()))
		case !fd.IsList() && !fd.IsMap():
			f.enc = singularEncoder(fd, ft)
		}
		if f.enc == nil {
			return nil
		}
		plan.fields = append(plan.fields, f)
	}
	return plan
}

// populated is protobuf's presence for proto3 fields without explicit presence.
func populated(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Slice, reflect.Map:
		return v.Len() > 0
	}
	return !v.IsZero()
}

// singularEncoder prints one value of fd, held in Go type t, as encodeProtoSingular does; nil
// for a kind or type it does not read.
func singularEncoder(fd protoreflect.FieldDescriptor, t reflect.Type) encoderFunc {
	switch k := fd.Kind(); {
	case k == protoreflect.MessageKind && t.Kind() == reflect.Pointer:
		return encodeMessage
	case k == protoreflect.EnumKind && t.Kind() == reflect.Int32 && fd.Enum().FullName() != "google.protobuf.NullValue":
		values := fd.Enum().Values()
		return func(w *yamlWriter, v reflect.Value) error {
			if vd := values.ByNumber(protoreflect.EnumNumber(v.Int())); vd != nil {
				return w.str(string(vd.Name()))
			}
			return w.literal(strconv.FormatInt(v.Int(), 10))
		}
	case k == protoreflect.StringKind && t.Kind() == reflect.String:
		return func(w *yamlWriter, v reflect.Value) error { return w.str(v.String()) }
	case k == protoreflect.BoolKind && t.Kind() == reflect.Bool:
		return func(w *yamlWriter, v reflect.Value) error { return w.literal(strconv.FormatBool(v.Bool())) }
	case (k == protoreflect.Int32Kind || k == protoreflect.Sint32Kind || k == protoreflect.Sfixed32Kind) && t.Kind() == reflect.Int32:
		return func(w *yamlWriter, v reflect.Value) error { return w.literal(strconv.FormatInt(v.Int(), 10)) }
	case (k == protoreflect.Uint32Kind || k == protoreflect.Fixed32Kind) && t.Kind() == reflect.Uint32:
		return func(w *yamlWriter, v reflect.Value) error { return w.literal(strconv.FormatUint(v.Uint(), 10)) }
	case (k == protoreflect.Int64Kind || k == protoreflect.Sint64Kind || k == protoreflect.Sfixed64Kind) && t.Kind() == reflect.Int64:
		return func(w *yamlWriter, v reflect.Value) error { return w.str(strconv.FormatInt(v.Int(), 10)) }
	case (k == protoreflect.Uint64Kind || k == protoreflect.Fixed64Kind) && t.Kind() == reflect.Uint64:
		return func(w *yamlWriter, v reflect.Value) error { return w.str(strconv.FormatUint(v.Uint(), 10)) }
	}
	return nil
}

func planList(elem encoderFunc) encoderFunc {
	if elem == nil {
		return nil
	}
	return func(w *yamlWriter, v reflect.Value) error {
		if err := w.beginSeq(); err != nil {
			return err
		}
		for i := range v.Len() {
			if err := elem(w, v.Index(i)); err != nil {
				return err
			}
		}
		w.end()
		return nil
	}
}

// planMap prints a map with string keys (jsonpb's keys are then the strings themselves).
func planMap(elem encoderFunc) encoderFunc {
	if elem == nil {
		return nil
	}
	return func(w *yamlWriter, v reflect.Value) error { return writeMap(w, v, elem) }
}
