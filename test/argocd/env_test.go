package argocd

// The real Argo CD of the e2e suite: where `make argocd` builds it, and how the suite runs it as
// processes (argocd-repo-server, argocd-application-controller, argocd-applicationset-controller
// and a Redis) against the test control plane.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/servicegraph/servicegraph-operator/test/testenv"
)

// argocdNamespace is where the Argo CD processes keep their Applications, settings and clusters.
const argocdNamespace = "argocd"

// argocdVersion is the Argo CD version hack/tools/argocd/go.mod pins: the one `make argocd` builds.
func argocdVersion() (string, error) {
	gomod := filepath.Join(testenv.Root(), "hack", "tools", "argocd", "go.mod")
	data, err := os.ReadFile(gomod)
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "github.com/argoproj/argo-cd/v3" {
			return f[1], nil
		}
	}
	return "", fmt.Errorf("%s pins no github.com/argoproj/argo-cd/v3", gomod)
}

// argocdBuild is what hack/tools/argocd/build.sh puts into bin/argocd/<version>/.
type argocdBuild struct {
	Version string
	Dir     string
}

func (b argocdBuild) Binary() string { return filepath.Join(b.Dir, "argocd") }
func (b argocdBuild) Redis() string  { return filepath.Join(b.Dir, "redis") }
func (b argocdBuild) Path() string   { return filepath.Join(b.Dir, "path") }
func (b argocdBuild) CRDs() string   { return filepath.Join(b.Dir, "crds") }

// findArgoCD locates the build, or says how to make it: the suite fails, never skips, without it.
func findArgoCD() (argocdBuild, error) {
	version, err := argocdVersion()
	if err != nil {
		return argocdBuild{}, err
	}
	b := argocdBuild{Version: version, Dir: filepath.Join(testenv.Root(), "bin", "argocd", version)}
	var missing []string
	for _, f := range []string{b.Binary(), b.Redis(), filepath.Join(b.Path(), "kustomize"),
		filepath.Join(b.Path(), "git-verify-wrapper.sh"), filepath.Join(b.Path(), "gpg-wrapper.sh"),
		filepath.Join(b.CRDs(), "application-crd.yaml"), filepath.Join(b.CRDs(), "applicationset-crd.yaml"),
		filepath.Join(b.CRDs(), "appproject-crd.yaml")} {
		if _, err := os.Stat(f); err != nil {
			missing = append(missing, f)
		}
	}
	if _, err := exec.LookPath("git"); err != nil {
		missing = append(missing, "git (in PATH)")
	}
	if len(missing) > 0 {
		return b, fmt.Errorf("the real-Argo CD suite needs Argo CD %s built by `make argocd` (and git); missing:\n  %s",
			version, strings.Join(missing, "\n  "))
	}
	return b, nil
}

// process is one program the suite started, in its own process group so it ends with its children.
type process struct {
	name string
	cmd  *exec.Cmd
	log  *testenv.Log
	done chan struct{}
}

