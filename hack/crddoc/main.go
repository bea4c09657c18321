// Command crddoc rewrites the descriptions of the CRDs controller-gen writes so that kubectl
// explain shows them whole. controller-gen keeps each line break of a Go doc comment, and kubectl
// wraps every such line again at its own width, leaving every other line with a word or two; as
// one line per paragraph, the description is wrapped once, by kubectl, at whatever indent it has.
//
// Usage: go run ./hack/crddoc FILE...  (rewrites each file in place)
package main

import (
	"fmt"
	"os"
	"regexp"
	"strings"
)

func main() {
	for _, path := range os.Args[1:] {
		if err := rewrite(path); err != nil {
			fmt.Fprintf(os.Stderr, "crddoc: %s: %v\n", path, err)
			os.Exit(1)
		}
	}
}

func rewrite(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return os.WriteFile(path, []byte(Rewrite(string(data))), 0o644)
}

// blockStart is a description written as a literal block, as controller-gen writes every
// description of more than one line.
var blockStart = regexp.MustCompile(`^(\s*(?:- )?)description: \|-$`)

// Rewrite joins the lines of each paragraph of every literal-block description of a YAML text,
// and leaves every other line as it is (a literal block keeps its text verbatim, however long).
func Rewrite(text string) string {
	lines := strings.Split(text, "\n")
	var out []string
	for i := 0; i < len(lines); i++ {
		out = append(out, lines[i])
		m := blockStart.FindStringSubmatch(lines[i])
		if m == nil {
			continue
		}
		indent := strings.Repeat(" ", len(m[1])+2)
		var body []string
		for i+1 < len(lines) && (strings.HasPrefix(lines[i+1], indent) || strings.TrimSpace(lines[i+1]) == "") {
			i++
			body = append(body, strings.TrimPrefix(lines[i], indent))
		}
		for _, line := range strings.Split(Paragraphs(strings.Join(body, "\n")), "\n") {
			if line == "" {
				out = append(out, "")
				continue
			}
			out = append(out, indent+line)
		}
	}
	return strings.Join(out, "\n")
}

// listItem starts a line that must stay on its own: a list item or an indented block.
var listItem = regexp.MustCompile(`^(\s|[-*+] |\d+[.)] )`)

// Paragraphs joins the lines of each paragraph (paragraphs are separated by a blank line) into
// one, keeping the line breaks before list items and indented lines.
func Paragraphs(s string) string {
	lines := strings.Split(s, "\n")
	var b strings.Builder
	for i, line := range lines {
		switch {
		case i == 0:
		case line == "" || lines[i-1] == "" || listItem.MatchString(line):
			b.WriteString("\n")
		default:
			b.WriteString(" ")
		}
		b.WriteString(line)
	}
	return b.String()
}
