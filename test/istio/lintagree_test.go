package istio

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"istio.io/istio/pilot/pkg/config/kube/crd"
	"istio.io/istio/pkg/config/schema/collections"

	"github.com/servicegraph/servicegraph-operator/internal/cli"
)

// TestLintAgreesWithIstioValidation holds the linter's Istio checks, which are written by hand
// (istio.io/istio is too heavy a dependency for the operator's module), to istiod's own validation
// on every AuthorizationPolicy and PeerAuthentication of the public corpus:
//   - what istiod refuses, lint reports as an error (IN001 when it cannot even be read, PA004, AP010, ...);
//   - what lint says istiod refuses (PA004, AP010) istiod refuses;
//   - what lint says Istio accepts but never matches (AP006) istiod accepts.
func TestLintAgreesWithIstioValidation(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(root, "test", "testdata", "corpus", "*", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("corpus: %v", err)
	}
	kind := regexp.MustCompile(`(?m)^kind:\s*(AuthorizationPolicy|PeerAuthentication)\s*$`)
	refused, judged := 0, 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range strings.Split("\n"+string(data), "\n---") {
			if !kind.MatchString(doc) || strings.Contains(doc, "{{") {
				continue // other kinds; templates are IN002's
			}
			judged++
			istioErr := istioValidate(doc)
			rules := lintRules(t, doc)
			where := filepath.Base(f) + ": " + strings.TrimSpace(firstLine(doc, "name:"))
			if istioErr != nil {
				refused++
				if !rules["error"] {
					t.Errorf("%s: istiod refuses it (%v), lint reports no error", where, istioErr)
				}
			}
			for _, refusal := range []string{"PA004", "AP010"} {
				if rules[refusal] && istioErr == nil {
					t.Errorf("%s: lint says istiod refuses it (%s), istiod accepts it", where, refusal)
				}
			}
			if rules["AP006"] && istioErr != nil {
				t.Errorf("%s: lint says Istio accepts the value that never matches (AP006), istiod refuses the policy: %v", where, istioErr)
			}
		}
	}
	t.Logf("%d Istio policies of the corpus judged by istiod's validation and by lint; istiod refuses %d", judged, refused)
	if judged < 100 {
		t.Errorf("only %d policies judged", judged)
	}
}

// istioValidate parses a document as istiod does and runs its validation.
func istioValidate(doc string) error {
	configs, _, err := crd.ParseInputs(doc)
	if err != nil {
		return err
	}
	for _, c := range configs {
		s, ok := collections.Pilot.FindByGroupVersionAliasesKind(c.GroupVersionKind)
		if !ok {
			continue
		}
		if _, err := s.ValidateConfig(c); err != nil {
			return err
		}
	}
	return nil
}

// lintRules lints a document and returns the rules it reports, and "error" when one is an error.
func lintRules(t *testing.T, doc string) map[string]bool {
	t.Helper()
	var stdout, stderr strings.Builder
	cli.Main([]string{"lint", "-f", "-", "--format", "json"}, strings.NewReader(doc), &stdout, &stderr)
	var report struct {
		Findings []struct{ Rule, Severity string }
	}
	if err := json.Unmarshal([]byte(stdout.String()), &report); err != nil {
		t.Fatalf("lint: %v: %s%s", err, stdout.String(), stderr.String())
	}
	out := map[string]bool{}
	for _, f := range report.Findings {
		out[f.Rule] = true
		if f.Severity == "error" {
			out["error"] = true
		}
	}
	return out
}

func firstLine(doc, prefix string) string {
	for _, line := range strings.Split(doc, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), prefix) {
			return line
		}
	}
	return ""
}
