// Package promtest runs a real Prometheus (`make prometheus` builds it) for the traffic suites:
// series backfilled into TSDB blocks with promtool before it starts, and loopback targets it
// scrapes every second while it runs, served over its HTTP API on a loopback port.
package promtest

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/servicegraph/servicegraph-operator/test/testenv"
)

// Binaries locates prometheus and promtool under bin/, at the version hack/tools/prometheus pins.
func Binaries() (prometheus, promtool string, err error) {
	gomod := filepath.Join(testenv.Root(), "hack", "tools", "prometheus", "go.mod")
	data, err := os.ReadFile(gomod)
	if err != nil {
		return "", "", err
	}
	version := ""
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "github.com/prometheus/prometheus" || len(f) == 3 && f[0] == "require" && f[1] == "github.com/prometheus/prometheus" {
			version = f[len(f)-1]
		}
	}
	if version == "" {
		return "", "", fmt.Errorf("%s requires no github.com/prometheus/prometheus", gomod)
	}
	dir := filepath.Join(testenv.Root(), "bin", "prometheus", version)
	prometheus, promtool = filepath.Join(dir, "prometheus"), filepath.Join(dir, "promtool")
	for _, f := range []string{prometheus, promtool} {
		if _, err := os.Stat(f); err != nil {
			return "", "", fmt.Errorf("%s is missing: run `make prometheus` (builds Prometheus %s from the Go module proxy)", f, version)
		}
	}
	return prometheus, promtool, nil
}

// Sample is one value of a counter at a time.
type Sample struct {
	At    time.Time
	Value float64
}

// Series is a counter's samples over time.
type Series struct {
	// Name is the sample name, e.g. istio_requests_total.
	Name    string
	Labels  map[string]string
	Samples []Sample
}

// Options say what the server holds and scrapes.
type Options struct {
	// Backfill is written into blocks before the server starts (samples older than the
	// retention of ten years are dropped by the server: keep them recent).
	Backfill []Series
	// Scrape are loopback URLs of metrics endpoints scraped every second.
	Scrape []string
}

// Server is one running Prometheus.
type Server struct {
	// URL is its HTTP API's base, http://127.0.0.1:PORT.
	URL string
	dir string
	cmd *exec.Cmd
	log *os.File
}

// Start backfills the series, starts the server on a free loopback port and waits until it is
// ready (and, with scrape targets, until it has scraped each once).
func Start(opts Options) (*Server, error) {
	prometheus, promtool, err := Binaries()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "promtest-")
	if err != nil {
		return nil, err
	}
	s := &Server{dir: dir}
	if err := s.start(prometheus, promtool, opts); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

func (s *Server) start(prometheus, promtool string, opts Options) error {
	data := filepath.Join(s.dir, "data")
	if len(opts.Backfill) > 0 {
		om := filepath.Join(s.dir, "backfill.om")
		if err := WriteOpenMetrics(om, opts.Backfill); err != nil {
			return err
		}
		out, err := exec.Command(promtool, "tsdb", "create-blocks-from", "openmetrics", om, data).CombinedOutput()
		if err != nil {
			return fmt.Errorf("promtool create-blocks-from: %w\n%s", err, out)
		}
	}
	config := "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n"
	if len(opts.Scrape) > 0 {
		config += "- job_name: envoy\n  static_configs:\n  - targets:\n"
		for _, u := range opts.Scrape {
			host := strings.TrimPrefix(strings.TrimPrefix(u, "http://"), "https://")
			host, path, _ := strings.Cut(host, "/")
			config += fmt.Sprintf("    - %q\n", host)
			if path != "" {
				config = strings.Replace(config, "- job_name: envoy\n", "- job_name: envoy\n  metrics_path: /"+path+"\n", 1)
			}
		}
	} else {
		config = strings.TrimSuffix(config, "scrape_configs:\n") + "scrape_configs: []\n"
	}
	cfgFile := filepath.Join(s.dir, "prometheus.yml")
	if err := os.WriteFile(cfgFile, []byte(config), 0o600); err != nil {
		return err
	}
	port, err := testenv.FreePort()
	if err != nil {
		return err
	}
	if s.log, err = os.Create(filepath.Join(s.dir, "prometheus.log")); err != nil {
		return err
	}
	s.URL = "http://127.0.0.1:" + strconv.Itoa(port)
	// Every in-process run of the command line opens a client of its own, whose idle keep-alive
	// connections live until the test ends: past the default 512 the server stops accepting.
	s.cmd = exec.Command(prometheus, "--config.file="+cfgFile, "--storage.tsdb.path="+data,
		"--storage.tsdb.retention.time=3650d", "--web.listen-address=127.0.0.1:"+strconv.Itoa(port), "--web.max-connections=8192")
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.waitFor(ctx, "/-/ready", func(string) bool { return true }); err != nil {
		return err
	}
	if len(opts.Scrape) > 0 {
		return s.waitFor(ctx, "/api/v1/query?query=count(up%3D%3D1)", func(body string) bool {
			return strings.Contains(body, fmt.Sprintf(`"%d"]`, len(opts.Scrape)))
		})
	}
	return nil
}

