package cli

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"sigs.k8s.io/yaml"

	"github.com/servicegraph/servicegraph-operator/internal/render"
)

// yamlToJSON is yaml.YAMLToJSON(raw): the JSON every command reads a document as. Most manifests
// are plain block YAML (mappings, sequences, one-line scalars, small flow collections), which
// readBlockYAML reads in one pass over the lines and writes as YAMLToJSON writes it (json.Marshal
// of the value: keys sorted, strings escaped by encoding/json), instead of yaml.v2 building maps
// of interfaces for YAMLToJSON to convert and marshal. Whatever it does not read exactly (anchors,
// tags, block and multi-line scalars, numbers but decimal integers, bools and nulls but true,
// false and null, a duplicate key, ...) is read by YAMLToJSON, errors included.
func yamlToJSON(raw []byte) ([]byte, error) {
	if v, ok := readBlockYAML(raw); ok {
		return v.appendJSON(nil), nil
	}
	return yaml.YAMLToJSON(raw)
}

// yamlValue is a value read from YAML: an object (keys and values), an array (items), a string
// (text) or a JSON literal (text: a decimal integer, true, false, null).
type yamlValue struct {
	kind   byte // 'o', 'a', 's' or 'l'
	text   string
	keys   []string
	values []*yamlValue
}

// blockLine is a line with content: its indentation and what follows it.
type blockLine struct {
	indent int
	text   string
}

type blockReader struct {
	lines []blockLine
	next  int
}

// readBlockYAML reads a document whose top level is a block mapping, or reports that it cannot.
func readBlockYAML(raw []byte) (*yamlValue, bool) {
	if !plainYAMLText(raw) {
		return nil, false
	}
	r := &blockReader{}
	for line := range strings.SplitSeq(string(raw), "\n") {
		text := strings.TrimLeft(line, " ")
		if text == "" || text[0] == '#' {
			continue
		}
		r.lines = append(r.lines, blockLine{indent: len(line) - len(text), text: strings.TrimRight(text, " ")})
	}
	if len(r.lines) == 0 || r.lines[0].indent != 0 || isItem(r.lines[0].text) {
		return nil, false
	}
	v, ok := r.mapping(0)
	return v, ok && r.next == len(r.lines)
}

// plainYAMLText rules out what the line reader does not handle: tabs, carriage returns, characters
// YAML refuses or reads as line breaks, a byte-order mark, directives and document markers, and
// lines longer than yaml.v2's simple keys may be (1,024 characters; a nesting as deep as its limit
// of 10,000 levels needs a longer line too).
func plainYAMLText(raw []byte) bool {
	if !utf8.Valid(raw) || bytes.HasPrefix(raw, []byte("\ufeff")) || bytes.HasPrefix(raw, []byte("%")) ||
		bytes.Contains(raw, []byte("\n%")) || bytes.Contains(raw, []byte("\n...")) || bytes.HasPrefix(raw, []byte("...")) {
		return false
	}
	for line := range bytes.SplitSeq(raw, []byte("\n")) {
		if len(line) > maxSimpleKey {
			return false
		}
	}
	for _, r := range string(raw) {
		switch {
		case r == '\n', r >= 0x20 && r < 0x7f, r >= 0xa0 && r <= 0xd7ff && r != 0x2028 && r != 0x2029,
			r >= 0xe000 && r <= 0xfffd && r != 0xfeff, r >= 0x10000:
		default:
			return false
		}
	}
	return true
}

// maxSimpleKey is the longest line the line reader reads (in bytes, which bounds the characters).
const maxSimpleKey = 1024

func isItem(text string) bool { return text == "-" || strings.HasPrefix(text, "- ") }

// mapping reads the block mapping whose keys are at column col.
func (r *blockReader) mapping(col int) (*yamlValue, bool) {
	v := &yamlValue{kind: 'o'}
	for r.next < len(r.lines) && r.lines[r.next].indent == col && !isItem(r.lines[r.next].text) {
		line := r.lines[r.next]
		key, rest, ok := splitKey(line.text)
		if !ok || slices.Contains(v.keys, key) { // yaml.v2 keeps the last of duplicate keys
			return nil, false
		}
		r.next++
		var value *yamlValue
		if rest == "" { // the value is the block below: more indented, or a sequence at col
			if r.next == len(r.lines) {
				return nil, false // a null
			}
			switch below := r.lines[r.next]; {
			case below.indent > col:
				value, ok = r.node(below.indent)
			case below.indent == col && isItem(below.text):
				value, ok = r.sequence(col)
			default:
				ok = false
			}
		} else {
			value, ok = r.inline(rest, col)
		}
		if !ok {
			return nil, false
		}
		v.keys, v.values = append(v.keys, key), append(v.values, value)
	}
	if r.next < len(r.lines) && r.lines[r.next].indent > col {
		return nil, false // a line indented as nothing above it is
	}
	return v, true
}

