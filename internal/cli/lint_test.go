package cli

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var lintGoldenExt = map[string]string{"text": "txt", "json": "json", "sarif": "sarif"}

// The fixture directory bad/ has known findings of every rule; clean/ has none; mixed/ has a good
// exported list, an allow-all policy, a file that does not parse, an unrendered Helm template and
// kinds lint does not check: every good object is linted and the others are findings. Each
// format's output is a golden file, and JSON and SARIF are always valid JSON.
func TestLintGolden(t *testing.T) {
	for _, fixture := range []struct {
		dir  string
		code int
	}{{"bad", ExitFindings}, {"clean", ExitOK}, {"mixed", ExitFindings}} {
		for format, ext := range lintGoldenExt {
			t.Run(fixture.dir+" "+format, func(t *testing.T) {
				code, stdout, stderr := run(t, "", "lint", "-f", "testdata/lint/"+fixture.dir, "--format", format)
				if code != fixture.code || stderr != "" {
					t.Fatalf("exit %d (want %d), stderr:\n%s", code, fixture.code, stderr)
				}
				if format != "text" && !json.Valid([]byte(stdout)) {
					t.Errorf("%s output is not valid JSON:\n%s", format, stdout)
				}
				golden(t, "lint/"+fixture.dir+".golden."+ext, stdout)
			})
		}
	}
}

// sarifLog is what a code-scanning UI needs of a SARIF 2.1.0 log.
type sarifLog struct {
	Schema  string `json:"$schema"`
	Version string `json:"version"`
	Runs    []struct {
		Tool struct {
			Driver struct {
				Name           string `json:"name"`
				InformationURI string `json:"informationUri"`
				Rules          []struct {
					ID               string `json:"id"`
					ShortDescription struct {
						Text string `json:"text"`
					} `json:"shortDescription"`
					Help struct {
						Text string `json:"text"`
					} `json:"help"`
					DefaultConfiguration struct {
						Level string `json:"level"`
					} `json:"defaultConfiguration"`
				} `json:"rules"`
			} `json:"driver"`
		} `json:"tool"`
		Results []struct {
			RuleID    string `json:"ruleId"`
			RuleIndex int    `json:"ruleIndex"`
			Level     string `json:"level"`
			Message   struct {
				Text string `json:"text"`
			} `json:"message"`
			Locations []struct {
				PhysicalLocation struct {
					ArtifactLocation struct {
						URI string `json:"uri"`
					} `json:"artifactLocation"`
					Region struct {
						StartLine int `json:"startLine"`
					} `json:"region"`
				} `json:"physicalLocation"`
			} `json:"locations"`
		} `json:"results"`
	} `json:"runs"`
}

func lintSARIF(t *testing.T, path string) sarifLog {
	t.Helper()
	_, stdout, stderr := run(t, "", "lint", "-f", path, "--format", "sarif")
	var log sarifLog
	if err := json.Unmarshal([]byte(stdout), &log); err != nil {
		t.Fatalf("%v; stderr:\n%s", err, stderr)
	}
	return log
}

