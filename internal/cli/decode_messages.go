package cli

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
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