// sequence reads the block sequence whose dashes are at column col.
func (r *blockReader) sequence(col int) (*yamlValue, bool) {
	v := &yamlValue{kind: 'a'}
	for r.next < len(r.lines) && r.lines[r.next].indent == col && isItem(r.lines[r.next].text) {
		line := r.lines[r.next]
		rest := strings.TrimLeft(strings.TrimPrefix(line.text, "-"), " ")
		var item *yamlValue
		var ok bool
		switch _, _, isKey := splitKey(rest); {
		case rest == "":
			return nil, false // a null, or an item below its dash
		case isItem(rest) || isKey: // "- - x" or "- key: value": the item starts on the dash's line
			r.lines[r.next] = blockLine{indent: col + len(line.text) - len(rest), text: rest}
			item, ok = r.node(r.lines[r.next].indent)
		default:
			r.next++
			item, ok = r.inline(rest, col)
		}
		if !ok {
			return nil, false
		}
		v.values = append(v.values, item)
	}
	return v, true
}

// node reads the mapping or sequence starting at the current line, at column col.
func (r *blockReader) node(col int) (*yamlValue, bool) {
	if isItem(r.lines[r.next].text) {
		return r.sequence(col)
	}
	return r.mapping(col)
}

// inline reads a value that must end on its line (the line before the next one, which must not
// be indented past col: a plain scalar would continue there).
func (r *blockReader) inline(text string, col int) (*yamlValue, bool) {
	var v *yamlValue
	var rest string
	var ok bool
	if text[0] == '{' || text[0] == '[' {
		v, rest, ok = readFlow(text)
	} else {
		v, rest, ok = readScalar(text, false)
	}
	if !ok || rest != "" && rest[0] != '#' || r.next < len(r.lines) && r.lines[r.next].indent > col {
		return nil, false
	}
	return v, true
}

// splitKey splits "key: rest" or "key:" into the key and the rest (without the comment of an
// empty value).
func splitKey(text string) (key, rest string, ok bool) {
	i := strings.IndexByte(text, ':')
	if i <= 0 || i+1 < len(text) && text[i+1] != ' ' {
		return "", "", false
	}
	key, rest = text[:i], strings.TrimLeft(text[i+1:], " ")
	if strings.HasPrefix(rest, "#") {
		rest = ""
	}
	k, after, ok := readScalar(key, true)
	if !ok || after != "" || !plainKey(k) {
		return "", "", false
	}
	return k.text, rest, true
}

// plainKey reports whether a scalar read from text is a key the reader takes: a string of letters,
// digits and "_./-" (ASCII, so sorted by bytes as encoding/json sorts it), short enough for
// yaml.v2's limit on a key, or a decimal integer (which YAMLToJSON writes as the same digits).
func plainKey(k *yamlValue) bool {
	switch {
	case k.kind == 'l':
		return k.text != "true" && k.text != "false" && k.text != "null"
	case k.kind != 's' || k.text == "" || len(k.text) > 1000:
		return false
	}
	for i := range len(k.text) {
		if c := k.text[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("_./-", c) >= 0) {
			return false
		}
	}
	return true
}

// readScalar reads a scalar at the start of text and returns the rest after it and its spaces. In
// flow context (inFlow) a plain scalar also ends at ',', ']', '}' and ':'; in a block, at " #" or
// the end of the line, and must hold no ": ". Plain scalars are decimal integers (without leading
// zeros, as JSON numbers), true, false, null, or strings starting with an ASCII letter, '_' or '/'
// that yaml.v2 resolves to no other type.
func readScalar(text string, inFlow bool) (*yamlValue, string, bool) {
	switch text[0] {
	case '\'':
		end := strings.Index(strings.ReplaceAll(text[1:], "''", "\x00\x00"), "'")
		if end < 0 {
			return nil, "", false
		}
		return &yamlValue{kind: 's', text: strings.ReplaceAll(text[1:1+end], "''", "'")}, strings.TrimLeft(text[end+2:], " "), true
	case '"':
		end := strings.IndexByte(text[1:], '"')
		if end < 0 || strings.IndexByte(text[1:1+end], '\\') >= 0 {
			return nil, "", false
		}
		return &yamlValue{kind: 's', text: text[1 : 1+end]}, strings.TrimLeft(text[end+2:], " "), true
	}
	end := len(text)
	if i := strings.Index(text, " #"); i >= 0 {
		end = i
	}
	if inFlow {
		if i := strings.IndexAny(text, ",?[]{}:#"); i >= 0 && i < end { // where yaml.v2 ends it, or refuses it

			end = i
		}
	} else if strings.Contains(text[:end], ": ") || strings.HasSuffix(text[:end], ":") {
		return nil, "", false
	}
	s, rest := strings.TrimRight(text[:end], " "), strings.TrimLeft(text[end:], " ")
	if s == "" {
		return nil, "", false
	}
	switch c := s[0]; {
	case s == "true", s == "false", s == "null":
		return &yamlValue{kind: 'l', text: s}, rest, true
	case c >= '0' && c <= '9':
		if n, err := strconv.ParseInt(s, 10, 64); err == nil && (c != '0' || s == "0") {
			return &yamlValue{kind: 'l', text: strconv.FormatInt(n, 10)}, rest, true
		}
		if digitString(s) {
			return &yamlValue{kind: 's', text: s}, rest, true
		}
		return nil, "", false
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_', c == '/':
		if render.ResolvesToNonString(s) {
			return nil, "", false
		}
		return &yamlValue{kind: 's', text: s}, rest, true
	}
	return nil, "", false
}

