package render

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"google.golang.org/protobuf/reflect/protoreflect"
	"sigs.k8s.io/yaml"
)

// errUnsupported says that the direct encoder does not handle a value (a float, a multi-line
// string, a type that encoding/json treats in a way the encoder does not copy): the object is
// printed through JSON instead, whose output the direct encoder's must equal.
var errUnsupported = errors.New("render: not printed directly")

// yamlWriter prints, from a stream of events, the bytes that sigs.k8s.io/yaml.Marshal prints for
// the same value: go.yaml.in/yaml/v2's block style (two spaces an indentation level, a sequence in
// a mapping not indented, {} and [] for empty collections) and its choice of style for each
// scalar. Keys must come in yaml.v2's order (yamlLess). It never builds the value.
type yamlWriter struct {
	out    []byte
	frames []frame
	// col is the column after the last key written (its value starts one space after it).
	col int
	// rootKey says which of the keys that matter the last key of the document's mapping was.
	rootKey rootKey
	// scalars caches the rendering of strings that are not plainly printable (see scalar).
	scalars map[scalarKey]string
	// drop, when active, is where to go back to once the value being written ends: ToUnstructured
	// leaves a top-level status out of a desired state, so the writer writes it and takes it back
	// (an object whose status cannot be encoded fails the same way on both paths).
	drop dropMark
	// pending: the key nullKey (metadata.creationTimestamp) waits for its value, which writes it
	// unless it is null; ToUnstructured drops a null creationTimestamp.
	pending bool
	nullKey string
	// kind: the document has a kind, which ToUnstructured requires (an object without one fails
	// on the JSON path, with its message).
	kind bool
	// protoValues is encodeProto's stack of field values, reused from message to message; the
	// message being ranged over fills it from protoBase, by protoList, through protoField.
	protoValues []protoreflect.Value
	protoBase   int
	protoList   *protoFieldList
	protoErr    error
	protoField  func(protoreflect.FieldDescriptor, protoreflect.Value) bool
}

// frame is an open mapping or sequence. It holds no pointer: frames are written for every
// collection, and a pointer would cost a write barrier while the collector runs.
type frame struct {
	seq bool
	// inItem: the collection is a sequence item, so its first entry goes on the item's "- " line.
	inItem   bool
	metadata bool // the document's metadata
	indent   int
	n        int // entries written so far
}

type dropMark struct {
	active bool
	out, n int
}

type rootKey uint8

const (
	noRootKey rootKey = iota
	kindKey
	metadataKey
)

type scalarKey struct {
	s   string
	key bool
}

// maxDepth bounds nesting: deeper values (or a cycle) take the JSON path, which reports them.
const maxDepth = 200

// maxSimpleKey is the longest key yaml.v2 writes as "key: value"; a longer one becomes "? key".
const maxSimpleKey = 128

// bestWidth is the column past which yaml.v2 folds a scalar at a space.
const bestWidth = 80

func newYAMLWriter() *yamlWriter {
	w := &yamlWriter{scalars: map[scalarKey]string{}}
	w.protoField = w.rangeProtoField
	return w
}

// document appends obj's document to out with the direct encoder.
func (w *yamlWriter) document(out []byte, obj any) ([]byte, error) {
	w.out, w.frames, w.drop, w.pending, w.kind = out, w.frames[:0], dropMark{}, false, false
	v := reflect.ValueOf(obj)
	if err := encoderOf(v.Type())(w, v); err != nil {
		return nil, err
	}
	if !w.kind {
		return nil, errUnsupported
	}
	return w.out, nil
}

// setKey writes k as the key of the next value in the current mapping ("key:", after the
// mapping's own opening and the indentation).
func (w *yamlWriter) setKey(k string) error {
	if len(k) > maxSimpleKey {
		return errUnsupported
	}
	rendered, err := w.scalar(k, true)
	if err != nil {
		return err
	}
	w.setRenderedKey(k, rendered)
	return nil
}

// plainKey is the key a name is written as when it needs no quotes, "" otherwise: struct fields
// and message fields render their names once per type (see setRenderedKey).
func plainKey(name string) string {
	if plain(name) && len(name) <= maxSimpleKey {
		return name
	}
	return ""
}

// setRenderedKey is setKey for a key already rendered.
func (w *yamlWriter) setRenderedKey(k, rendered string) {
	w.rootKey = noRootKey
	switch depth := len(w.frames); {
	case depth == 1 && k == "status":
		w.drop = dropMark{active: true, out: len(w.out), n: w.frames[0].n}
	case depth == 1 && k == "kind":
		w.rootKey = kindKey
	case depth == 1 && k == "metadata":
		w.rootKey = metadataKey
	case depth == 2 && k == "creationTimestamp" && w.frames[1].metadata:
		w.nullKey, w.pending = rendered, true // written by the value, unless it is null
		return
	}
	w.writeKey(rendered)
}

func (w *yamlWriter) writeKey(rendered string) {
	f := w.entry()
	w.out = append(w.out, rendered...)
	w.out = append(w.out, ':')
	w.col = f.indent + len(rendered) + 2
}

