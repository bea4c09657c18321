package lint

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Report is the outcome of one lint run, ready to print.
type Report struct {
	Findings []Finding
	// Objects counts the objects linted.
	Objects int
	// Skipped counts the objects of kinds the linter does not check, by kind.
	Skipped map[string]int
}

// Text is one line per finding, "FILE:LINE: SEVERITY RULE KIND NAMESPACE/NAME: MESSAGE (hint: HINT)"
// (without the line or the object when a finding has none, as for a file that cannot be read), then
// a summary line.
func (r Report) Text() []byte {
	var b bytes.Buffer
	for _, f := range r.Findings {
		where, what := f.File, ""
		if f.Line > 0 {
			where = fmt.Sprintf("%s:%d", f.File, f.Line)
		}
		switch {
		case f.Kind != "" && f.Name != "" && f.Namespace == "":
			what = fmt.Sprintf(" %s %s", f.Kind, f.Name)
		case f.Kind != "" && f.Name != "":
			what = fmt.Sprintf(" %s %s/%s", f.Kind, f.Namespace, f.Name)
		case f.Kind != "":
			what = " " + f.Kind
		}
		fmt.Fprintf(&b, "%s: %s %s%s: %s (hint: %s)\n", where, f.Severity, f.Rule, what, f.Message, f.Hint)
	}
	fmt.Fprintf(&b, "%s, %s, %s in %s", plural(r.count(SeverityError), "error"), plural(r.count(SeverityWarning), "warning"),
		plural(r.count(SeverityNote), "note"), plural(r.Objects, "object"))
	if len(r.Skipped) > 0 {
		var kinds []string
		for _, k := range slices.Sorted(maps.Keys(r.Skipped)) {
			kinds = append(kinds, fmt.Sprintf("%d %s", r.Skipped[k], k))
		}
		fmt.Fprintf(&b, "; not checked: %s", strings.Join(kinds, ", "))
	}
	b.WriteString("\n")
	return b.Bytes()
}

func (r Report) count(s Severity) int {
	n := 0
	for _, f := range r.Findings {
		if f.Severity == s {
			n++
		}
	}
	return n
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// jsonReport is the JSON form: fields in a fixed order, findings always an array.
type jsonReport struct {
	Findings []Finding  `json:"findings"`
	Summary  jsonCounts `json:"summary"`
}

type jsonCounts struct {
	Objects  int `json:"objects"`
	Errors   int `json:"errors"`
	Warnings int `json:"warnings"`
	Notes    int `json:"notes"`
	// Skipped counts the objects of kinds lint does not check, by kind.
	Skipped map[string]int `json:"skipped"`
}

// JSON is {"findings": [...], "summary": {"objects", "errors", "warnings", "notes", "skipped"}},
// indented.
func (r Report) JSON() ([]byte, error) {
	findings, skipped := r.Findings, r.Skipped
	if findings == nil {
		findings = []Finding{}
	}
	if skipped == nil {
		skipped = map[string]int{}
	}
	return marshal(jsonReport{
		Findings: findings,
		Summary: jsonCounts{Objects: r.Objects, Errors: r.count(SeverityError), Warnings: r.count(SeverityWarning),
			Notes: r.count(SeverityNote), Skipped: skipped},
	})
}

// marshal indents, and leaves "<", ">" and "&" as they are: messages quote edges ("web->api").
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
