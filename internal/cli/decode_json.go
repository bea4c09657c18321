package cli

import (
	"bytes"
	"encoding/json"
	"io"
	"reflect"
	"unicode/utf8"

	"sigs.k8s.io/yaml"

	"github.com/servicegraph/servicegraph-operator/internal/object"
)

// hasTemplate is unrenderedTemplate.Match(raw), without running the regular expression over a
// document that holds neither of the two-character openings every match starts with.
func hasTemplate(raw []byte) bool {
	return (bytes.Contains(raw, []byte("{{")) || bytes.Contains(raw, []byte("${"))) && unrenderedTemplate.Match(raw)
}

// unmarshalStrict is yaml.UnmarshalStrict(data, obj) for data in JSON as yaml.YAMLToJSON writes it
// (json.Marshal of a map: no duplicate key, numbers in Go's form), with encoding/json alone when
// that succeeds. yaml.UnmarshalStrict reads such JSON back through yaml.v2 and json.Marshal
// unchanged, except that it turns a number or a bool bound for a string field into a string (which
// encoding/json refuses), then decodes it with the same encoding/json decoder: a successful direct
// decode is its result. Data yaml.v2 would not read back as it is (see yamlReadsBack), and any
// error, go the way they always went, for the same object or the same message.
func unmarshalStrict(data []byte, obj object.Object) error {
	if yamlReadsBack(data) {
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if err := dec.Decode(obj); err == nil {
			if _, err := dec.Token(); err == io.EOF {
				return nil
			}
		}
		reflect.ValueOf(obj).Elem().SetZero() // decode the failed attempt away
	}
	return yaml.UnmarshalStrict(data, obj)
}

// yamlReadsBack reports whether yaml.v2 reads JSON data as JSON: every character printable and
// no line break to YAML (which folds U+0085, U+2028 and U+2029 in a quoted string; encoding/json
// writes the others escaped, and no whitespace), and no string long enough to break yaml.v2's
// 1,024-character limit on a key.
func yamlReadsBack(data []byte) bool {
	const maxString = 1000
	inString, escaped, start := false, false, 0
	for i := 0; i < len(data); {
		c := data[i]
		switch {
		case escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case c == '"':
			if inString && i-start > maxString {
				return false
			}
			inString, start = !inString, i
		}
		if c < utf8.RuneSelf {
			if c < 0x20 || c == 0x7f {
				return false
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune(data[i:])
		if n == 1 || r == 0x2028 || r == 0x2029 || !(r >= 0xa0 && r <= 0xd7ff || r >= 0xe000 && r <= 0xfffd || r >= 0x10000) {
			return false
		}
		i += n
	}
	return true
}
