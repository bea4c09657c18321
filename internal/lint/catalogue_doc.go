package lint

import (
	"fmt"
	"strings"
)

// RulesMarkdown is the catalogue as the README's Markdown table: one row per rule, sorted by ID,
// with its severity and summary. The catalogue is the one source: the README's table is generated
// from it (go test ./internal/cli -run TestREADMERules -update).
func RulesMarkdown() string {
	var b strings.Builder
	b.WriteString("| rule | severity | finds |\n| --- | --- | --- |\n")
	for _, r := range Rules() {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", r.ID, r.Severity, markdownCell(r.Summary))
	}
	return b.String()
}

// markdownCell escapes what Markdown would read as markup in plain text (a summary is also printed
// as is in text and SARIF): "|" ends a cell, "*" and "$" pairs emphasise or start math ("*",
// "cluster.local/*"), "<" starts HTML.
var markdownCell = strings.NewReplacer(`\`, `\\`, `|`, `\|`, `*`, `\*`, `$`, `\$`, `<`, `&lt;`).Replace