// waitFor polls a path of the API until it answers 200 with a body ok accepts.
func (s *Server) waitFor(ctx context.Context, path string, ok func(body string) bool) error {
	for {
		resp, err := http.Get(s.URL + path)
		if err == nil {
			var b strings.Builder
			_, _ = bufio.NewReader(resp.Body).WriteTo(&b)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && ok(b.String()) {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("prometheus at %s: %s never answered: %s", s.URL, path, s.Log())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Log is what the server printed.
func (s *Server) Log() string {
	data, _ := os.ReadFile(filepath.Join(s.dir, "prometheus.log"))
	return string(data)
}

// Stop ends the server (the process it started, by its PID) and removes its files.
func (s *Server) Stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = s.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		s.cmd = nil
	}
	if s.log != nil {
		s.log.Close()
	}
	_ = os.RemoveAll(s.dir)
}

// WriteOpenMetrics writes counters in the OpenMetrics text format promtool backfills: one family
// per sample name (its samples together, each series' in time order), timestamps in seconds, and
// the closing "# EOF".
func WriteOpenMetrics(path string, series []Series) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	byName := map[string][]Series{}
	for _, s := range series {
		byName[s.Name] = append(byName[s.Name], s)
	}
	for _, name := range slices.Sorted(maps.Keys(byName)) {
		// OpenMetrics names a counter's samples FAMILY_total; a series named otherwise (Envoy's
		// stats as Istio exports them, envoy_..._rbac) is written untyped, as it is scraped.
		if family, ok := strings.CutSuffix(name, "_total"); ok {
			fmt.Fprintf(w, "# TYPE %s counter\n", family)
		} else {
			fmt.Fprintf(w, "# TYPE %s unknown\n", name)
		}
		for _, s := range byName[name] {
			labels := labelText(s.Labels)
			samples := slices.SortedFunc(slices.Values(s.Samples), func(a, b Sample) int { return a.At.Compare(b.At) })
			for _, sm := range samples {
				fmt.Fprintf(w, "%s%s %s %s\n", name, labels, strconv.FormatFloat(sm.Value, 'f', -1, 64),
					strconv.FormatFloat(float64(sm.At.UnixMilli())/1000, 'f', 3, 64))
			}
		}
	}
	fmt.Fprintln(w, "# EOF")
	return errors.Join(w.Flush(), f.Close())
}

func labelText(labels map[string]string) string {
	if len(labels) == 0 {
		return ""
	}
	parts := make([]string, 0, len(labels))
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		parts = append(parts, k+`="`+labelEscaper.Replace(labels[k])+`"`)
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// labelEscaper escapes a label value as OpenMetrics does: backslash, double quote and newline
// only (strconv.Quote would also escape non-ASCII text, which the parser reads literally).
var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

// Counter is a series that counts up by step every interval from start to end.
func Counter(name string, labels map[string]string, start, end time.Time, interval time.Duration, step float64) Series {
	s := Series{Name: name, Labels: labels}
	v := 0.0
	for at := start; !at.After(end); at = at.Add(cmp.Or(interval, time.Minute)) {
		v += step
		s.Samples = append(s.Samples, Sample{At: at, Value: v})
	}
	return s
}
