package cli

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// releasesDir holds install manifests of production projects as users apply them, one directory
// per release (SOURCES names each file's origin) and REVIEW, the verdict on each of their policies,
// written before lint was run on them.
var releasesDir = filepath.Join(corpusDir, "releases")

// reviewed is REVIEW's verdict on one policy: hole (a reviewer blocks the pull request), broken (it
// cannot work as meant), weak (worth a warning), role (an opening the workload's role needs) or ok.
type reviewed struct{ release, object, verdict, note string }

// namespaceRules are findings about a namespace rather than the policy they sit on (NP005: the
// namespace has no default-deny); the per-policy review does not judge them, and they are counted
// apart.
var namespaceRules = []string{"NP005"}

// TestReleaseCorpus lints each release as one input and holds lint to the blind review: a finding
// of warning or error severity is true on a policy judged hole, broken or weak, and false on one
// judged role (an opening its role needs must be at most a note) or ok, or on an object not
// reviewed. Precision ≥ 90%, recall on holes ≥ 95%, and `--fail-on error` exits 0 on every release
// without a hole or a broken policy.
func TestReleaseCorpus(t *testing.T) {
	review := readReview(t)
	releases := slices.Sorted(maps.Keys(review))
	var truePos, falsePos, holes, found, namespaceFindings int
	var table strings.Builder
	fmt.Fprintf(&table, "%-28s %8s %6s %6s %6s %7s\n", "release", "policies", "true", "false", "notes", "holes")
	for _, rel := range releases {
		code, stdout, stderr := run(t, "", "lint", "-f", filepath.Join(releasesDir, rel), "--format", "json")
		if stderr != "" || !json.Valid([]byte(stdout)) {
			t.Fatalf("%s: exit %d, stderr:\n%s", rel, code, stderr)
		}
		var report struct {
			Findings []struct{ Rule, Severity, Kind, Namespace, Name, Message string }
		}
		if err := json.Unmarshal([]byte(stdout), &report); err != nil {
			t.Fatal(err)
		}
		reported := map[string][]string{}
		relTrue, relFalse, notes, relHoles, relFound, blocking := 0, 0, 0, 0, 0, false
		for _, f := range report.Findings {
			switch {
			case f.Severity == "note":
				notes++
				continue
			case slices.Contains(namespaceRules, f.Rule):
				namespaceFindings++
				continue
			}
			object := f.Kind + " " + f.Namespace + "/" + f.Name
			reported[object] = append(reported[object], f.Rule)
			switch review[rel][object].verdict {
			case "hole", "broken", "weak":
				relTrue++
			default:
				relFalse++
				t.Logf("false: %s %s %s (%s): %s — review: %s %s", rel, f.Severity, f.Rule, object, f.Message, review[rel][object].verdict, review[rel][object].note)
			}
		}
		for object, r := range review[rel] {
			blocking = blocking || r.verdict == "hole" || r.verdict == "broken"
			if r.verdict != "hole" {
				continue
			}
			relHoles++
			if len(reported[object]) > 0 {
				relFound++
			} else {
				t.Logf("missed hole: %s %s: %s", rel, object, r.note)
			}
		}
		if !blocking && code != ExitOK {
			t.Errorf("%s: no hole or broken policy in the review, but lint --fail-on error exits %d", rel, code)
		}
		truePos, falsePos, holes, found = truePos+relTrue, falsePos+relFalse, holes+relHoles, found+relFound
		fmt.Fprintf(&table, "%-28s %8d %6d %6d %6d %3d/%-3d\n", rel, len(review[rel]), relTrue, relFalse, notes, relFound, relHoles)
	}
	precision, recall := ratio(truePos, truePos+falsePos), ratio(found, holes)
	t.Logf("%d releases; namespace-level findings (%v, not judged): %d\n%sprecision %.1f%%, recall on holes %.1f%%",
		len(releases), namespaceRules, namespaceFindings, table.String(), precision, recall)
	if precision < 90 || recall < 95 {
		t.Errorf("precision %.1f%% (goal 90%%), recall on holes %.1f%% (goal 95%%)", precision, recall)
	}
}

// readReview reads REVIEW by release and object ("Kind namespace/name"; a policy written without
// a namespace is in "default", as lint reads it), checking every release has files in SOURCES.
func readReview(t *testing.T) map[string]map[string]reviewed {
	t.Helper()
	sources := map[string]bool{}
	for _, line := range readLines(t, filepath.Join(releasesDir, "SOURCES")) {
		f := strings.Split(line, "\t")
		if len(f) != 5 {
			t.Fatalf("SOURCES: want path, repository, path in it, commit, licence: %q", line)
		}
		if _, err := os.Stat(filepath.Join(releasesDir, f[0])); err != nil {
			t.Fatalf("SOURCES: %v", err)
		}
		sources[strings.Split(f[0], "/")[0]] = true
	}
	out := map[string]map[string]reviewed{}
	for _, line := range readLines(t, filepath.Join(releasesDir, "REVIEW")) {
		f := strings.Split(line, "\t")
		if len(f) != 4 || !slices.Contains([]string{"hole", "broken", "weak", "role", "ok"}, f[2]) {
			t.Fatalf("REVIEW: want release, object, hole|broken|weak|role|ok, note: %q", line)
		}
		if !sources[f[0]] {
			t.Fatalf("REVIEW: release %s has no file in SOURCES", f[0])
		}
		object := strings.Replace(f[1], " /", " default/", 1)
		if out[f[0]] == nil {
			out[f[0]] = map[string]reviewed{}
		}
		out[f[0]][object] = reviewed{f[0], object, f[2], f[3]}
	}
	if n := len(slices.Collect(maps.Keys(out))); n < 15 {
		t.Fatalf("the release corpus has %d releases, want at least 15", n)
	}
	return out
}
