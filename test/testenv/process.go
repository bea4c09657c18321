package testenv

import (
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// ManagerProcess is one run of the manager binary started by a Cluster.
type ManagerProcess struct {
	// ProbePort serves /healthz and /readyz on 127.0.0.1.
	ProbePort int
	cmd       *exec.Cmd
	done      chan struct{}
}

// Pid is the process id (also its process group id).
func (p *ManagerProcess) Pid() int { return p.cmd.Process.Pid }

// Exited tells whether the process has ended.
func (p *ManagerProcess) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// ExitCode is the process's exit code once it has exited (-1 when killed by a signal).
func (p *ManagerProcess) ExitCode() int {
	<-p.done
	return p.cmd.ProcessState.ExitCode()
}

// Kill ends the process at once with SIGKILL, as a node failure or an OOM kill would: no deferred
// function, no lease release, no graceful shutdown. It returns once the process is gone.
func (p *ManagerProcess) Kill() {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// Stop asks the process to end (SIGTERM) and kills it if it has not ended after 10 s.
func (p *ManagerProcess) Stop() { p.stop(10 * time.Second) }

// stop asks the process to end (SIGTERM) and kills it after a grace period.
func (p *ManagerProcess) stop(grace time.Duration) {
	if p.Exited() {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		p.Kill()
	}
}

// StartManagerProcess runs the manager binary against the cluster like StartManager, and returns
// a handle to the process so a test can kill it. Later flags win over the defaults, so args may
// pass another --kubeconfig (see KubeconfigFor) or --health-probe-bind-address.
func (c *Cluster) StartManagerProcess(binary string, logTo io.Writer, args ...string) (*ManagerProcess, error) {
	probePort, err := FreePort()
	if err != nil {
		return nil, err
	}
	base := []string{"--kubeconfig", c.Kubeconfig, "--metrics-bind-address=0",
		"--health-probe-bind-address=127.0.0.1:" + strconv.Itoa(probePort)}
	cmd := exec.Command(binary, append(base, args...)...)
	cmd.Stdout, cmd.Stderr = logTo, logTo
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &ManagerProcess{ProbePort: probePort, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	c.processes = append(c.processes, p)
	return p, nil
}

// KubeconfigFor provisions a user on the control plane (a client certificate with that name and
// those groups) and writes a kubeconfig for it next to the admin one, so processes can run under
// an identity of their own.
func (c *Cluster) KubeconfigFor(user envtest.User) (string, error) {
	u, err := c.Env.AddUser(user, nil)
	if err != nil {
		return "", err
	}
	data, err := u.KubeConfig()
	if err != nil {
		return "", err
	}
	path := filepath.Join(c.dir, "kubeconfig-"+user.Name)
	return path, writeFile(path, data)
}

// BuildManager builds the manager binary from the working tree into dir and returns its path.
func BuildManager(dir string) (string, error) {
	out := filepath.Join(dir, "manager")
	build := exec.Command("go", "build", "-o", out, "./cmd/manager")
	build.Dir = Root()
	if msg, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/manager: %w\n%s", err, msg)
	}
	return out, nil
}
