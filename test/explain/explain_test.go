// Package explain holds `kubectl explain` to the API's documentation: every field of a
// ServiceGraph, explained by a real kubectl against a real API server, reads as whole lines.
package explain

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/servicegraph/servicegraph-operator/test/testenv"
)

// TestExplainReadsWhole explains every field `kubectl explain --recursive` lists and fails on a
// line kubectl was made to break early: kubectl wraps greedily, so in a description the next
// line's first word never fits on the line before it, unless the text itself held a line break
// there (a CRD description written as the doc comment's ~100-column lines, which kubectl wraps
// again at 80: every other line then holds a word or two).
func TestExplainReadsWhole(t *testing.T) {
	c, err := testenv.StartCluster(false)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Stop() }()
	ctx := context.Background()
	var tree string
	// The API server publishes a new CRD's OpenAPI schema a few seconds after it is established.
	for start := time.Now(); ; time.Sleep(time.Second) {
		if tree, err = c.Kubectl(ctx, "explain", "servicegraphs", "--recursive"); err == nil || time.Since(start) > time.Minute {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	paths := fieldPaths(tree)
	if len(paths) < 50 {
		t.Fatalf("kubectl explain --recursive listed %d fields, want the whole schema:\n%s", len(paths), tree)
	}
	var outputs []string
	for _, p := range append([]string{"servicegraphs"}, paths...) {
		out, err := c.Kubectl(ctx, "explain", p)
		if err != nil {
			t.Fatal(err)
		}
		outputs = append(outputs, out)
	}
	broken := 0
	for i, out := range outputs {
		for _, b := range brokenLines(out, explainWidth) {
			if broken++; broken <= 10 {
				t.Errorf("kubectl explain %s: a line broken mid-phrase:\n%s", append([]string{"servicegraphs"}, paths...)[i], b)
			}
		}
	}
	t.Logf("%d fields explained, %d lines broken mid-phrase", len(paths), broken)
}

// fieldPaths reads the field tree of `kubectl explain --recursive` (two spaces of indent per
// level under FIELDS:) into dotted paths.
func fieldPaths(tree string) []string {
	_, fields, ok := strings.Cut(tree, "FIELDS:\n")
	if !ok {
		return nil
	}
	var stack, out []string
	for _, line := range strings.Split(fields, "\n") {
		m := fieldLine.FindStringSubmatch(line)
		if m == nil {
			continue // an enum: line, a blank one
		}
		depth := len(m[1]) / 2
		stack = append(stack[:min(depth-1, len(stack))], m[2])
		out = append(out, "servicegraphs."+strings.Join(stack, "."))
	}
	return out
}

// fieldLine is a field of the recursive tree: its indent, its name, a tab and its type.
var fieldLine = regexp.MustCompile(`^((?:  )+)(\S+)\t<`)

// explainWidth is the width kubectl explain wraps descriptions at, indent included.
const explainWidth = 80

// field lines ("  name\t<type>") and their enum lines are not description text.
var notProse = regexp.MustCompile(`\t<|^\s*enum: `)

// brokenLines finds, in the DESCRIPTION and FIELDS sections of an explain output, each line of a
// description after which the next line of the same description (same indent) begins with a word
// that would have fit within width. A sentence's end followed by a capital is allowed: kubectl
// prints a list field's description and then its items' on the next line.
func brokenLines(out string, width int) []string {
	lines := strings.Split(out, "\n")
	var found []string
	section := ""
	for i := 0; i+1 < len(lines); i++ {
		line, next := lines[i], lines[i+1]
		if header.MatchString(line) {
			section = line
			continue
		}
		if section != "DESCRIPTION:" && section != "FIELDS:" || notProse.MatchString(line) || notProse.MatchString(next) ||
			strings.TrimSpace(line) == "" || strings.TrimSpace(next) == "" {
			continue
		}
		indent := len(line) - len(strings.TrimLeft(line, " "))
		if len(next)-len(strings.TrimLeft(next, " ")) != indent {
			continue
		}
		word := strings.Fields(next)[0]
		if strings.HasSuffix(line, ".") && unicode.IsUpper([]rune(word)[0]) {
			continue
		}
		if utf8.RuneCountInString(line)+1+utf8.RuneCountInString(word) <= width {
			found = append(found, fmt.Sprintf("%s\n%s", line, next))
		}
	}
	return found
}

// header is a section of kubectl explain's output: GROUP:, FIELD:, ENUM:, DESCRIPTION:, FIELDS:.
var header = regexp.MustCompile(`^[A-Z]+:`)
