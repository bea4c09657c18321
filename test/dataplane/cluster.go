package dataplane

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/servicegraph/servicegraph-operator/controllers"
	"github.com/servicegraph/servicegraph-operator/test/testenv"
)

// NodeName is the node the pods are scheduled to and the enforcer's --hostname-override.
const NodeName = "dataplane-node"

// Cluster is the node's control plane with the operator and an enforcer running on it.
type Cluster struct {
	*testenv.Cluster
	Client   client.Client
	Manager  *testenv.ManagerProcess
	Topology *Topology
	pods     *podSet

	mu       sync.Mutex
	enforcer *Enforcer
}

// StartCluster starts the control plane (with Istio's CRDs) and the manager binary inside the node
// namespace; call it from the program RunInNode re-ran there.
func StartCluster(t *Topology, manager string, managerLog io.Writer) (*Cluster, error) {
	tc, err := testenv.StartCluster(true)
	if err != nil {
		return nil, err
	}
	c := &Cluster{Cluster: tc, Topology: t}
	c.pods = newPodSet(c)
	if c.Client, err = client.New(tc.Config, client.Options{Scheme: controllers.NewScheme()}); err != nil {
		return nil, errors.Join(err, c.Stop())
	}
	if c.Manager, err = tc.StartManagerProcess(manager, managerLog); err != nil {
		return nil, errors.Join(err, c.Stop())
	}
	return c, nil
}

// PauseOperator stops the operator's process (SIGSTOP) until ResumeOperator, so a test can look at
// the dataplane between a change and the operator's answer to it.
func (c *Cluster) PauseOperator() error { return syscall.Kill(-c.Manager.Pid(), syscall.SIGSTOP) }

// ResumeOperator lets a paused operator go on.
func (c *Cluster) ResumeOperator() error { return syscall.Kill(-c.Manager.Pid(), syscall.SIGCONT) }

// Stop ends the enforcer, the pods' listeners, the manager and the control plane.
func (c *Cluster) Stop() error {
	errs := []error{c.StopEnforcer()}
	c.pods.closeAll()
	return errors.Join(append(errs, c.Cluster.Stop())...)
}

// Enforcer is a running kube-network-policies process.
type Enforcer struct {
	cmd  *exec.Cmd
	done chan struct{}
	log  *testenv.Log
	dir  string
}

// Log is what the enforcer has written so far.
func (e *Enforcer) Log() string { return e.log.String() }

// StartEnforcer runs an enforcer binary in the node namespace as the in-cluster client its
// release is written for: a ServiceAccount with its upstream RBAC, the token and CA mounted at
// /run/secrets/kubernetes.io/serviceaccount in a private mount namespace (so nothing of it
// shows on the machine), and KUBERNETES_SERVICE_HOST/PORT pointing at the API server.
// verbosity 2 makes it log each decision; the log goes to logTo too when it is not nil.
func (c *Cluster) StartEnforcer(ctx context.Context, binary string, verbosity int, logTo io.Writer) (*Enforcer, error) {
	if err := c.StopEnforcer(); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "dataplane-enforcer-")
	if err != nil {
		return nil, err
	}
	if err := c.writeServiceAccount(ctx, dir); err != nil {
		return nil, err
	}
	host, err := url.Parse(c.Config.Host)
	if err != nil {
		return nil, err
	}
	const mount = `mount -t tmpfs -o size=1m,mode=0755 dataplane-run /run &&
mkdir -p /run/secrets/kubernetes.io/serviceaccount &&
cp "$1"/token "$1"/ca.crt "$1"/namespace /run/secrets/kubernetes.io/serviceaccount/ &&
shift && exec "$@"`
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", mount, "sh", dir,
		binary, "--hostname-override="+NodeName, fmt.Sprintf("-v=%d", verbosity), "--metrics-bind-address=127.0.0.1:0")
	cmd.Env = append(os.Environ(), "KUBERNETES_SERVICE_HOST="+host.Hostname(), "KUBERNETES_SERVICE_PORT="+host.Port())
	e := &Enforcer{cmd: cmd, done: make(chan struct{}), log: &testenv.Log{Also: logTo}, dir: dir}
	cmd.Stdout, cmd.Stderr = e.log, e.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = cmd.Wait(); close(e.done) }()
	c.mu.Lock()
	c.enforcer = e
	c.mu.Unlock()
	return e, nil
}

// StopEnforcer ends the running enforcer with SIGINT, on which it removes its nftables table
// (SIGTERM would leave the table, and a fail-closed queue nobody reads drops every new
// connection); SIGKILL after 15 s.
func (c *Cluster) StopEnforcer() error {
	c.mu.Lock()
	e := c.enforcer
	c.enforcer = nil
	c.mu.Unlock()
	if e == nil {
		return nil
	}
	defer os.RemoveAll(e.dir)
	_ = syscall.Kill(-e.cmd.Process.Pid, syscall.SIGINT)
	select {
	case <-e.done:
		return nil
	case <-time.After(15 * time.Second):
		_ = syscall.Kill(-e.cmd.Process.Pid, syscall.SIGKILL)
		<-e.done
		return fmt.Errorf("the enforcer did not stop on SIGINT within 15 s; killed (its nftables table may be left in the node namespace)")
	}
}

// enforcerRules are kube-network-policies' upstream RBAC (install/kube-network-policies.yaml):
// read pods, namespaces and NetworkPolicies, write events.
var enforcerRules = []rbacv1.PolicyRule{
	{APIGroups: []string{""}, Resources: []string{"pods", "namespaces"}, Verbs: []string{"list", "watch"}},
	{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"networkpolicies"}, Verbs: []string{"list", "watch"}},
	{APIGroups: []string{"", "events.k8s.io"}, Resources: []string{"events"}, Verbs: []string{"create", "patch", "update"}},
}

// writeServiceAccount creates the enforcer's ServiceAccount and RBAC (once) and writes a fresh
// token, the cluster's CA and the namespace where an in-cluster client reads them.
func (c *Cluster) writeServiceAccount(ctx context.Context, dir string) error {
	const name, ns = "kube-network-policies", "kube-system"
	meta := metav1.ObjectMeta{Name: name, Namespace: ns}
	sa := &corev1.ServiceAccount{ObjectMeta: meta}
	for _, obj := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		sa,
		&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: enforcerRules},
		&rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
			Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: name, Namespace: ns}}},
	} {
		if err := c.Client.Create(ctx, obj); err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
	}
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: new(int64(3600))}}
	if err := c.Client.SubResource("token").Create(ctx, sa, req); err != nil {
		return fmt.Errorf("creating the enforcer's token: %w", err)
	}
	files := map[string][]byte{"token": []byte(req.Status.Token), "ca.crt": c.Config.CAData, "namespace": []byte(ns)}
	for file, data := range files {
		if err := os.WriteFile(filepath.Join(dir, file), data, 0o600); err != nil {
			return err
		}
	}
	return nil
}