// digitString reports whether yaml.v2 surely resolves a plain scalar starting with a digit to a
// string (a CIDR, an address): it is no timestamp (those start with four digits and '-'), and no
// integer or float in any of yaml.v2's forms, for it holds a character none of them has, or two
// dots.
func digitString(s string) bool {
	digits := len(s) - len(strings.TrimLeft(s, "0123456789"))
	if digits == 4 && len(s) > 4 && s[4] == '-' {
		return false
	}
	return strings.Count(s, ".") > 1 || strings.ContainsFunc(s, func(r rune) bool { return !strings.ContainsRune("0123456789_.+-eEoOxXbBaAcCdDfF", r) })
}

// readFlow reads a flow collection that ends on its line: {key: value, ...} or [value, ...], of
// scalars and flow collections.
func readFlow(text string) (*yamlValue, string, bool) {
	closing, v := byte(']'), &yamlValue{kind: 'a'}
	if text[0] == '{' {
		closing, v.kind = '}', 'o'
	}
	rest := strings.TrimLeft(text[1:], " ")
	for first := true; ; first = false {
		if rest == "" {
			return nil, "", false
		}
		if first && rest[0] == closing {
			return v, strings.TrimLeft(rest[1:], " "), true
		}
		if v.kind == 'o' {
			k, after, ok := readScalar(rest, true)
			if !ok || !plainKey(k) || !strings.HasPrefix(after, ": ") || slices.Contains(v.keys, k.text) {
				return nil, "", false
			}
			v.keys, rest = append(v.keys, k.text), strings.TrimLeft(after[1:], " ")
		}
		var item *yamlValue
		var ok bool
		if rest != "" && (rest[0] == '{' || rest[0] == '[') {
			item, rest, ok = readFlow(rest)
		} else if rest != "" {
			item, rest, ok = readScalar(rest, true)
		}
		if !ok {
			return nil, "", false
		}
		v.values = append(v.values, item)
		switch {
		case strings.HasPrefix(rest, ","):
			rest = strings.TrimLeft(rest[1:], " ")
			if rest != "" && rest[0] == closing {
				return nil, "", false // a trailing comma
			}
		case rest != "" && rest[0] == closing:
			return v, strings.TrimLeft(rest[1:], " "), true
		default:
			return nil, "", false
		}
	}
}

// appendJSON writes the value as json.Marshal writes the map, slice, string, integer, bool or nil
// it stands for: object keys sorted (they are ASCII, so byte order is encoding/json's), strings
// escaped as encoding/json escapes them.
func (v *yamlValue) appendJSON(out []byte) []byte {
	switch v.kind {
	case 'o':
		order := make([]int, len(v.keys))
		for i := range order {
			order[i] = i
		}
		slices.SortFunc(order, func(a, b int) int { return strings.Compare(v.keys[a], v.keys[b]) })
		out = append(out, '{')
		for n, i := range order {
			if n > 0 {
				out = append(out, ',')
			}
			out = append(appendJSONString(out, v.keys[i]), ':')
			out = v.values[i].appendJSON(out)
		}
		return append(out, '}')
	case 'a':
		out = append(out, '[')
		for i, item := range v.values {
			if i > 0 {
				out = append(out, ',')
			}
			out = item.appendJSON(out)
		}
		return append(out, ']')
	case 's':
		return appendJSONString(out, v.text)
	}
	return append(out, v.text...)
}

// appendJSONString writes s as encoding/json does: printable ASCII as is between quotes, but for
// the HTML characters it escapes (edges are written with "->"); anything else through json.Marshal
// itself.
func appendJSONString(out []byte, s string) []byte {
	for i := range len(s) {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			quoted, _ := json.Marshal(s)
			return append(out, quoted...)
		}
	}
	out = append(out, '"')
	for i := range len(s) {
		switch c := s[i]; c {
		case '<':
			out = append(out, `\u003c`...)
		case '>':
			out = append(out, `\u003e`...)
		case '&':
			out = append(out, `\u0026`...)
		default:
			out = append(out, c)
		}
	}
	return append(out, '"')
}