// The SARIF log has the fields SARIF 2.1.0 and code-scanning UIs require, and every result
// refers to a rule of the driver by ID and index.
func TestLintSARIFStructure(t *testing.T) {
	log := lintSARIF(t, "testdata/lint/bad")
	if log.Schema == "" || log.Version != "2.1.0" || len(log.Runs) != 1 {
		t.Fatalf("$schema %q, version %q, %d runs", log.Schema, log.Version, len(log.Runs))
	}
	driver, results := log.Runs[0].Tool.Driver, log.Runs[0].Results
	if driver.Name != "servicegraph" || !strings.HasPrefix(driver.InformationURI, "https://") || len(driver.Rules) == 0 {
		t.Errorf("driver %q, informationUri %q, %d rules", driver.Name, driver.InformationURI, len(driver.Rules))
	}
	for _, r := range driver.Rules {
		if r.ID == "" || r.ShortDescription.Text == "" || r.Help.Text == "" || !slices.Contains([]string{"error", "warning", "note"}, r.DefaultConfiguration.Level) {
			t.Errorf("incomplete rule %+v", r)
		}
	}
	if len(results) == 0 {
		t.Fatal("no results")
	}
	for _, r := range results {
		if r.RuleIndex < 0 || r.RuleIndex >= len(driver.Rules) || driver.Rules[r.RuleIndex].ID != r.RuleID {
			t.Errorf("result %s: ruleIndex %d does not point at its rule", r.RuleID, r.RuleIndex)
		}
		if !slices.Contains([]string{"error", "warning", "note"}, r.Level) || r.Message.Text == "" || len(r.Locations) != 1 {
			t.Errorf("result %s: level %q, message %q, %d locations", r.RuleID, r.Level, r.Message.Text, len(r.Locations))
			continue
		}
		loc := r.Locations[0].PhysicalLocation
		if !strings.HasPrefix(loc.ArtifactLocation.URI, "testdata/lint/bad/") || loc.Region.StartLine < 1 {
			t.Errorf("result %s: uri %q, startLine %d", r.RuleID, loc.ArtifactLocation.URI, loc.Region.StartLine)
		}
	}
}

// An absolute path becomes a URI relative to the working directory, as code scanning wants.
func TestLintSARIFRelativeURI(t *testing.T) {
	abs, err := filepath.Abs("testdata/lint/bad/netpol.yaml")
	if err != nil {
		t.Fatal(err)
	}
	log := lintSARIF(t, abs)
	for _, r := range log.Runs[0].Results {
		if uri := r.Locations[0].PhysicalLocation.ArtifactLocation.URI; uri != "testdata/lint/bad/netpol.yaml" {
			t.Errorf("uri %q", uri)
		}
	}
}

// permissiveMesh is a manifest with one warning (PA002) and no error.
const permissiveMesh = `apiVersion: security.istio.io/v1beta1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec: {mtls: {mode: PERMISSIVE}}
`

