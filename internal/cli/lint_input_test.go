package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// lintFinding is what the three formats all say of a finding.
type lintFinding struct{ rule, file, kind, message string }

// lintAll runs lint in every format and returns, by format, the exit status, stdout, and the
// findings read back from it (JSON and SARIF must be valid, text must end with its summary line).
func lintAll(t *testing.T, stdin string, args ...string) map[string][]lintFinding {
	t.Helper()
	out := map[string][]lintFinding{}
	codes := map[int]bool{}
	for format := range lintGoldenExt {
		code, stdout, stderr := run(t, stdin, append([]string{"lint", "--format", format}, args...)...)
		codes[code] = true
		if stderr != "" || (code != ExitOK && code != ExitFindings) {
			t.Fatalf("%s: exit %d, stderr:\n%s", format, code, stderr)
		}
		switch format {
		case "text":
			lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
			if !strings.Contains(lines[len(lines)-1], " notes in ") {
				t.Errorf("text: no summary line:\n%s", stdout)
			}
			for _, l := range lines[:len(lines)-1] {
				out[format] = append(out[format], lintFinding{message: l})
			}
		case "json":
			var r struct {
				Findings []struct{ Rule, File, Kind, Message string }
			}
			if err := json.Unmarshal([]byte(stdout), &r); err != nil {
				t.Fatalf("json: %v:\n%s", err, stdout)
			}
			for _, f := range r.Findings {
				out[format] = append(out[format], lintFinding{f.Rule, f.File, f.Kind, f.Message})
			}
		case "sarif":
			var log sarifLog
			if err := json.Unmarshal([]byte(stdout), &log); err != nil || len(log.Runs) != 1 {
				t.Fatalf("sarif: %v:\n%s", err, stdout)
			}
			for _, r := range log.Runs[0].Results {
				out[format] = append(out[format], lintFinding{rule: r.RuleID, file: r.Locations[0].PhysicalLocation.ArtifactLocation.URI, message: r.Message.Text})
			}
		}
	}
	if len(codes) != 1 {
		t.Errorf("the formats exit differently: %v", codes)
	}
	return out
}

// A file with nothing to lint is an IN001 error naming the file and why, in every format (JSON and
// SARIF stay valid documents), on its own or inside a directory; exit 1.
func TestLintNothingToLint(t *testing.T) {
	tests := []struct{ name, file, content, reason string }{
		{"empty", "empty.yaml", "", "nothing to lint: the file is empty"},
		{"blank lines", "blank.yaml", "\n  \n", "nothing to lint: the file is empty"},
		{"only comments", "comments.yaml", "# a\n---\n# b\n", "nothing to lint: the file holds only comments"},
		{"empty JSON array", "empty.json", "[]", "not a Kubernetes object but a list"},
		{"JSON array", "numbers.json", "[1, 2]", "not a Kubernetes object but a list"},
		{"YAML sequence", "seq.yaml", "- a\n- b\n", "not a Kubernetes object but a list"},
		{"scalar", "scalar.yaml", "hello\n", "not a Kubernetes object but a string"},
		{"JSON object without kind", "object.json", `{"a": 1}`, "nothing to lint: no document has both apiVersion and kind"},
		{"kustomize parameters", "params.yaml", "namePrefix: prod-\nimages:\n- name: app\n  newTag: v1.2.3\n", "nothing to lint: no document has both apiVersion and kind"},
		{"kind without apiVersion", "kind.yaml", "kind: NetworkPolicy\nmetadata: {name: x}\n", "nothing to lint: no document has both apiVersion and kind"},
		{"envsubst values, no kind", "values.yaml", "image: ${IMAGE}\n", "nothing to lint: no document has both apiVersion and kind"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			file := filepath.Join(dir, tc.file)
			if err := os.WriteFile(file, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			// Alone, and in a directory beside a policy that is linted.
			if err := os.WriteFile(filepath.Join(dir, "policy.yaml"), []byte(defaultDeny), 0o644); err != nil {
				t.Fatal(err)
			}
			for _, path := range []string{file, dir} {
				got := lintAll(t, "", "-f", path)
				for format, findings := range got {
					if len(findings) != 1 {
						t.Fatalf("%s %s: want one finding, got %+v", path, format, findings)
					}
					f := findings[0]
					if !strings.Contains(f.message, tc.reason) {
						t.Errorf("%s %s: %q does not say %q", path, format, f.message, tc.reason)
					}
					switch format {
					case "text":
						if !strings.HasPrefix(f.message, file+":") || !strings.Contains(f.message, " error IN001") {
							t.Errorf("text: %q", f.message)
						}
					case "json":
						if f.rule != "IN001" || f.file != file {
							t.Errorf("json: %+v", f)
						}
					case "sarif":
						if f.rule != "IN001" || !strings.HasSuffix(f.file, tc.file) {
							t.Errorf("sarif: %+v", f)
						}
					}
				}
			}
			code, stdout, _ := run(t, "", "lint", "-f", dir)
			if code != ExitFindings || !strings.HasSuffix(stdout, "1 error, 0 warnings, 0 notes in 1 object\n") {
				t.Errorf("directory: exit %d, the policy beside it not linted:\n%s", code, stdout)
			}
		})
	}
}

