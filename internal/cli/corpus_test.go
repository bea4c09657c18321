package cli

import (
	"bufio"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// corpusDir holds public manifests written by others (SOURCES names each one's repository, path,
// commit and licence) and EXPECTED, the reviewed verdicts on what lint reports for them.
const corpusDir = "../../test/testdata/corpus"

// verdict is one reviewed line of EXPECTED: a finding judged a true positive (TP) or a false
// positive (FP), or a problem lint misses (FN).
type verdict struct {
	kind, file, rule, object string
}

// TestCorpus lints every corpus file on its own (each is an example written independently, so one
// file is one input) in all three formats, and holds the findings of warning or error severity to
// EXPECTED: every TP and FP reported, nothing else, and no FN (a miss that lint starts to catch becomes a TP there). It fails
// on a crash or on output that is not valid JSON or SARIF, and logs precision and recall per source.
func TestCorpus(t *testing.T) {
	files := corpusFiles(t)
	expected := readExpected(t)
	reported := map[verdict]bool{}
	for _, f := range files {
		for _, format := range []string{"json", "sarif", "text"} {
			code, stdout, stderr := run(t, "", "lint", "-f", filepath.Join(corpusDir, f), "--format", format)
			if (code != ExitOK && code != ExitFindings) || stderr != "" {
				t.Fatalf("%s (%s): exit %d, stderr:\n%s", f, format, code, stderr)
			}
			if format != "text" && !json.Valid([]byte(stdout)) {
				t.Fatalf("%s: %s output is not valid JSON", f, format)
			}
			if format != "json" {
				continue
			}
			var report struct {
				Findings []struct{ Rule, Severity, Kind, Namespace, Name string }
			}
			if err := json.Unmarshal([]byte(stdout), &report); err != nil {
				t.Fatal(err)
			}
			for _, x := range report.Findings {
				if x.Severity == "note" {
					continue // a note claims no problem: it says why an opening is fine
				}
				reported[verdict{file: f, rule: x.Rule, object: objectName(x.Kind, x.Namespace, x.Name)}] = true
			}
		}
	}
	judged := map[verdict]string{}
	for _, v := range expected {
		key := verdict{file: v.file, rule: v.rule, object: v.object}
		judged[key] = v.kind
		switch {
		case v.kind == "FN" && reported[key]:
			t.Errorf("now reported, was a miss: mark it TP in EXPECTED: %s %s %s", v.file, v.rule, v.object)
		case v.kind != "FN" && !reported[key]:
			t.Errorf("no longer reported (%s in EXPECTED): %s %s %s", v.kind, v.file, v.rule, v.object)
		}
	}
	for _, key := range slices.SortedFunc(maps.Keys(reported), func(a, b verdict) int { return strings.Compare(a.String(), b.String()) }) {
		if _, ok := judged[key]; !ok {
			t.Errorf("reported but not reviewed in EXPECTED: %s %s %s", key.file, key.rule, key.object)
		}
	}
	table, precision, recall := scoreTable(expected)
	t.Logf("%d files, %d findings reviewed\n%s", len(files), len(reported), table)
	if precision < 97 || recall < 95 {
		t.Errorf("precision %.1f%% (goal 97%%), recall %.1f%% (goal 95%%)", precision, recall)
	}
}

func (v verdict) String() string { return v.file + "\t" + v.rule + "\t" + v.object }

func objectName(kind, namespace, name string) string {
	if kind == "" {
		return "-"
	}
	return fmt.Sprintf("%s %s/%s", kind, namespace, name)
}

// corpusFiles are the files SOURCES lists, each of which must exist.
func corpusFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	for _, line := range readLines(t, filepath.Join(corpusDir, "SOURCES")) {
		f := strings.Split(line, "\t")
		if len(f) != 5 {
			t.Fatalf("SOURCES: want path, repository, path in it, commit, licence: %q", line)
		}
		if _, err := os.Stat(filepath.Join(corpusDir, f[0])); err != nil {
			t.Fatalf("SOURCES: %v", err)
		}
		files = append(files, f[0])
	}
	if len(files) < 150 {
		t.Fatalf("the corpus has %d files, want at least 150", len(files))
	}
	return files
}

func readExpected(t *testing.T) []verdict {
	t.Helper()
	var out []verdict
	for _, line := range readLines(t, filepath.Join(corpusDir, "EXPECTED")) {
		f := strings.Split(line, "\t")
		if len(f) < 4 || (f[0] != "TP" && f[0] != "FP" && f[0] != "FN") {
			t.Fatalf("EXPECTED: want TP|FP|FN, file, rule, object[, note]: %q", line)
		}
		out = append(out, verdict{kind: f[0], file: f[1], rule: f[2], object: f[3]})
	}
	return out
}

// readLines returns a file's lines that are neither blank nor comments.
func readLines(t *testing.T, path string) []string {
	t.Helper()
	file, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	var lines []string
	sc := bufio.NewScanner(file)
	for sc.Scan() {
		if line := sc.Text(); strings.TrimSpace(line) != "" && !strings.HasPrefix(line, "#") {
			lines = append(lines, line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}

// scoreTable is precision (TP / (TP+FP)) and recall (TP / (TP+FN)) per source directory and in
// all.
func scoreTable(expected []verdict) (table string, precision, recall float64) {
	counts := map[string]*[3]int{"all": {}}
	for _, v := range expected {
		source, _, _ := strings.Cut(v.file, "/")
		if counts[source] == nil {
			counts[source] = &[3]int{}
		}
		i := map[string]int{"TP": 0, "FP": 1, "FN": 2}[v.kind]
		counts[source][i]++
		counts["all"][i]++
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%-16s %5s %5s %5s %10s %7s\n", "source", "TP", "FP", "FN", "precision", "recall")
	for _, source := range append(slices.DeleteFunc(slices.Sorted(maps.Keys(counts)), func(s string) bool { return s == "all" }), "all") {
		c := counts[source]
		fmt.Fprintf(&b, "%-16s %5d %5d %5d %9.1f%% %6.1f%%\n", source, c[0], c[1], c[2], ratio(c[0], c[0]+c[1]), ratio(c[0], c[0]+c[2]))
	}
	all := counts["all"]
	return b.String(), ratio(all[0], all[0]+all[1]), ratio(all[0], all[0]+all[2])
}

func ratio(a, b int) float64 {
	if b == 0 {
		return 100
	}
	return 100 * float64(a) / float64(b)
}
