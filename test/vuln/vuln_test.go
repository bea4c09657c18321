package main

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestScanFindsReachableVulnerability runs the govulncheck and database `make verify` uses over
// this module: a scan that passes here would pass anything, so it must fail with the advisory, the
// fixed version and the call path from our code.
func TestScanFindsReachableVulnerability(t *testing.T) {
	govulncheck, db := os.Getenv("GOVULNCHECK"), os.Getenv("GOVULNDB")
	if govulncheck == "" || !strings.HasPrefix(db, "file://") {
		t.Fatalf("GOVULNCHECK (the binary) and GOVULNDB (file://, the local database) must be set: run `make vulncheck-proof`; got %q, %q", govulncheck, db)
	}
	cmd := exec.Command(govulncheck, "-db", db, "./...")
	out, err := cmd.CombinedOutput()
	t.Logf("govulncheck output:\n%s", out)

	// Exit status 3 is govulncheck's "vulnerabilities found"; 1 would be a failed scan, which
	// proves nothing.
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 {
		t.Fatalf("govulncheck: want exit status 3 (vulnerabilities found), got %v", err)
	}
	for _, want := range []string{
		"GO-2021-0113",
		"Found in: golang.org/x/text@v0.3.6",
		"Fixed in: golang.org/x/text@v0.3.7",
		"calls language.Parse", // reached from main, not merely imported
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("govulncheck output lacks %q", want)
		}
	}
}
