package render

import (
	"bytes"
	"encoding/json"
	"io"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// encodeProto writes a message as github.com/golang/protobuf's jsonpb.Marshaler{} prints it (the
// options of every Istio API type's MarshalJSON): the populated fields by their JSON names, enums
// by name, 64-bit integers as strings. Well-known types, proto2, extensions, floats and bytes are
// not copied.
func encodeProto(w *yamlWriter, m protoreflect.Message) error {
	list, err := protoFields(m)
	if err != nil {
		return err
	}
	// The populated fields (jsonpb without EmitDefaults skips the others), put in order on the
	// writer's stack of values: Range reads each field once, where Has and Get look it up twice.
	base := len(w.protoValues)
	w.protoValues = append(w.protoValues, make([]protoreflect.Value, len(list.fields))...)
	w.protoBase, w.protoList, w.protoErr = base, list, nil
	m.Range(w.protoField)
	err = w.protoErr
	if err == nil {
		err = w.beginMap()
	}
	for i := 0; err == nil && i < len(list.fields); i++ {
		if v := w.protoValues[base+i]; v.IsValid() {
			if err = w.setKey(list.fields[i].JSONName()); err == nil {
				err = encodeProtoValue(w, list.fields[i], v)
			}
		}
	}
	w.protoValues = w.protoValues[:base]
	if err != nil {
		return err
	}
	w.end()
	return nil
}

// rangeProtoField is what encodeProto ranges over a message with, as w.protoField: a method
// value made once, where a closure would be allocated for every message.
func (w *yamlWriter) rangeProtoField(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
	i, ok := w.protoList.place[fd.Number()]
	if !ok {
		w.protoErr = errUnsupported
		return false
	}
	w.protoValues[w.protoBase+i] = v
	return true
}

// protoFieldList is a message type's fields in yaml.v2's order of their JSON names.
type protoFieldList struct {
	fields []protoreflect.FieldDescriptor
	place  map[protoreflect.FieldNumber]int // a field's index in fields
}

// protoFieldLists caches the field list of each message type.
var protoFieldLists sync.Map // protoreflect.MessageDescriptor -> *protoFieldList

func protoFields(m protoreflect.Message) (*protoFieldList, error) {
	md := m.Descriptor()
	if f, ok := protoFieldLists.Load(md); ok {
		return f.(*protoFieldList), nil
	}
	_, custom := reflect.TypeOf(m.Interface()).MethodByName("MarshalJSONPB")
	if custom || md.Syntax() != protoreflect.Proto3 || md.ExtensionRanges().Len() > 0 ||
		strings.HasPrefix(string(md.FullName()), "google.protobuf.") {
		return nil, errUnsupported
	}
	fds := md.Fields()
	names := make([]string, fds.Len())
	byName := make(map[string]protoreflect.FieldDescriptor, fds.Len())
	for i := range fds.Len() {
		names[i] = fds.Get(i).JSONName()
		byName[names[i]] = fds.Get(i)
	}
	if len(byName) < len(names) || !sortKeys(names) {
		return nil, errUnsupported
	}
	list := &protoFieldList{place: map[protoreflect.FieldNumber]int{}}
	for i, name := range names {
		list.fields = append(list.fields, byName[name])
		list.place[byName[name].Number()] = i
	}
	protoFieldLists.Store(md, list)
	return list, nil
}

func encodeProtoValue(w *yamlWriter, fd protoreflect.FieldDescriptor, v protoreflect.Value) error {
	switch {
	case fd.IsList():
		if err := w.beginSeq(); err != nil {
			return err
		}
		for i, l := 0, v.List(); i < l.Len(); i++ {
			if err := encodeProtoSingular(w, fd, l.Get(i)); err != nil {
				return err
			}
		}
		w.end()
		return nil
	case fd.IsMap():
		entries := map[string]protoreflect.Value{}
		var keys []string
		v.Map().Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
			s := protoMapKey(k)
			keys = append(keys, s)
			entries[s] = v
			return true
		})
		if !sortKeys(keys) {
			return errUnsupported
		}
		if err := w.beginMap(); err != nil {
			return err
		}
		for _, k := range keys {
			if err := w.setKey(k); err != nil {
				return err
			}
			if err := encodeProtoSingular(w, fd.MapValue(), entries[k]); err != nil {
				return err
			}
		}
		w.end()
		return nil
	}
	return encodeProtoSingular(w, fd, v)
}

