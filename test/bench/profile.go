package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/client-go/rest"
)

// profileAPIServer collects a CPU profile of kube-apiserver (which serves /debug/pprof to admins)
// over the next d, in the background; wait returns the file it was written to.
func (e *env) profileAPIServer(ctx context.Context, d time.Duration) (wait func() (string, error)) {
	done := make(chan error, 1)
	file := filepath.Join(e.dir, "kube-apiserver.pprof")
	go func() { done <- e.fetchProfile(ctx, d, file) }()
	return func() (string, error) { return file, <-done }
}

func (e *env) fetchProfile(ctx context.Context, d time.Duration, file string) error {
	hc, err := rest.HTTPClientFor(e.cluster.Config)
	if err != nil {
		return err
	}
	url := fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", strings.TrimSuffix(e.cluster.Config.Host, "/"), int(d.Seconds()))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("profiling kube-apiserver: %s", resp.Status)
	}
	out, err := os.Create(file)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, resp.Body)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// plumbing hides the frames every request passes through (HTTP serving, authentication and
// priority-and-fairness filters), which would otherwise fill the top of a cumulative listing.
const plumbing = `^(runtime\.(goexit|systemstack|mcall|morestack)|go\.opentelemetry\.io/|net/http\.|golang\.org/x/net/http2\.|internal/|sync\.|k8s\.io/apiserver/pkg/(endpoints/filters|server/filters|server\.|endpoints/filterlatency|util/flowcontrol)|k8s\.io/apiserver/pkg/server/mux|github\.com/emicklei|.*\.ServeHTTP|.*HandlerFunc|.*\.func[0-9])`

// pprofTop renders the top cumulative entries of a profile with `go tool pprof`.
func pprofTop(ctx context.Context, file string, entries int) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-cum", fmt.Sprintf("-nodecount=%d", entries), "-hide="+plumbing, file)
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go tool pprof: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}