// defaultDeny is a policy without findings.
const defaultDeny = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny, namespace: shop}
spec: {podSelector: {}, policyTypes: [Ingress, Egress]}
`

// Every run prints a report: a missing file or a directory without manifests is a finding, an
// empty list is a clean report; only a wrong command line prints nothing and exits 2.
func TestLintAlwaysReports(t *testing.T) {
	empty := t.TempDir()
	tests := []struct {
		name    string
		stdin   string
		args    []string
		code    int
		finding string
	}{
		{"missing file", "", []string{"-f", "testdata/does-not-exist.yaml"}, ExitFindings, "stat testdata/does-not-exist.yaml: no such file or directory"},
		{"directory without manifests", "", []string{"-f", empty}, ExitFindings, "nothing to lint: no *.yaml, *.yml or *.json file below it"},
		{"stdin empty", "", []string{"-f", "-"}, ExitFindings, "nothing to lint: the file is empty"},
		{"an empty list", "apiVersion: v1\nkind: List\nitems: []\n", []string{"-f", "-"}, ExitOK, ""},
		{"only other kinds", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n", []string{"-f", "-"}, ExitOK, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for format, findings := range lintAll(t, tc.stdin, tc.args...) {
				if tc.finding == "" && len(findings) > 0 || tc.finding != "" && (len(findings) != 1 || !strings.Contains(findings[0].message, tc.finding)) {
					t.Errorf("%s: %+v, want %q", format, findings, tc.finding)
				}
			}
			if code, _, _ := run(t, tc.stdin, append([]string{"lint"}, tc.args...)...); code != tc.code {
				t.Errorf("exit %d, want %d", code, tc.code)
			}
		})
	}
	for _, args := range [][]string{{"-f", "x", "--format", "xml"}, {"-f", "x", "--fail-on", "info"}, {"--format", "json"}, {"-f", "x", "extra"}} {
		code, stdout, stderr := run(t, "", append([]string{"lint"}, args...)...)
		if code != ExitUsage || stdout != "" || !strings.Contains(stderr, "Usage: servicegraph lint") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, stdout, stderr)
		}
	}
}

// A template matters in the kinds lint reads, or where it keeps a document from parsing; a
// document of another kind is skipped, template or not (a ConfigMap's script says ${VAR}), and so
// is a template in a workload's fields lint does not read (its containers' scripts).
func TestLintTemplatesOnlyInLintedKinds(t *testing.T) {
	tests := []struct {
		name    string
		doc     string
		in002   string // the kind IN002 names, "-" for none; "" for no IN002
		skipped map[string]int
		objects int
	}{
		{"ConfigMap with ${VAR}", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: env, namespace: shop}\ndata:\n  run.sh: echo ${HOME} ${PATH}\n",
			"", map[string]int{"ConfigMap": 1}, 0},
		{"ConfigMap with {{placeholders}} (Argo CD HA)", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: argocd-redis-ha-configmap}\ndata:\n  haproxy.cfg: \"server R0 {{ .Host }}:6379\"\n",
			"", map[string]int{"ConfigMap": 1}, 0},
		{"another group's NetworkPolicy", "apiVersion: crd.projectcalico.org/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: \"${NS}\"}\n",
			"", map[string]int{"NetworkPolicy": 1}, 0},
		{"NetworkPolicy with {{ .Values.x }}", "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: np, namespace: shop}\nspec:\n  podSelector: {matchLabels: {app: \"{{ .Values.x }}\"}}\n",
			"NetworkPolicy", nil, 0},
		{"NetworkPolicy with a templated apiVersion", "apiVersion: ${NP_API}\nkind: NetworkPolicy\nmetadata: {name: np, namespace: shop}\nspec: {podSelector: {}}\n",
			"NetworkPolicy", nil, 0},
		{"templated kind", "apiVersion: v1\nkind: \"{{ .Values.kind }}\"\nmetadata: {name: x}\n", "-", nil, 0},
		{"removed NetworkPolicy with ${VAR}", "apiVersion: extensions/v1beta1\nkind: NetworkPolicy\nmetadata: {name: np, namespace: \"${NS}\"}\nspec: {podSelector: {}}\n",
			"NetworkPolicy", nil, 0},
		{"workload: a script's ${VAR}", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: shop}\nspec:\n  template:\n    metadata: {labels: {app: web}}\n    spec: {containers: [{name: web, image: \"${IMAGE}\", args: [\"echo ${HOME}\"]}]}\n",
			"", nil, 1},
		{"workload: labels from a template", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: shop}\nspec:\n  template:\n    metadata: {labels: {app: \"{{ .Values.app }}\"}}\n",
			"Deployment", nil, 0},
		{"pod: labels from a template", "apiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: shop, labels: {app: \"${APP}\"}}\nspec: {containers: [{name: web, command: [\"sh\", \"-c\", \"echo ${HOME}\"]}]}\n",
			"Pod", nil, 0},
		{"role evidence: a templated caBundle", "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingWebhookConfiguration\nmetadata: {name: hook}\nwebhooks: [{name: x.example.com, clientConfig: {caBundle: \"${CA_BUNDLE}\", service: {name: hook, namespace: shop}}}]\n",
			"", nil, 1},
		{"unparsable with {{ if }}", "{{- if .Values.enabled }}\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n{{- end }}\n", "ConfigMap", nil, 0},
		{"a list: each item judged", "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: c}\n  data:\n    run.sh: echo ${HOME}\n- " +
			strings.ReplaceAll(strings.TrimSuffix(defaultDeny, "\n"), "\n", "\n  ") + "\n", "", map[string]int{"ConfigMap": 1}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := run(t, tc.doc, "lint", "-f", "-", "--format", "json")
			var r struct {
				Findings []struct{ Rule, Kind, Message string }
				Summary  struct {
					Objects int
					Skipped map[string]int
				}
			}
			if err := json.Unmarshal([]byte(stdout), &r); err != nil || stderr != "" {
				t.Fatalf("exit %d, %v, stderr:\n%s", code, err, stderr)
			}
			var in002 []string
			for _, f := range r.Findings {
				if f.Rule == "IN002" {
					in002 = append(in002, f.Kind)
				}
			}
			want := map[string][]string{"": nil, "-": {""}}[tc.in002]
			if tc.in002 != "" && tc.in002 != "-" {
				want = []string{tc.in002}
			}
			if !slices.Equal(in002, want) || len(r.Findings) != len(in002) {
				t.Errorf("findings %+v, want IN002 for %q and nothing else", r.Findings, want)
			}
			if len(r.Summary.Skipped) != len(tc.skipped) || r.Summary.Objects != tc.objects {
				t.Errorf("objects %d, skipped %v; want %d, %v", r.Summary.Objects, r.Summary.Skipped, tc.objects, tc.skipped)
			}
			for k, n := range tc.skipped {
				if r.Summary.Skipped[k] != n {
					t.Errorf("skipped %v, want %v", r.Summary.Skipped, tc.skipped)
				}
			}
			if wantCode := map[bool]int{true: ExitOK, false: ExitFindings}[want == nil]; code != wantCode {
				t.Errorf("exit %d, want %d", code, wantCode)
			}
		})
	}
}
