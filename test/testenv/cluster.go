package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// Cluster is a running test control plane that processes can use through a kubeconfig file: the
// manager binary and the kubectl built at the API server's version.
type Cluster struct {
	Env        *envtest.Environment
	Config     *rest.Config
	Kubeconfig string
	dir        string
	processes  []*ManagerProcess
}

// StartCluster starts a control plane and writes an admin kubeconfig for it.
func StartCluster(withIstio bool) (*Cluster, error) {
	return StartClusterWith(withIstio, nil)
}

// StartClusterWith is StartCluster with a hook that adjusts the environment before it starts, for
// example to add API server flags through env.ControlPlane.GetAPIServer().Configure().
func StartClusterWith(withIstio bool, configure func(*envtest.Environment) error) (*Cluster, error) {
	env, err := New(withIstio)
	if err != nil {
		return nil, err
	}
	if configure != nil {
		if err := configure(env); err != nil {
			return nil, err
		}
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, err
	}
	c := &Cluster{Env: env, Config: cfg}
	if err := c.writeKubeconfig(); err != nil {
		return nil, errors.Join(err, c.Stop())
	}
	return c, nil
}

func (c *Cluster) writeKubeconfig() error {
	user, err := c.Env.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return err
	}
	data, err := user.KubeConfig()
	if err != nil {
		return err
	}
	if c.dir, err = os.MkdirTemp("", "servicegraph-cluster-"); err != nil {
		return err
	}
	c.Kubeconfig = filepath.Join(c.dir, "kubeconfig")
	return writeFile(c.Kubeconfig, data)
}

func writeFile(path string, data []byte) error { return os.WriteFile(path, data, 0o600) }

// Kubectl runs kubectl against the cluster and returns its combined output.
func (c *Cluster) Kubectl(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, Kubectl(), append([]string{"--kubeconfig", c.Kubeconfig}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("kubectl %v: %w\n%s", args, err, out.String())
	}
	return out.String(), err
}

// StartManager runs the manager binary against the cluster, its log going to logTo. Probes are
// served on a free port, which is returned; metrics are off unless args turn them on.
func (c *Cluster) StartManager(binary string, logTo io.Writer, args ...string) (probePort int, err error) {
	p, err := c.StartManagerProcess(binary, logTo, args...)
	if err != nil {
		return 0, err
	}
	return p.ProbePort, nil
}

// StopManagers stops the manager processes: SIGTERM, then SIGKILL after a grace period.
func (c *Cluster) StopManagers() {
	for _, p := range c.processes {
		p.stop(10 * time.Second)
	}
	c.processes = nil
}

// Stop stops the managers and the control plane and removes the kubeconfig.
func (c *Cluster) Stop() error {
	c.StopManagers()
	err := c.Env.Stop()
	if c.dir != "" {
		err = errors.Join(err, os.RemoveAll(c.dir))
	}
	return err
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
