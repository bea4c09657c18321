package traffic

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"
)

// Summary says in one line what the report found: the refused flows (up to limit, with their
// counts), or that every observed flow is allowed.
func (r *Report) Summary(limit int) string {
	refused := append(append([]Finding{}, r.Refused...), r.Plaintext...)
	if len(refused) == 0 {
		return fmt.Sprintf("all %d observed connections are allowed", r.Flows)
	}
	var parts []string
	for i, f := range refused {
		if i == limit {
			parts = append(parts, fmt.Sprintf("and %d more", len(refused)-limit))
			break
		}
		parts = append(parts, fmt.Sprintf("%s (%s, refused at %s by %s)", f, count(f.Flow), f.Layer, f.By))
	}
	return fmt.Sprintf("%d of %d observed connections would be refused: %s", len(refused), r.Flows, strings.Join(parts, "; "))
}

// Text prints the report for a terminal.
func (r *Report) Text() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%d connections observed, %d allowed, %d refused, %d plain text refused by STRICT mTLS, %d undecided, %d declared edges unused\n",
		r.Flows, r.Allowed, len(r.Refused), len(r.Plaintext), len(r.Undecided), len(r.Unused))
	section := func(title string, findings []Finding) {
		if len(findings) == 0 {
			return
		}
		fmt.Fprintf(&b, "\n%s:\n", title)
		w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		for _, f := range findings {
			fmt.Fprintf(w, "  %s\t%s\t%s\t%s\t%s\n", f, count(f.Flow), lastSeen(f.Flow), f.Layer, strings.TrimSpace(f.By+" "+paren(f.Detail)))
		}
		_ = w.Flush()
	}
	section("Would be refused", r.Refused)
	section("Plain text refused by STRICT mutual TLS", r.Plaintext)
	section("Undecided (the source says too little)", r.Undecided)
	dryRun(&b, r.DryRun, "  %s\n")
	if len(r.Unused) > 0 {
		fmt.Fprintf(&b, "\nDeclared but unused (candidates to remove):\n")
		for _, e := range r.Unused {
			fmt.Fprintf(&b, "  %s\n", e)
		}
	}
	return b.Bytes()
}

// Markdown prints the report for a pull request comment.
func (r *Report) Markdown() []byte {
	var b bytes.Buffer
	verdict := "nothing observed would be refused"
	if !r.Covered() {
		n := len(r.Refused) + len(r.Plaintext)
		verdict = fmt.Sprintf("**%d observed %s would be refused**", n, map[bool]string{true: "connection", false: "connections"}[n == 1])
	}
	fmt.Fprintf(&b, "**servicegraph audit**: %s (%d observed, %d allowed, %d undecided, %d declared edges unused)\n\n",
		verdict, r.Flows, r.Allowed, len(r.Undecided), len(r.Unused))
	table := func(title string, findings []Finding) {
		if len(findings) == 0 {
			return
		}
		fmt.Fprintf(&b, "%s\n\n| connection | seen | last seen | layer | decided by |\n| --- | --- | --- | --- | --- |\n", title)
		for _, f := range findings {
			fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s |\n", f, count(f.Flow), lastSeen(f.Flow), f.Layer, strings.ReplaceAll(f.By, "|", "\\|"))
		}
		b.WriteString("\n")
	}
	table("Would be refused:", r.Refused)
	table("Plain text refused by STRICT mutual TLS:", r.Plaintext)
	table("Undecided:", r.Undecided)
	dryRun(&b, r.DryRun, "- %s\n")
	if len(r.Unused) > 0 {
		b.WriteString("Declared but unused (candidates to remove):\n\n")
		for _, e := range r.Unused {
			fmt.Fprintf(&b, "- `%s`\n", e)
		}
	}
	return b.Bytes()
}

// JSON prints the report for tools.
func (r *Report) JSON() []byte {
	type finding struct {
		Connection string  `json:"connection"`
		Count      float64 `json:"count"`
		LastSeen   string  `json:"lastSeen,omitempty"`
		Security   string  `json:"security,omitempty"`
		Layer      string  `json:"layer,omitempty"`
		By         string  `json:"by,omitempty"`
		Detail     string  `json:"detail,omitempty"`
	}
	conv := func(fs []Finding) []finding {
		out := []finding{}
		for _, f := range fs {
			out = append(out, finding{Connection: f.String(), Count: f.Flow.Count, LastSeen: lastSeen(f.Flow), Security: string(f.Flow.Security),
				Layer: f.Layer, By: f.By, Detail: f.Detail})
		}
		return out
	}
	unused := r.Unused
	if unused == nil {
		unused = []string{}
	}
	out, _ := json.MarshalIndent(struct {
		Covered   bool      `json:"covered"`
		Observed  int       `json:"observed"`
		Allowed   int       `json:"allowed"`
		Refused   []finding `json:"refused"`
		Plaintext []finding `json:"plaintext"`
		Undecided []finding `json:"undecided"`
		Unused    []string  `json:"unused"`
		DryRun    []finding `json:"istioDryRun"`
	}{r.Covered(), r.Flows, r.Allowed, conv(r.Refused), conv(r.Plaintext), conv(r.Undecided), unused, conv(r.DryRun)}, "", "  ")
	return append(out, '\n')
}

func lastSeen(f Flow) string {
	if f.Last.IsZero() {
		return "-"
	}
	return f.Last.UTC().Format(time.RFC3339)
}

func paren(s string) string {
	if s == "" {
		return ""
	}
	return "(" + s + ")"
}

// dryRun lists what Istio's dry-run policies would have refused, one line each in format.
func dryRun(b *bytes.Buffer, findings []Finding, format string) {
	if len(findings) == 0 {
		return
	}
	b.WriteString("\nIstio's own dry-run (the policies applied now; no caller named; a cross-check, not part of the verdict):\n")
	for _, f := range findings {
		fmt.Fprintf(b, format, f.Detail)
	}
}
