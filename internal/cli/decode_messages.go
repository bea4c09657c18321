package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"
)

// guessKindAndName reads kind and metadata.name from a document that does not parse, for the
// message.
func guessKindAndName(data []byte) (kind, name string) {
	field := func(re string) string {
		if m := regexp.MustCompile(re).FindSubmatch(data); m != nil && !unrenderedTemplate.Match(m[1]) {
			return strings.Trim(string(m[1]), `"'`)
		}
		return ""
	}
	kind, name = field(`(?m)^kind:\s*(.+?)\s*$`), field(`(?m)^  name:\s*(.+?)\s*$`)
	if ns := field(`(?m)^  namespace:\s*(.+?)\s*$`); ns != "" && name != "" {
		name = ns + "/" + name
	}
	return kind, name
}

// yamlLine is the line number a YAML parser puts in its messages, counted from the document's
// first line.
var yamlLine = regexp.MustCompile(`^(?:yaml: )?(?:line|yaml: line) (\d+): `)

// fileLine is the file's line of a problem in a document: the parser's line counted from the
// file's start, else the document's first line.
func fileLine(raw rawDocument, err error) int {
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		n, _ := strconv.Atoi(m[1])
		return raw.start + n - 1
	}
	return raw.line
}

// readable drops what a decoder's message says about itself ("error unmarshaling JSON: while
// decoding JSON: json: ") and puts the line in the file's terms (fileLine has it).
func readable(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" && te.Type != nil {
		return fmt.Errorf("%s: %s where %s belongs", te.Field, article(te.Value), article(jsonType(te.Type.String())))
	}
	msg := err.Error()
	msg = yamlLine.ReplaceAllString(msg, "")
	for _, noise := range []string{"error converting YAML to JSON: ", "error unmarshaling JSON: ", "while decoding JSON: ", "json: ", "yaml: "} {
		msg = strings.ReplaceAll(msg, noise, "")
	}
	msg = goField.ReplaceAllStringFunc(msg, func(m string) string {
		g := goField.FindStringSubmatch(m)
		return fmt.Sprintf("%s: %s where %s belongs", g[2], article(g[1]), article(jsonType(g[3])))
	})
	return errors.New(msg)
}

// goField is encoding/json's message for a value of the wrong type, which names Go types.
var goField = regexp.MustCompile(`cannot unmarshal (\w+) into Go struct field \w+\.(\S+) of type (\S+)`)

// jsonType says a Go type as the YAML it takes.
func jsonType(goType string) string {
	switch {
	case strings.Contains(goType, "int") && !strings.Contains(goType, "IntOrString"):
		return "number"
	case strings.Contains(goType, "IntOrString"):
		return "number or name"
	case goType == "string":
		return "string"
	case goType == "bool":
		return "boolean"
	case strings.HasPrefix(goType, "[]"):
		return "list"
	case strings.HasPrefix(goType, "map"):
		return "mapping"
	}
	return "mapping"
}

func article(what string) string {
	if what == "array" {
		what = "list"
	}
	if what == "object" {
		what = "mapping"
	}
	if strings.ContainsAny(what[:1], "aeiou") {
		return "an " + what
	}
	return "a " + what
}

// untemplated is s, or nothing when s is a template's.
func untemplated(s string) string {
	if unrenderedTemplate.MatchString(s) {
		return ""
	}
	return s
}

// jsonValueKind names what a JSON value that is not an object is, for messages.
func jsonValueKind(data []byte) string {
	switch data[0] {
	case '[':
		return "a list"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	}
	return "a number"
}

// locateTypeError gives a type error that does not say its field the field's path. encoding/json
// says it for a plain field, but since Go 1.27 not for a value a custom UnmarshalJSON refuses (an
// IntOrString port given a list): the field is the first value of the refused JSON kind whose
// removal makes the error go away. data is the document in JSON, obj what it was decoded into.
func locateTypeError(data []byte, obj any, err error) error {
	var te *json.UnmarshalTypeError
	if !errors.As(err, &te) || te.Field != "" {
		return err
	}
	var doc any
	if json.Unmarshal(data, &doc) != nil {
		return err
	}
	refuses := func(candidate any) bool {
		b, mErr := json.Marshal(candidate)
		if mErr != nil {
			return true
		}
		var again *json.UnmarshalTypeError
		fresh := reflect.New(reflect.TypeOf(obj).Elem()).Interface()
		uErr := yaml.UnmarshalStrict(b, fresh)
		return errors.As(uErr, &again) && again.Value == te.Value && again.Type == te.Type
	}
	if path, ok := findRefused(doc, doc, nil, te.Value, refuses); ok {
		te.Field = strings.Join(path, ".")
	}
	return err
}

// findRefused walks the document, deepest values first, for a value of the JSON kind named (array,
// object, string, number, bool) whose removal from root makes refuses false, and returns its path
// of field names (list indices left out, as encoding/json writes a field).
func findRefused(root, node any, path []string, kind string, refuses func(any) bool) ([]string, bool) {
	switch n := node.(type) {
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(n)) {
			v := n[k]
			// Deepest first: removing a list that holds the value removes the value too.
			if p, ok := findRefused(root, v, append(path, k), kind, refuses); ok {
				return p, true
			}
			if jsonKind(v) == kind {
				delete(n, k)
				gone := !refuses(root)
				n[k] = v
				if gone {
					return append(slices.Clone(path), k), true
				}
			}
		}
	case []any:
		for _, v := range n {
			if p, ok := findRefused(root, v, path, kind, refuses); ok {
				return p, true
			}
		}
	}
	return nil, false
}

// jsonKind names a decoded JSON value's kind as encoding/json's errors do.
func jsonKind(v any) string {
	switch v.(type) {
	case map[string]any:
		return "object"
	case []any:
		return "array"
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "bool"
	}
	return ""
}