func startProcess(name string, log *testenv.Log, env []string, binary string, args ...string) (*process, error) {
	cmd := exec.Command(binary, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = log, log
	// Its own process group, so stop ends its children too; and killed with the test binary
	// should that die without cleaning up (a go test timeout).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, log: log, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	return p, nil
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop ends the process group the suite started: SIGTERM, then SIGKILL after a grace period.
func (p *process) stop() {
	if p == nil || p.exited() {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// rssMiB is the process's resident memory, from /proc.
func (p *process) rssMiB() int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.Atoi(f[1])
			return kb / 1024
		}
	}
	return 0
}

// tail is the last n lines of the process's output.
func (p *process) tail(n int) string {
	lines := strings.Split(strings.TrimRight(p.log.String(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for len(ports) < n {
		p, err := testenv.FreePort()
		if err != nil {
			return nil, err
		}
		dup := false
		for _, q := range ports {
			dup = dup || q == p
		}
		if !dup {
			ports = append(ports, p)
		}
	}
	return ports, nil
}

// waitHTTP waits until url answers 200.
func waitHTTP(ctx context.Context, url string, p *process) error {
	for {
		if p.exited() {
			return fmt.Errorf("%s exited:\n%s", p.name, p.tail(40))
		}
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s did not answer %s: %w\n%s", p.name, url, ctx.Err(), p.tail(40))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// waitTCP waits until addr accepts connections.
func waitTCP(ctx context.Context, addr string, p *process) error {
	for {
		if p.exited() {
			return fmt.Errorf("%s exited:\n%s", p.name, p.tail(40))
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s did not listen on %s: %w\n%s", p.name, addr, ctx.Err(), p.tail(40))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// argoCD is a running Argo CD: the processes and what they were given.
type argoCD struct {
	build      argocdBuild
	dir        string // HOME, TMPDIR and sockets of the processes
	redisAddr  string
	redis      *process
	repoServer *process
	controller *process
	appSet     *process
	// StartedAt is when the first process started; Started how long until all answered their
	// health checks.
	StartedAt time.Time
	Started   time.Duration
}

func (a *argoCD) processes() []*process {
	return []*process{a.appSet, a.controller, a.repoServer, a.redis}
}

func (a *argoCD) stop() {
	for _, p := range a.processes() {
		p.stop()
	}
}

// startArgoCD starts Redis, the repo-server, the application controller and the ApplicationSet
// controller, all on loopback ports picked free, and waits for their health checks.
func startArgoCD(ctx context.Context, b argocdBuild, kubeconfig, dir string, logs map[string]*testenv.Log) (*argoCD, error) {
	ports, err := freePorts(7)
	if err != nil {
		return nil, err
	}
	redisPort, repoPort, repoMetrics, ctrlMetrics, setMetrics, setProbe, setWebhook := ports[0], ports[1], ports[2], ports[3], ports[4], ports[5], ports[6]
	a := &argoCD{build: b, dir: dir, redisAddr: fmt.Sprintf("127.0.0.1:%d", redisPort)}
	repoAddr := fmt.Sprintf("127.0.0.1:%d", repoPort)
	for _, d := range []string{"home", "tmp", "gnupg"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return nil, err
		}
	}
	env := func(binaryName string, extra ...string) []string {
		e := []string{
			"ARGOCD_BINARY_NAME=" + binaryName,
			"PATH=" + b.Path() + string(os.PathListSeparator) + os.Getenv("PATH"),
			"HOME=" + filepath.Join(dir, "home"),
			"TMPDIR=" + filepath.Join(dir, "tmp"),
			"ARGOCD_GNUPGHOME=" + filepath.Join(dir, "gnupg"),
			"ARGOCD_ASK_PASS_SOCK=" + filepath.Join(dir, "askpass.sock"),
			"GIT_CONFIG_NOSYSTEM=1",
			// The ApplicationSet controller's controller-runtime client reads only this.
			"KUBECONFIG=" + kubeconfig,
		}
		return append(e, extra...)
	}
	a.StartedAt = time.Now()
	defer func() { a.Started = time.Since(a.StartedAt) }()
	logFor := func(name string) *testenv.Log {
		l := &testenv.Log{}
		// ARGOCD_E2E_LOG_DIR keeps each process's whole log in a file, for a closer look.
		if logDir := os.Getenv("ARGOCD_E2E_LOG_DIR"); logDir != "" {
			if f, err := os.Create(filepath.Join(logDir, name+".log")); err == nil {
				l.Also = f
			}
		}
		logs[name] = l
		return l
	}

	if a.redis, err = startProcess("redis", logFor("redis"), nil, b.Redis(), "--addr", a.redisAddr); err != nil {
		return nil, err
	}
	if a.repoServer, err = startProcess("argocd-repo-server", logFor("argocd-repo-server"),
		env("argocd-repo-server", "ARGOCD_GPG_ENABLED=false"), b.Binary(),
		"--address", "127.0.0.1", "--port", strconv.Itoa(repoPort),
		"--metrics-address", "127.0.0.1", "--metrics-port", strconv.Itoa(repoMetrics),
		"--redis", a.redisAddr, "--disable-tls", "--client-ca-path", "", "--loglevel", "info"); err != nil {
		a.stop()
		return nil, err
	}
	common := []string{"--kubeconfig", kubeconfig, "--namespace", argocdNamespace}
	if a.controller, err = startProcess("argocd-application-controller", logFor("argocd-application-controller"),
		env("argocd-application-controller"), b.Binary(), append(common,
			"--repo-server", repoAddr, "--repo-server-plaintext", "--redis", a.redisAddr,
			"--metrics-port", strconv.Itoa(ctrlMetrics),
			// Resync often and on time, so a missed event costs seconds, not minutes.
			"--app-resync", "5", "--app-resync-jitter", "0",
			// Keep each resource's health (and its message) in the Application's status, where
			// the tests (and kubectl users) read it; v3 keeps it only in Redis by default.
			"--persist-resource-health",
			"--self-heal-timeout-seconds", "1",
			"--loglevel", "info")...); err != nil {
		a.stop()
		return nil, err
	}
	if a.appSet, err = startProcess("argocd-applicationset-controller", logFor("argocd-applicationset-controller"),
		env("argocd-applicationset-controller"), b.Binary(), append(common,
			"--argocd-repo-server", repoAddr, "--repo-server-plaintext",
			"--metrics-addr", fmt.Sprintf("127.0.0.1:%d", setMetrics),
			"--probe-addr", fmt.Sprintf("127.0.0.1:%d", setProbe),
			"--webhook-addr", fmt.Sprintf("127.0.0.1:%d", setWebhook),
			"--loglevel", "info")...); err != nil {
		a.stop()
		return nil, err
	}

	wait, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	err = errors.Join(
		waitTCP(wait, a.redisAddr, a.redis),
		waitHTTP(wait, fmt.Sprintf("http://127.0.0.1:%d/healthz?full=true", repoMetrics), a.repoServer),
		waitHTTP(wait, fmt.Sprintf("http://127.0.0.1:%d/healthz", ctrlMetrics), a.controller),
		// The ApplicationSet controller registers no health checks; its metrics answer once its
		// manager runs.
		waitHTTP(wait, fmt.Sprintf("http://127.0.0.1:%d/metrics", setMetrics), a.appSet),
	)
	if err != nil {
		a.stop()
		return nil, err
	}
	return a, nil
}

// resourceTree reads the resource tree of an Application where the application controller keeps
// it for the UI and the API server: Redis, key app|resources-tree|<app>|<cache version>, gzipped
// JSON (Argo CD's util/cache/appstate). The tree is not in the Application's status.
func (a *argoCD) resourceTree(app string) (*applicationTree, error) {
	conn, err := net.DialTimeout("tcp", a.redisAddr, 2*time.Second)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(conn)
	keys, err := redisCommand(conn, r, "KEYS", "app|resources-tree|"+app+"|*")
	if err != nil {
		return nil, err
	}
	names, _ := keys.([]any)
	if len(names) != 1 {
		return nil, fmt.Errorf("Redis holds %d resource trees of %s (want 1, unsharded): %v", len(names), app, names)
	}
	key, _ := names[0].(string)
	value, err := redisCommand(conn, r, "GET", key)
	if err != nil {
		return nil, err
	}
	data, _ := value.(string)
	var body []byte
	if strings.HasSuffix(key, ".gz") {
		if body, err = gunzip([]byte(data)); err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
	} else {
		body = []byte(data)
	}
	var tree applicationTree
	if err := json.Unmarshal(body, &tree); err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	return &tree, nil
}

// clusterSecret is the Secret that declares the test control plane to Argo CD: its URL and the
// admin client certificate (what `argocd cluster add` writes).
func clusterSecret(host string, ca, cert, key []byte) string {
	cfg, _ := json.Marshal(map[string]any{"tlsClientConfig": map[string]any{
		"caData": base64.StdEncoding.EncodeToString(ca), "certData": base64.StdEncoding.EncodeToString(cert),
		"keyData": base64.StdEncoding.EncodeToString(key),
	}})
	return fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata:
  name: test-cluster
  namespace: %s
  labels: {argocd.argoproj.io/secret-type: cluster}
stringData:
  name: test
  server: %s
  config: '%s'
`, argocdNamespace, host, cfg)
}

// gitRepo is a local git repository Argo CD reads through a file:// URL.
type gitRepo struct {
	dir string
}

func (g *gitRepo) URL() string { return "file://" + g.dir }

func (g *gitRepo) git(args ...string) (string, error) {
	cmd := exec.Command("git", append([]string{"-C", g.dir, "-c", "commit.gpgsign=false", "-c", "user.name=test", "-c", "user.email=test@example.com"}, args...)...)
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("git %v: %w\n%s", args, err, out.String())
	}
	return strings.TrimSpace(out.String()), nil
}

func newGitRepo(dir string) (*gitRepo, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	g := &gitRepo{dir: dir}
	_, err := g.git("init", "-q", "-b", "main")
	return g, err
}

// commit writes files (path → content; empty content removes the file) and commits them on the
// current branch; it returns the commit's SHA.
func (g *gitRepo) commit(message string, files map[string]string) (string, error) {
	for path, content := range files {
		full := filepath.Join(g.dir, path)
		if content == "" {
			if err := os.Remove(full); err != nil {
				return "", err
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return "", err
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			return "", err
		}
	}
	if _, err := g.git("add", "-A"); err != nil {
		return "", err
	}
	if _, err := g.git("commit", "-q", "-m", message); err != nil {
		return "", err
	}
	return g.git("rev-parse", "HEAD")
}

// copyTree copies a folder of the project into the repository (the examples, as users would).
func (g *gitRepo) copyTree(from, to string) error {
	return filepath.Walk(from, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		rel, err := filepath.Rel(from, path)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		dst := filepath.Join(g.dir, to, rel)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		return os.WriteFile(dst, data, 0o644)
	})
}