// protoMapKey is a map key as jsonpb prints it (fmt.Sprint of a string, bool or integer).
func protoMapKey(k protoreflect.MapKey) string {
	switch x := k.Interface().(type) {
	case string:
		return x
	case bool:
		return strconv.FormatBool(x)
	case int32, int64:
		return strconv.FormatInt(k.Int(), 10)
	default:
		return strconv.FormatUint(k.Uint(), 10)
	}
}

func encodeProtoSingular(w *yamlWriter, fd protoreflect.FieldDescriptor, v protoreflect.Value) error {
	switch fd.Kind() {
	case protoreflect.MessageKind:
		return encodeMessage(w, reflect.ValueOf(v.Message().Interface()))
	case protoreflect.EnumKind:
		if fd.Enum().FullName() == "google.protobuf.NullValue" {
			return errUnsupported
		}
		if vd := fd.Enum().Values().ByNumber(v.Enum()); vd != nil {
			return w.str(string(vd.Name()))
		}
		return w.literal(strconv.Itoa(int(v.Enum())))
	case protoreflect.StringKind:
		return w.str(v.String())
	case protoreflect.BoolKind:
		return w.literal(strconv.FormatBool(v.Bool()))
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return w.literal(strconv.FormatInt(v.Int(), 10))
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return w.literal(strconv.FormatUint(v.Uint(), 10))
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return w.str(strconv.FormatInt(v.Int(), 10)) // jsonpb quotes 64-bit integers
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return w.str(strconv.FormatUint(v.Uint(), 10))
	}
	return errUnsupported
}

// encodeJSON writes what a MarshalJSON method returned, as ToUnstructured reads it: integers as
// int64 (others are floats there, so not copied), objects in yaml.v2's order of their keys. The
// common small values (an IntOrString, a Time) skip the JSON decoder.
func encodeJSON(w *yamlWriter, data []byte) error {
	switch s := string(data); {
	case s == "null":
		return w.null()
	case s == "true", s == "false":
		return w.literal(s)
	case jsonInteger(s):
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return errUnsupported
		}
		return w.literal(strconv.FormatInt(n, 10))
	case len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' && plainJSONString(s[1:len(s)-1]):
		return w.str(s[1 : len(s)-1])
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errUnsupported // more than one value: encoding/json refuses it
	}
	return encodeAny(w, v)
}

// jsonInteger reports whether s is a JSON number without fraction or exponent.
func jsonInteger(s string) bool {
	digits := strings.TrimPrefix(s, "-")
	if digits == "" || digits[0] == '0' && len(digits) > 1 {
		return false
	}
	for i := range len(digits) {
		if digits[i] < '0' || digits[i] > '9' {
			return false
		}
	}
	return true
}

// plainJSONString reports whether s, between quotes, is a JSON string that means itself: no
// escape, no control character, valid UTF-8.
func plainJSONString(s string) bool {
	for i := range len(s) {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' {
			return false
		}
	}
	return utf8.ValidString(s)
}

func encodeAny(w *yamlWriter, v any) error {
	switch v := v.(type) {
	case nil:
		return w.null()
	case bool:
		return w.literal(strconv.FormatBool(v))
	case string:
		return w.str(v)
	case json.Number:
		n, err := strconv.ParseInt(string(v), 10, 64)
		if !jsonInteger(string(v)) || err != nil {
			return errUnsupported // a float in unstructured
		}
		return w.literal(strconv.FormatInt(n, 10))
	case []any:
		if err := w.beginSeq(); err != nil {
			return err
		}
		for _, item := range v {
			if err := encodeAny(w, item); err != nil {
				return err
			}
		}
		w.end()
		return nil
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		if !sortKeys(keys) {
			return errUnsupported
		}
		if err := w.beginMap(); err != nil {
			return err
		}
		for _, k := range keys {
			if err := w.setKey(k); err != nil {
				return err
			}
			if err := encodeAny(w, v[k]); err != nil {
				return err
			}
		}
		w.end()
		return nil
	}
	return errUnsupported
}