// Exit statuses are one scheme for every command: 0 clean, 1 a problem with the input (findings
// at --fail-on, which for lint include unreadable input and input with nothing to lint), 2 a wrong
// command line.
// Unreadable input is a finding with its file and file line, and the rest is still linted.
func TestLintExitCodes(t *testing.T) {
	tests := []struct {
		name           string
		stdin          string
		args           []string
		code           int
		stdout, stderr string
	}{
		{"errors", "", []string{"-f", "testdata/lint/bad"}, ExitFindings, "", ""},
		{"errors, --fail-on warning", "", []string{"-f", "testdata/lint/bad", "--fail-on", "warning"}, ExitFindings, "", ""},
		{"clean", "", []string{"-f", "testdata/lint/clean", "--fail-on=warning"}, ExitOK, "", ""},
		{"warnings only", permissiveMesh, []string{"-f", "-"}, ExitOK, "", ""},
		{"warnings only, --fail-on warning", permissiveMesh, []string{"-f", "-", "--fail-on", "warning"}, ExitFindings, "", ""},
		{"missing file", "", []string{"-f", "testdata/does-not-exist.yaml"}, ExitFindings,
			"testdata/does-not-exist.yaml: error IN001: stat testdata/does-not-exist.yaml: no such file or directory", ""},
		{"unparsable YAML", "", []string{"-f", "testdata/invalid/broken.yaml"}, ExitFindings,
			"testdata/invalid/broken.yaml:12: error IN001 ServiceGraph: did not find expected ',' or '}'", ""},
		{"unknown field", "", []string{"-f", "testdata/invalid/typo.yaml"}, ExitFindings,
			`testdata/invalid/typo.yaml:1: error IN001 ServiceGraph shop/typo: unknown field "edge"`, ""},
		{"bad separator", "a: 1\n--- b\n", []string{"-f", "-"}, ExitFindings, "<stdin>:3: error IN001: invalid YAML document separator: b", ""},
		{"an action Istio does not know", "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: p, namespace: shop}\nspec: {action: PERMIT}\n",
			[]string{"-f", "-"}, ExitFindings, `<stdin>:1: error IN001 AuthorizationPolicy shop/p: unknown value "\"PERMIT\"" for enum istio.security.v1beta1.AuthorizationPolicy.Action`, ""},
		{"a value of the wrong type", "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: a, namespace: b}\nspec:\n  podSelector: {}\n  ingress: [{ports: [{port: [1]}]}]\n",
			[]string{"-f", "-"}, ExitFindings, "<stdin>:1: error IN001 NetworkPolicy b/a: spec.ingress.ports.port: a list where a number belongs", ""},
		{"only other kinds", "", []string{"-f", "testdata/no-graph.yaml"}, ExitOK, "0 errors, 0 warnings, 0 notes in 0 objects; not checked: 1 ConfigMap", ""},
		{"nothing at all", "# only a comment\n", []string{"-f", "-"}, ExitFindings, "<stdin>: error IN001: nothing to lint: the file holds only comments", ""},
		{"no -f", "", nil, ExitUsage, "", "servicegraph lint: -f is required"},
		{"bad format", "", []string{"-f", "x", "--format", "xml"}, ExitUsage, "", `--format must be text, json or sarif, not "xml"`},
		{"bad fail-on", "", []string{"-f", "x", "--fail-on", "info"}, ExitUsage, "", `--fail-on: severity must be error, warning or note, not "info"`},
		{"bad workloads", "", []string{"-f", "x", "--workloads", "all"}, ExitUsage, "", `--workloads must be auto or complete, not "all"`},
		// A release split over files: the pods of the policy's namespace in this file are not the
		// ones it selects, which live in another file not given.
		{"workloads auto: a policy judged by its own file", releaseSplit, []string{"-f", "-"}, ExitOK, "WL001", ""},
		{"workloads auto: another file's pods", "", []string{"-f", "testdata/lint/split"}, ExitOK, "0 errors, 1 warning, 0 notes in 2 objects", ""}, // NP005 only,
		{"workloads complete", "", []string{"-f", "testdata/lint/split", "--workloads", "complete"}, ExitOK, "warning WL001 NetworkPolicy shop/api", ""},
		{"help", "", []string{"-h"}, ExitOK, "", "Usage: servicegraph lint"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := run(t, tc.stdin, append([]string{"lint"}, tc.args...)...)
			if code != tc.code || !strings.Contains(stderr, tc.stderr) || (tc.stderr == "" && stderr != "") || !strings.Contains(stdout, tc.stdout) {
				t.Errorf("exit %d (want %d), stdout:\n%s\nstderr:\n%s\nwant them to contain %q and %q", code, tc.code, stdout, stderr, tc.stdout, tc.stderr)
			}
		})
	}
}

// releaseSplit is one file with a policy and a workload of its namespace it does not select.
const releaseSplit = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: api, namespace: shop}
spec: {podSelector: {matchLabels: {app: api}}, policyTypes: [Ingress]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec: {template: {metadata: {labels: {app: web}}}}
`

// Documents start where their first line that is not blank or a comment is; the splitting is
// kubectl's (empty documents dropped, a comment after "---" allowed).
func TestSplitDocuments(t *testing.T) {
	in := "---\n# a comment\n\na: 1\n--- # second\nb: 2\n---\n---\n\n# only comments\n---\r\nc: 3"
	docs, err := splitDocuments([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	type doc struct {
		Line int
		Data string
	}
	var got []doc
	for _, d := range docs {
		got = append(got, doc{d.line, string(d.data)})
	}
	want := []doc{{4, "# a comment\n\na: 1\n"}, {6, "b: 2\n"}, {1, "\n# only comments\n"}, {12, "c: 3"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	docs, err = splitDocuments([]byte("a: 1\n--- b: 2\nc: 3\n"))
	if err == nil || len(docs) != 1 {
		t.Errorf("invalid separator: %d documents, error %v", len(docs), err)
	}
}
