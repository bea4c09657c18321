package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// User is an identity on the test control plane (a client certificate with its name and groups)
// with a kubeconfig of its own, for tests that check what a given user may do: RBAC, admission.
type User struct {
	envtest.User
	Kubeconfig string
}

// AddUser provisions a user with those groups and writes a kubeconfig for it (see KubeconfigFor).
// system:authenticated is added by the API server.
func (c *Cluster) AddUser(name string, groups ...string) (*User, error) {
	u := envtest.User{Name: name, Groups: groups}
	path, err := c.KubeconfigFor(u)
	if err != nil {
		return nil, err
	}
	return &User{User: u, Kubeconfig: path}, nil
}

// Admin is the cluster's admin user (group system:masters), whose kubeconfig Kubectl uses.
func (c *Cluster) Admin() *User {
	return &User{User: envtest.User{Name: "admin", Groups: []string{"system:masters"}}, Kubeconfig: c.Kubeconfig}
}

// Subject names the user in a RoleBinding or ClusterRoleBinding.
func (u *User) Subject() rbacv1.Subject {
	return rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: u.Name}
}

// GroupSubject names a group in a RoleBinding or ClusterRoleBinding.
func GroupSubject(group string) rbacv1.Subject {
	return rbacv1.Subject{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: group}
}

// Kubectl runs kubectl as the user and returns its combined output.
func (u *User) Kubectl(ctx context.Context, args ...string) (string, error) {
	return u.KubectlStdin(ctx, "", args...)
}

// KubectlStdin runs kubectl as the user with stdin as its input (for -f -).
func (u *User) KubectlStdin(ctx context.Context, stdin string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, Kubectl(), append([]string{"--kubeconfig", u.Kubeconfig}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("kubectl (as %s) %v: %w\n%s", u.Name, args, err, out.String())
	}
	return out.String(), err
}

// Apply creates or updates the objects of a manifest (YAML or JSON, several documents) as the
// user, with kubectl apply; extra arguments follow (-n, --server-side, --dry-run=server).
func (u *User) Apply(ctx context.Context, manifest string, args ...string) (string, error) {
	return u.KubectlStdin(ctx, manifest, append([]string{"apply", "-f", "-"}, args...)...)
}

// Grant binds a ClusterRole to subjects, as the admin: in one namespace with a RoleBinding, or
// cluster-wide with a ClusterRoleBinding when namespace is empty. The binding is named name.
func (c *Cluster) Grant(ctx context.Context, name, clusterRole, namespace string, subjects ...rbacv1.Subject) error {
	ref := rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: clusterRole}
	var obj any
	if namespace == "" {
		obj = &rbacv1.ClusterRoleBinding{
			TypeMeta:   metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "ClusterRoleBinding"},
			ObjectMeta: metav1.ObjectMeta{Name: name},
			RoleRef:    ref, Subjects: subjects,
		}
	} else {
		obj = &rbacv1.RoleBinding{
			TypeMeta:   metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "RoleBinding"},
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
			RoleRef:    ref, Subjects: subjects,
		}
	}
	data, err := json.Marshal(obj)
	if err != nil {
		return err
	}
	_, err = c.Admin().Apply(ctx, string(data))
	return err
}
