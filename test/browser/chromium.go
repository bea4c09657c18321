// Package browser drives Debian's Chromium headless for tests: a page as the browser's DOM after
// parsing (--dump-dom), as a screenshot (--screenshot), and what it wrote to its console. The
// command line is enough for pages without script; no DevTools client, no new dependency.
package browser

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Path is Debian's Chromium (`make chromium` installs it).
const Path = "/usr/bin/chromium"

// Require says what to run when Chromium is missing: the suite needs a real browser, it never
// skips.
func Require() error {
	if _, err := os.Stat(Path); err != nil {
		return fmt.Errorf("no Chromium at %s (%w): run `make chromium` (apt-get install chromium chromium-driver)", Path, err)
	}
	return nil
}

// Result is what one run of the browser left.
type Result struct {
	// Stdout is --dump-dom's serialised DOM.
	Stdout []byte
	// Console holds the page's console messages (CSP violations, script errors).
	Console []string
	// Took is the run's wall time.
	Took time.Duration
}

// DumpDOM loads a file and returns the DOM the browser built from it.
func DumpDOM(ctx context.Context, file string) (*Result, error) {
	return run(ctx, file, "--dump-dom")
}

// Screenshot loads a file in a window of w×h CSS pixels (one device pixel each) and decodes the
// PNG the browser wrote.
func Screenshot(ctx context.Context, file string, w, h int) (image.Image, *Result, error) {
	out := filepath.Join(filepath.Dir(file), strings.TrimSuffix(filepath.Base(file), filepath.Ext(file))+".png")
	res, err := run(ctx, file, "--screenshot="+out, fmt.Sprintf("--window-size=%d,%d", w, h))
	if err != nil {
		return nil, res, err
	}
	f, err := os.Open(out)
	if err != nil {
		return nil, res, err
	}
	defer f.Close()
	img, err := png.Decode(f)
	return img, res, err
}

// run starts Chromium headless on file:// in a process group of its own with a fresh profile, and
// ends the whole group (zygote, GPU and utility processes) by its id when done or on timeout.
func run(ctx context.Context, file string, args ...string) (*Result, error) {
	if err := Require(); err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(file)
	if err != nil {
		return nil, err
	}
	profile, err := os.MkdirTemp("", "chromium-profile-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(profile)
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	args = append([]string{
		"--headless", "--disable-gpu", "--no-sandbox", "--no-first-run", "--no-default-browser-check",
		"--disable-extensions", "--disable-dev-shm-usage", "--disable-breakpad", "--disable-crash-reporter",
		"--hide-scrollbars", "--force-device-scale-factor=1", "--user-data-dir=" + profile,
		// Console messages go to stderr as INFO:CONSOLE lines.
		"--enable-logging=stderr", "--v=0",
	}, args...)
	cmd := exec.CommandContext(ctx, Path, append(args, "file://"+abs)...)
	cmd.Env = append(os.Environ(), "HOME="+profile) // nothing of the user's profile, nothing left behind
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err = cmd.Run()
	if cmd.Process != nil {
		// Helpers still running after the browser exited belong to its group: end them too.
		if kerr := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); kerr != nil && !errors.Is(kerr, syscall.ESRCH) {
			return nil, kerr
		}
	}
	res := &Result{Stdout: stdout.Bytes(), Took: time.Since(start)}
	for _, line := range strings.Split(stderr.String(), "\n") {
		if strings.Contains(line, ":CONSOLE") {
			res.Console = append(res.Console, line)
		}
	}
	if err != nil {
		return res, fmt.Errorf("%s: %w\n%s", Path, err, tail(stderr.String(), 2000))
	}
	return res, nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
