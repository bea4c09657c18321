package testenv

import (
	"bytes"
	"io"
	"strings"
	"sync"
)

// Log collects a process's output for a test to read while the process runs, and copies it to
// Also when that is set (a spec's report, a file).
type Log struct {
	Also io.Writer

	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.Also != nil {
		_, _ = l.Also.Write(p)
	}
	return l.buf.Write(p)
}

// String is everything written so far.
func (l *Log) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// Lines returns the lines written so far that contain every one of the words.
func (l *Log) Lines(words ...string) []string {
	var out []string
	for _, line := range strings.Split(l.String(), "\n") {
		match := true
		for _, w := range words {
			match = match && strings.Contains(line, w)
		}
		if match {
			out = append(out, line)
		}
	}
	return out
}
