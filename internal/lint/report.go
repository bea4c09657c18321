package lint

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Report is the outcome of one lint run, ready to print.
type Report struct {
	Findings []Finding
	// Objects counts the objects linted.
	Objects int
}

// Text is one line per finding, "FILE:LINE: SEVERITY RULE KIND NAMESPACE/NAME: MESSAGE (hint: HINT)",
// then a summary line.
func (r Report) Text() []byte {
	var b bytes.Buffer
	for _, f := range r.Findings {
		fmt.Fprintf(&b, "%s:%d: %s %s %s %s/%s: %s (hint: %s)\n", f.File, f.Line, f.Severity, f.Rule, f.Kind, f.Namespace, f.Name, f.Message, f.Hint)
	}
	fmt.Fprintf(&b, "%s, %s in %s\n", plural(r.count(SeverityError), "error"), plural(r.count(SeverityWarning), "warning"), plural(r.Objects, "object"))
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
}

// JSON is {"findings": [...], "summary": {"objects", "errors", "warnings"}}, indented.
func (r Report) JSON() ([]byte, error) {
	findings := r.Findings
	if findings == nil {
		findings = []Finding{}
	}
	return marshal(jsonReport{
		Findings: findings,
		Summary:  jsonCounts{Objects: r.Objects, Errors: r.count(SeverityError), Warnings: r.count(SeverityWarning)},
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
