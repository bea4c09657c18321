package render

import (
	"cmp"
	"encoding"
	"encoding/json"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"

	"google.golang.org/protobuf/reflect/protoreflect"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// The direct encoder walks a typed object the way encoding/json encodes it (field names and
// omitempty/omitzero from the json tags, embedded structs' fields promoted, MarshalJSON where a
// type has one) and feeds a yamlWriter, so that YAML prints an object without its JSON text, a
// map of it and yaml.v2's parse and print of that map: the figures are in test/bench's CLI row.
// Istio's specs are printed as their MarshalJSON (jsonpb) prints them: from their generated structs
// (protoplan.go), or through protobuf reflection (values.go).
// Whatever it does not cover exactly is errUnsupported, and the object takes the JSON path.

type encoderFunc func(w *yamlWriter, v reflect.Value) error

// encoders caches an encoder per type, as encoding/json does.
var encoders sync.Map // reflect.Type -> encoderFunc

var (
	jsonMarshalerType = reflect.TypeFor[json.Marshaler]()
	jsonNumberType    = reflect.TypeFor[json.Number]()
	textMarshalerType = reflect.TypeFor[encoding.TextMarshaler]()
	isZeroerType      = reflect.TypeFor[isZeroer]()
	protoMessageType  = reflect.TypeFor[protoreflect.ProtoMessage]()
	intOrStringType   = reflect.TypeFor[intstr.IntOrString]()
	stringMapType     = reflect.TypeFor[map[string]string]()
)

type isZeroer interface{ IsZero() bool }

func unsupported(*yamlWriter, reflect.Value) error { return errUnsupported }

func encoderOf(t reflect.Type) encoderFunc {
	if f, ok := encoders.Load(t); ok {
		return f.(encoderFunc)
	}
	// A recursive type meets itself while its encoder is built: it gets this indirection, which
	// waits for the encoder.
	var (
		wg sync.WaitGroup
		f  encoderFunc
	)
	wg.Add(1)
	fi, loaded := encoders.LoadOrStore(t, encoderFunc(func(w *yamlWriter, v reflect.Value) error {
		wg.Wait()
		return f(w, v)
	}))
	if loaded {
		return fi.(encoderFunc)
	}
	f = newEncoder(t)
	wg.Done()
	encoders.Store(t, f)
	return f
}

func newEncoder(t reflect.Type) encoderFunc {
	switch {
	case t == intOrStringType:
		return intOrStringEncoder
	case t.Kind() == reflect.Pointer && t.Elem() == intOrStringType: // not its MarshalJSON either
		return pointerEncoder(t)
	case t == stringMapType:
		return stringMapEncoder
	case t == jsonNumberType: // a string type that encoding/json writes as a number, or refuses
		return unsupported
	case t.Kind() == reflect.Interface:
		if t.Implements(jsonMarshalerType) || t.Implements(textMarshalerType) {
			return unsupported
		}
		return interfaceEncoder
	case t.Implements(jsonMarshalerType):
		return marshalerEncoder(t, false)
	case t.Kind() != reflect.Pointer && reflect.PointerTo(t).Implements(jsonMarshalerType):
		return marshalerEncoder(t, true)
	case t.Implements(textMarshalerType), reflect.PointerTo(t).Implements(textMarshalerType):
		return unsupported
	}
	switch t.Kind() {
	case reflect.Bool:
		return func(w *yamlWriter, v reflect.Value) error { return w.literal(strconv.FormatBool(v.Bool())) }
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return func(w *yamlWriter, v reflect.Value) error { return w.literal(strconv.FormatInt(v.Int(), 10)) }
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return func(w *yamlWriter, v reflect.Value) error {
			if v.Uint() > math.MaxInt64 { // unstructured would hold it as a float64
				return errUnsupported
			}
			return w.literal(strconv.FormatUint(v.Uint(), 10))
		}
	case reflect.String:
		return func(w *yamlWriter, v reflect.Value) error { return w.str(v.String()) }
	case reflect.Pointer:
		return pointerEncoder(t)
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 { // base64
			return unsupported
		}
		return sliceEncoder(t)
	case reflect.Map:
		return mapEncoder(t)
	case reflect.Struct:
		return structEncoder(t)
	}
	return unsupported // floats, arrays and what encoding/json refuses
}

// intOrStringEncoder writes what IntOrString.MarshalJSON returns (json.Marshal of the int32 or of
// the string; an error, so the JSON path, for another Type), without encoding/json: every
// NetworkPolicy port is one.
func intOrStringEncoder(w *yamlWriter, v reflect.Value) error {
	switch x := v.Interface().(intstr.IntOrString); x.Type {
	case intstr.Int:
		return w.literal(strconv.FormatInt(int64(x.IntVal), 10))
	case intstr.String:
		return w.str(x.StrVal)
	}
	return errUnsupported
}

// stringMapEncoder is mapEncoder for labels and annotations, without reflection.
func stringMapEncoder(w *yamlWriter, v reflect.Value) error {
	m := v.Interface().(map[string]string)
	if m == nil {
		return w.null()
	}
	var small [8]string // labels and selectors have a few keys: no allocation for them
	keys := small[:0]
	for k := range m {
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
		if err := w.str(m[k]); err != nil {
			return err
		}
	}
	w.end()
	return nil
}

func interfaceEncoder(w *yamlWriter, v reflect.Value) error {
	if v.IsNil() {
		return w.null()
	}
	e := v.Elem()
	return encoderOf(e.Type())(w, e)
}

// marshalerEncoder encodes a type with a MarshalJSON method, on its pointer when viaAddr (which,
// as for encoding/json, needs an addressable value). Istio's API types print themselves with
// jsonpb's default options (protoc-gen-jsonshim): encodeProto does the same without the text.
func marshalerEncoder(t reflect.Type, viaAddr bool) encoderFunc {
	pt := t
	if viaAddr {
		pt = reflect.PointerTo(t)
	}
	isProto := pt.Kind() == reflect.Pointer && pt.Implements(protoMessageType) &&
		strings.HasPrefix(pt.Elem().PkgPath(), "istio.io/api/")
	return func(w *yamlWriter, v reflect.Value) error {
		switch {
		case viaAddr && !v.CanAddr():
			return errUnsupported
		case viaAddr:
			v = v.Addr()
		case v.Kind() == reflect.Pointer && v.IsNil():
			return w.null()
		}
		if isProto {
			return encodeMessage(w, v)
		}
		data, err := v.Interface().(json.Marshaler).MarshalJSON()
		if err != nil {
			return err
		}
		return encodeJSON(w, data)
	}
}

func pointerEncoder(t reflect.Type) encoderFunc {
	elem := encoderOf(t.Elem())
	return func(w *yamlWriter, v reflect.Value) error {
		if v.IsNil() {
			return w.null()
		}
		return elem(w, v.Elem())
	}
}

func sliceEncoder(t reflect.Type) encoderFunc {
	elem := encoderOf(t.Elem())
	return func(w *yamlWriter, v reflect.Value) error {
		if v.IsNil() {
			return w.null()
		}
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

// mapEncoder encodes maps with string keys (labels, annotations); other keys are unsupported.
func mapEncoder(t reflect.Type) encoderFunc {
	if t.Key().Kind() != reflect.String || t.Key().Implements(textMarshalerType) || reflect.PointerTo(t.Key()).Implements(textMarshalerType) {
		return unsupported
	}
	elem := encoderOf(t.Elem())
	return func(w *yamlWriter, v reflect.Value) error {
		if v.IsNil() {
			return w.null()
		}
		return writeMap(w, v, elem)
	}
}

// field writes a struct field's key (rendered already when key is set) and its value.
func (w *yamlWriter) field(name, key string, enc encoderFunc, v reflect.Value) error {
	if key != "" {
		w.setRenderedKey(name, key)
	} else if err := w.setKey(name); err != nil {
		return err
	}
	return enc(w, v)
}

// writeMap writes a map with string keys in yaml.v2's key order, each value with elem.
func writeMap(w *yamlWriter, v reflect.Value, elem encoderFunc) error {
	entries := make([]mapEntry, 0, v.Len())
	for it := v.MapRange(); it.Next(); {
		entries = append(entries, mapEntry{it.Key().String(), it.Value()})
	}
	if !sortEntries(entries) {
		return errUnsupported
	}
	if err := w.beginMap(); err != nil {
		return err
	}
	for _, e := range entries {
		if err := w.setKey(e.key); err != nil {
			return err
		}
		if err := elem(w, e.value); err != nil {
			return err
		}
	}
	w.end()
	return nil
}

type mapEntry struct {
	key   string
	value reflect.Value
}

// sortEntries is sortKeys for a map's entries.
func sortEntries(entries []mapEntry) bool {
	slices.SortFunc(entries, func(a, b mapEntry) int { return yamlCompare(a.key, b.key) })
	for i := 1; i < len(entries); i++ {
		if !yamlLess(entries[i-1].key, entries[i].key) {
			return false
		}
	}
	return true
}

// field is a struct field as encoding/json encodes it.
type field struct {
	name      string
	key       string // name rendered, if plainly
	index     []int
	omitEmpty bool
	omitZero  func(reflect.Value) bool // nil without omitzero
	enc       encoderFunc
}

func structEncoder(t reflect.Type) encoderFunc {
	var fields []field
	if !structFields(t, nil, &fields) {
		return unsupported
	}
	names := make([]string, len(fields))
	byName := make(map[string]field, len(fields))
	for i, f := range fields {
		names[i] = f.name
		byName[f.name] = f
	}
	if len(byName) < len(fields) || !sortKeys(names) { // encoding/json's rules for clashing names are not copied
		return unsupported
	}
	for i, name := range names {
		fields[i] = byName[name]
	}
	return func(w *yamlWriter, v reflect.Value) error {
		if err := w.beginMap(); err != nil {
			return err
		}
		for _, f := range fields {
			fv := v.FieldByIndex(f.index)
			if f.omitEmpty && isEmptyValue(fv) || f.omitZero != nil && f.omitZero(fv) {
				continue
			}
			if err := w.field(f.name, f.key, f.enc, fv); err != nil {
				return err
			}
		}
		w.end()
		return nil
	}
}

// structFields lists the fields encoding/json encodes for t, the fields of embedded structs
// without a json name promoted, and reports whether it covers every field's case: an embedded
// pointer, an unexported embedded struct or an option other than omitempty and omitzero (",inline"
// only where encoding/json ignores it, on an embedded struct) are not copied.
func structFields(t reflect.Type, index []int, out *[]field) bool {
	for i := range t.NumField() {
		sf := t.Field(i)
		tag := sf.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		idx := append(append([]int(nil), index...), i)
		switch {
		case sf.Anonymous && !sf.IsExported() && sf.Type.Kind() != reflect.Struct && sf.Type.Kind() != reflect.Pointer:
			continue
		case sf.Anonymous && (!sf.IsExported() || sf.Type.Kind() == reflect.Pointer):
			return false
		case sf.Anonymous && name == "" && sf.Type.Kind() == reflect.Struct:
			if !structFields(sf.Type, idx, out) {
				return false
			}
			continue
		case !sf.IsExported():
			continue
		}
		f := field{name: cmp.Or(name, sf.Name), index: idx, enc: encoderOf(sf.Type)}
		f.key = plainKey(f.name)
		if !validName(f.name) {
			return false
		}
		for opt := range strings.SplitSeq(opts, ",") {
			switch opt {
			case "":
			case "omitempty":
				f.omitEmpty = true
			case "omitzero":
				if f.omitZero = zeroFunc(sf.Type); f.omitZero == nil {
					return false
				}
			case "inline":
				if !sf.Anonymous {
					return false
				}
			default:
				return false
			}
		}
		*out = append(*out, f)
	}
	return true
}

// validName accepts the json names the encoder is sure encoding/json uses as given.
func validName(s string) bool {
	for _, c := range s {
		if !(c < 0x80 && (isASCIILetter(byte(c)) || c >= '0' && c <= '9' || strings.ContainsRune("-_./", c))) {
			return false
		}
	}
	return s != ""
}

// isEmptyValue is encoding/json's omitempty test.
func isEmptyValue(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		return v.Len() == 0
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Interface, reflect.Pointer:
		return v.IsZero()
	}
	return false
}

// zeroFunc is encoding/json's omitzero test for type t: its IsZero method if it has one, else
// the zero value. An interface is not covered (nil).
func zeroFunc(t reflect.Type) func(reflect.Value) bool {
	switch {
	case t.Kind() == reflect.Interface:
		return nil
	case t.Kind() == reflect.Pointer && t.Implements(isZeroerType):
		return func(v reflect.Value) bool { return v.IsNil() || v.Interface().(isZeroer).IsZero() }
	case t.Implements(isZeroerType):
		return func(v reflect.Value) bool { return v.Interface().(isZeroer).IsZero() }
	case reflect.PointerTo(t).Implements(isZeroerType):
		return func(v reflect.Value) bool {
			if !v.CanAddr() {
				c := reflect.New(t).Elem()
				c.Set(v)
				v = c
			}
			return v.Addr().Interface().(isZeroer).IsZero()
		}
	}
	return reflect.Value.IsZero
}
