package lint

import (
	"strings"
	"testing"
)

// Every rule of the catalogue is a row, in ID order, with its severity, and a summary cannot
// break the table or turn into markup.
func TestRulesMarkdown(t *testing.T) {
	got := RulesMarkdown()
	lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	rules := Rules()
	if len(lines) != len(rules)+2 || lines[0] != "| rule | severity | finds |" || lines[1] != "| --- | --- | --- |" {
		t.Fatalf("want a header and %d rows, got:\n%s", len(rules), got)
	}
	for i, r := range rules {
		if want := "| " + r.ID + " | " + string(r.Severity) + " | "; !strings.HasPrefix(lines[i+2], want) {
			t.Errorf("row %d: %q, want it to start with %q", i, lines[i+2], want)
		}
	}
	for _, tc := range []struct{ summary, want string }{
		{"plain text", "plain text"},
		{`principals "*", "cluster.local/*"`, `principals "\*", "cluster.local/\*"`},
		{"a | b", `a \| b`},
		{`${VAR} or $HOME`, `\${VAR} or \$HOME`},
		{"<script> and a\\b", `&lt;script> and a\\b`},
	} {
		if got := markdownCell(tc.summary); got != tc.want {
			t.Errorf("markdownCell(%q) = %q, want %q", tc.summary, got, tc.want)
		}
	}
}