// entry opens the next entry of the current collection: the collection's own opening before its
// first entry, then the indentation (but on a sequence item's line).
func (w *yamlWriter) entry() *frame {
	f := &w.frames[len(w.frames)-1]
	if f.n == 0 && len(w.frames) > 1 {
		if f.inItem {
			w.out = append(w.out, ' ')
		} else {
			w.out = append(w.out, '\n')
		}
	}
	if f.n > 0 || !f.inItem {
		w.out = append(w.out, spaces[:f.indent]...)
	}
	f.n++
	return f
}

// start writes what precedes a value ("-" in a sequence; a mapping's key is written) and returns
// the column the value starts at, after one space. The document itself has no prefix.
func (w *yamlWriter) start() int {
	switch {
	case len(w.frames) == 0:
		return 0
	case w.pending:
		w.pending = false
		w.writeKey(w.nullKey)
	}
	if f := &w.frames[len(w.frames)-1]; f.seq {
		w.entry()
		w.out = append(w.out, '-')
		return f.indent + 2
	}
	return w.col
}

// spaces is sliced for indentation, as deep as maxDepth allows.
var spaces = strings.Repeat(" ", 2*maxDepth+2)

func (w *yamlWriter) beginMap() error { return w.begin(false) }
func (w *yamlWriter) beginSeq() error { return w.begin(true) }

func (w *yamlWriter) begin(seq bool) error {
	if len(w.frames) >= maxDepth {
		return errUnsupported
	}
	w.start()
	f := frame{seq: seq, metadata: len(w.frames) == 1 && w.rootKey == metadataKey}
	if n := len(w.frames); n > 0 {
		parent := w.frames[n-1]
		f.inItem = parent.seq
		f.indent = parent.indent
		if seq == parent.seq || !seq { // a sequence in a mapping is not indented
			f.indent += 2
		}
	} else if seq {
		return errUnsupported // a document that is a list is no object
	}
	w.frames = append(w.frames, f)
	return nil
}

// end closes the innermost collection.
func (w *yamlWriter) end() {
	f := w.frames[len(w.frames)-1]
	w.frames = w.frames[:len(w.frames)-1]
	if f.n == 0 {
		empty := "{}\n"
		if f.seq {
			empty = "[]\n"
		}
		if len(w.frames) > 0 {
			w.out = append(w.out, ' ')
		}
		w.out = append(w.out, empty...)
	}
	w.done()
}

// done ends a value: a dropped one is taken back.
func (w *yamlWriter) done() {
	if w.drop.active && len(w.frames) == 1 {
		w.out = w.out[:w.drop.out]
		w.frames[0].n = w.drop.n
		w.drop = dropMark{}
	}
}

// literal writes a scalar that yaml.v2 prints as given: an integer, true, false.
func (w *yamlWriter) literal(s string) error {
	if len(w.frames) == 0 {
		return errUnsupported
	}
	w.start()
	w.out = append(w.out, ' ')
	w.out = append(w.out, s...)
	w.out = append(w.out, '\n')
	w.done()
	return nil
}

func (w *yamlWriter) null() error {
	if w.pending { // a null creationTimestamp: its key is left out with it
		w.pending = false
		return nil
	}
	return w.literal("null")
}

// str writes a string scalar.
func (w *yamlWriter) str(s string) error {
	if len(w.frames) == 0 {
		return errUnsupported
	}
	rendered, err := w.scalar(s, false)
	if err != nil {
		return err
	}
	if len(w.frames) == 1 && w.rootKey == kindKey && s != "" {
		w.kind = true
	}
	col := w.start()
	// yaml.v2 folds a scalar at a space past column 80; one that ends before it is never folded.
	if col+len(rendered) > bestWidth && strings.IndexByte(rendered, ' ') >= 0 {
		return errUnsupported
	}
	w.out = append(w.out, ' ')
	w.out = append(w.out, rendered...)
	w.out = append(w.out, '\n')
	w.done()
	return nil
}

// scalar renders a string as yaml.v2 prints it as a key or a value: plain when nothing could read
// it as another type or as YAML syntax, otherwise as yaml.v2 itself prints it alone (a probe,
// cached: such strings are few and repeat, as ports do). A value of a probe is printed the same
// in any block context but for folding, which str rules out; a key is never folded.
func (w *yamlWriter) scalar(s string, key bool) (string, error) {
	if plain(s) {
		return s, nil
	}
	if r, ok := w.scalars[scalarKey{s, key}]; ok {
		return r, nil
	}
	if !utf8.ValidString(s) { // encoding/json would have replaced the invalid bytes
		return "", errUnsupported
	}
	var r string
	if key {
		out, err := yaml.Marshal(map[string]int{s: 0})
		var ok bool
		if r, ok = strings.CutSuffix(string(out), ": 0\n"); err != nil || !ok {
			return "", errUnsupported
		}
	} else {
		out, err := yaml.Marshal([]string{s})
		var ok bool
		if r, ok = strings.CutPrefix(string(out), "- "); err != nil || !ok {
			return "", errUnsupported
		}
		r = strings.TrimSuffix(r, "\n")
	}
	// A literal block, a key too complex for one line, or a line break yaml.v2 writes as is (NEL,
	// the Unicode line and paragraph separators) followed by the indentation of its context.
	if strings.ContainsAny(r, "\n\u0085\u2028\u2029") {
		return "", errUnsupported
	}
	w.scalars[scalarKey{s, key}] = r
	return r, nil
}

