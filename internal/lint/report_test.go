package lint

import (
	"encoding/json"
	"strings"
	"testing"
)

// Notes are counted beside errors and warnings in every format, and SARIF gets each severity as
// its own level, for results and for every rule's default.
func TestReportNotes(t *testing.T) {
	r := Report{Objects: 3, Findings: []Finding{
		{Rule: "NP001", Severity: SeverityError, File: "a.yaml", Line: 1},
		{Rule: "NP002", Severity: SeverityWarning, File: "a.yaml", Line: 2},
		{Rule: "NP002", Severity: SeverityNote, File: "a.yaml", Line: 3},
		{Rule: "NP002", Severity: SeverityNote, File: "b.yaml", Line: 4},
	}}
	text := string(r.Text())
	if last := text[strings.LastIndex(strings.TrimSuffix(text, "\n"), "\n")+1:]; last != "1 error, 1 warning, 2 notes in 3 objects\n" {
		t.Errorf("summary line %q", last)
	}
	if !strings.Contains(text, "a.yaml:3: note NP002: ") {
		t.Errorf("no note line:\n%s", text)
	}

	data, err := r.JSON()
	if err != nil {
		t.Fatal(err)
	}
	var report struct {
		Summary map[string]any `json:"summary"`
	}
	if err := json.Unmarshal(data, &report); err != nil {
		t.Fatal(err)
	}
	for field, want := range map[string]float64{"objects": 3, "errors": 1, "warnings": 1, "notes": 2} {
		if got := report.Summary[field]; got != want {
			t.Errorf("summary.%s = %v, want %v", field, got, want)
		}
	}

	data, err = r.SARIF(func(f string) string { return f })
	if err != nil {
		t.Fatal(err)
	}
	var log struct {
		Runs []struct {
			Tool struct {
				Driver struct {
					Rules []struct {
						ID                   string
						DefaultConfiguration struct{ Level string }
					}
				}
			}
			Results []struct{ Level string }
		}
	}
	if err := json.Unmarshal(data, &log); err != nil {
		t.Fatal(err)
	}
	var levels []string
	for _, res := range log.Runs[0].Results {
		levels = append(levels, res.Level)
	}
	if got := strings.Join(levels, " "); got != "error warning note note" {
		t.Errorf("result levels %q", got)
	}
	rules := Rules()
	for i, rule := range log.Runs[0].Tool.Driver.Rules {
		if rule.ID != rules[i].ID || rule.DefaultConfiguration.Level != string(rules[i].Severity) {
			t.Errorf("rule %s: default level %q, want %q", rule.ID, rule.DefaultConfiguration.Level, rules[i].Severity)
		}
	}
}

// Every severity has a SARIF level (SARIF 2.1.0 knows none, note, warning and error), spelt as
// ours: a new severity without one fails here rather than in a user's run.
func TestSARIFLevels(t *testing.T) {
	for s := range severityRank {
		if got := sarifLevel(s); got != string(s) || !strings.Contains(" none note warning error ", " "+got+" ") {
			t.Errorf("sarifLevel(%q) = %q", s, got)
		}
	}
}
