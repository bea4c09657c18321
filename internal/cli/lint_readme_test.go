package cli

import (
	"bytes"
	"flag"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/servicegraph/servicegraph-operator/internal/lint"
)

const readmePath = "../../README.md"

// The README's rule table is lint.RulesMarkdown, between its markers: a rule added to the
// catalogue fails this test until the table is regenerated (go test ./internal/cli -run
// TestREADMERules -update rewrites it).
func TestREADMERules(t *testing.T) {
	const begin, end = "<!-- lint-rules:begin -->\n", "<!-- lint-rules:end -->"
	readme, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	before, rest, ok := bytes.Cut(readme, []byte(begin))
	table, after, ok2 := bytes.Cut(rest, []byte(end))
	if !ok || !ok2 {
		t.Fatalf("%s: no %q ... %q markers around the rule table", readmePath, strings.TrimSpace(begin), end)
	}
	want := lint.RulesMarkdown()
	if updating() {
		out := bytes.Join([][]byte{before, []byte(begin), []byte(want), []byte(end), after}, nil)
		if err := os.WriteFile(readmePath, out, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if diff := cmp.Diff(want, string(table)); diff != "" {
		t.Errorf("%s's rule table is not the catalogue's (-want +got; go test ./internal/cli -run TestREADMERules -update rewrites it):\n%s", readmePath, diff)
	}
}

// updating reads internal/golden's -update flag, which this package's tests register.
func updating() bool {
	f := flag.Lookup("update")
	if f == nil {
		return false
	}
	g, ok := f.Value.(flag.Getter)
	return ok && g.Get() == true
}

// --help and the README state lint's exit codes in the same words, and the code does what they
// say (TestLintExitCodes, TestLintNothingToLint): unreadable input is an IN001 error, exit 1; a
// wrong command line exits 2.
func TestLintExitCodesDocumented(t *testing.T) {
	_, _, help := run(t, "", "lint", "-h")
	readme, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	contract := strings.TrimSuffix(prose(lintExitCodes), ".")
	if !strings.Contains(prose(help), contract) {
		t.Errorf("lint -h does not say %q:\n%s", contract, help)
	}
	if !strings.Contains(prose(string(readme)), contract) {
		t.Errorf("%s does not say %q (backticks aside)", readmePath, contract)
	}
	if wrong := "2 on unreadable"; strings.Contains(prose(help), wrong) || strings.Contains(prose(string(readme)), wrong) {
		t.Errorf("--help or the README still says %q", wrong)
	}
}

var space = regexp.MustCompile(`\s+`)

// prose is text as read: case, line breaks and Markdown's backticks aside.
func prose(s string) string {
	return strings.ToLower(space.ReplaceAllString(strings.ReplaceAll(s, "`", ""), " "))
}
