package cli

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// diff of a pull request on the seed graph, in every format, both ways; and of the same objects
// reordered, which changes nothing.
func TestDiffGolden(t *testing.T) {
	var out strings.Builder
	for _, args := range [][]string{
		{"testdata/diff/old", "testdata/diff/new"},
		{"testdata/diff/old", "testdata/diff/new", "--format", "markdown"},
		{"testdata/diff/old", "testdata/diff/new", "--format", "json"},
		{"testdata/diff/new", "testdata/diff/old"},
		{"testdata/diff/old", "testdata/diff/reordered"},
		{"testdata/diff/old", "testdata/diff/reordered", "--format", "markdown"},
		{"testdata/diff/old", "testdata/diff/reordered", "--format", "json"},
	} {
		code, stdout, stderr := run(t, "", append([]string{"diff"}, args...)...)
		fmt.Fprintf(&out, "$ servicegraph diff %s\n%s[exit %d]%s\n", strings.Join(args, " "), stdout, code, stderr)
	}
	golden(t, "diff/golden.txt", out.String())
}

// --base-ref compares a path at a git revision with the working tree, from anywhere in the
// repository, and says the same as comparing the two directories.
func TestDiffBaseRef(t *testing.T) {
	want, wantStderr := "", ""
	{
		code, stdout, stderr := run(t, "", "diff", "testdata/diff/old", "testdata/diff/new")
		if code != ExitOK {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		want, wantStderr = stdout, stderr
	}
	repo := t.TempDir()
	git := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-c", "user.name=t", "-c", "user.email=t@example.com"}, args...)...)
		cmd.Dir = repo
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	copyFile := func(from, to string) {
		t.Helper()
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	git("init", "-q")
	copyFile("testdata/diff/old/shop.yaml", filepath.Join(repo, "deploy/policies/shop.yaml"))
	git("add", ".")
	git("commit", "-qm", "old")
	copyFile("testdata/diff/new/shop.yaml", filepath.Join(repo, "deploy/policies/shop.yaml"))
	t.Chdir(filepath.Join(repo, "deploy"))
	code, stdout, stderr := run(t, "", "diff", "--base-ref", "HEAD", "policies")
	if code != ExitOK || stdout != want || stderr != wantStderr {
		t.Errorf("--base-ref HEAD: exit %d, stderr %q, stdout:\n%s\nwant:\n%s", code, stderr, stdout, want)
	}
	git("commit", "-qam", "new")
	if code, stdout, _ := run(t, "", "diff", "--base-ref", "HEAD", "policies"); code != ExitOK || stdout != "no connectivity change\n" {
		t.Errorf("committed: exit %d, stdout %q", code, stdout)
	}
	if code, _, stderr := run(t, "", "diff", "--base-ref", "no-such-ref", "policies"); code != ExitInvalid || !strings.Contains(stderr, "no-such-ref") {
		t.Errorf("unknown ref: exit %d, stderr %q", code, stderr)
	}
}

func TestDiffUsage(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"testdata/diff/old"}, ExitUsage, "want OLD and NEW, got 1 arguments"},
		{[]string{"--base-ref", "HEAD", "a", "b"}, ExitUsage, "--base-ref takes one PATH"},
		{[]string{"testdata/diff/old", "testdata/diff/new", "--format", "yaml"}, ExitUsage, `--format must be text, markdown or json, not "yaml"`},
		{[]string{"testdata/diff/old", "testdata/invalid"}, ExitInvalid, "NEW: "},
	} {
		code, stdout, stderr := run(t, "", append([]string{"diff"}, tc.args...)...)
		if code != tc.code || stdout != "" || !strings.Contains(stderr, tc.stderr) {
			t.Errorf("diff %v: exit %d, stdout %q, stderr %q; want %d and %q", tc.args, code, stdout, stderr, tc.code, tc.stderr)
		}
	}
}