// plain reports whether yaml.v2 prints s as is, in a block context, as a key or a value: it starts
// with a letter, '/' or '_' (so resolves to no number, and is no indicator), is none of the words
// that resolve to a bool or null, and holds only characters that are never YAML syntax there (':'
// only if another character follows it, so it is never followed by a space).
func plain(s string) bool {
	if s == "" || !(isASCIILetter(s[0]) || s[0] == '/' || s[0] == '_') || ResolvesToNonString(s) {
		return false
	}
	for i := 1; i < len(s); i++ {
		switch c := s[i]; {
		case isASCIILetter(c), c >= '0' && c <= '9':
		case strings.IndexByte("-._/*@=+~", c) >= 0:
		case c == ':' && i < len(s)-1:
		default:
			return false
		}
	}
	return true
}

func isASCIILetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// ResolvesToNonString reports whether s is one of the words starting with a letter that yaml.v2
// (so sigs.k8s.io/yaml) resolves to a bool or null when plain (its resolve table): the CLI's reader
// of manifests leaves them to yaml.v2.
func ResolvesToNonString(s string) bool {
	switch s {
	case "y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON",
		"n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF",
		"null", "Null", "NULL":
		return true
	}
	return false
}

// sortKeys sorts keys in yaml.v2's order and reports whether neighbours are strictly ordered (equal
// neighbours fall back). yaml.v2's order is not transitive for some keys (2 < 10 < 1a < 2): its own
// output then depends on map order and has no one form to match, and this check does not see it.
func sortKeys(keys []string) bool {
	slices.SortFunc(keys, yamlCompare)
	for i := 1; i < len(keys); i++ {
		if !yamlLess(keys[i-1], keys[i]) {
			return false
		}
	}
	return true
}

func yamlCompare(a, b string) int {
	switch {
	case yamlLess(a, b):
		return -1
	case yamlLess(b, a):
		return 1
	}
	return 0
}

// yamlLess is go.yaml.in/yaml/v2's order of two string keys (keyList.Less): rune by rune, letters
// after other characters, runs of digits compared as numbers. Most keys differ first at an ASCII
// letter or punctuation after an ASCII prefix, where the order needs no runes (asciiLess).
func yamlLess(a, b string) bool {
	if less, ok := asciiLess(a, b); ok {
		return less
	}
	return runeLess(a, b)
}

// asciiLess is runeLess where the strings agree on an ASCII prefix and then differ at two ASCII
// characters that are no digits (the only case where runeLess looks around the difference), or
// one ends; ok is false otherwise.
func asciiLess(a, b string) (less, ok bool) {
	i := 0
	for ; i < len(a) && i < len(b) && a[i] == b[i]; i++ {
		if a[i] >= utf8.RuneSelf {
			return false, false
		}
	}
	if i == len(a) || i == len(b) { // what remains of the longer one is one rune or more
		return len(a) < len(b), true
	}
	x, y := a[i], b[i]
	if x >= utf8.RuneSelf || y >= utf8.RuneSelf || x >= '0' && x <= '9' || y >= '0' && y <= '9' {
		return false, false
	}
	switch xl, yl := isASCIILetter(x), isASCIILetter(y); {
	case xl && yl:
		return x < y, true
	case xl || yl:
		return yl, true
	}
	return x < y, true
}

// runeLess is yaml.v2's keyList.Less for two strings, as it is written there.
func runeLess(a, b string) bool {
	if a == b {
		return false
	}
	ar, br := []rune(a), []rune(b)
	for i := 0; i < len(ar) && i < len(br); i++ {
		if ar[i] == br[i] {
			continue
		}
		al := unicode.IsLetter(ar[i])
		bl := unicode.IsLetter(br[i])
		if al && bl {
			return ar[i] < br[i]
		}
		if al || bl {
			return bl
		}
		var ai, bi int
		var an, bn int64
		if ar[i] == '0' || br[i] == '0' {
			for j := i - 1; j >= 0 && unicode.IsDigit(ar[j]); j-- {
				if ar[j] != '0' {
					an = 1
					bn = 1
					break
				}
			}
		}
		for ai = i; ai < len(ar) && unicode.IsDigit(ar[ai]); ai++ {
			an = an*10 + int64(ar[ai]-'0')
		}
		for bi = i; bi < len(br) && unicode.IsDigit(br[bi]); bi++ {
			bn = bn*10 + int64(br[bi]-'0')
		}
		if an != bn {
			return an < bn
		}
		if ai != bi {
			return ai < bi
		}
		return ar[i] < br[i]
	}
	return len(ar) < len(br)
}
