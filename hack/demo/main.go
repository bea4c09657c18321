// Command demo shows the operator at work on a local control plane: it starts kube-apiserver and
// etcd (the test binaries), installs the CRDs, runs the manager binary, applies the sample
// ServiceGraph and prints what kubectl shows, then deletes a generated policy and shows it
// restored. Everything it started is stopped on exit, Ctrl-C included.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/servicegraph/servicegraph-operator/test/testenv"
)

func main() {
	manager := flag.String("manager", filepath.Join(testenv.Root(), "bin", "manager"), "the manager binary")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, *manager)
	switch {
	case ctx.Err() != nil:
		fmt.Fprintln(os.Stderr, "demo interrupted; everything it started is stopped")
		os.Exit(130)
	case err != nil:
		fmt.Fprintln(os.Stderr, "demo failed:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, manager string) (err error) {
	step("Starting a local control plane (kube-apiserver v%s, etcd) with the ServiceGraph and Istio CRDs", testenv.KubernetesVersion)
	cluster, err := testenv.StartCluster(true)
	if err != nil {
		return err
	}
	defer func() {
		step("Stopping the operator and the control plane")
		if stopErr := cluster.Stop(); stopErr != nil && err == nil {
			err = stopErr
		}
	}()
	logFile, err := os.CreateTemp("", "servicegraph-demo-manager-*.log")
	if err != nil {
		return err
	}
	defer logFile.Close()

	step("Starting the operator (log: %s)", logFile.Name())
	if _, err := cluster.StartManager(manager, logFile); err != nil {
		return err
	}
	sample := filepath.Join(testenv.Root(), "config", "samples")
	steps := []struct {
		title string
		args  []string
	}{
		{"The CRD is served", []string{"get", "crd", "servicegraphs.policy.servicegraph.io"}},
		{"Creating namespace shop", []string{"create", "namespace", "shop"}},
		// No kubelet runs here: the pods stay Pending, but the operator sees their labels and sidecars.
		{"A pod per service, with an Istio sidecar", []string{"run", "web-1", "-n", "shop", "--image=registry.example/web",
			"--labels=app=web", "--annotations=sidecar.istio.io/status={}"}},
		{"", []string{"run", "api-1", "-n", "shop", "--image=registry.example/api", "--labels=app=api", "--annotations=sidecar.istio.io/status={}"}},
		{"", []string{"run", "database-1", "-n", "shop", "--image=registry.example/postgres", "--labels=app=database", "--annotations=sidecar.istio.io/status={}"}},
		{"Applying the sample ServiceGraph", []string{"apply", "--server-side", "-k", sample}},
		{"Waiting for Ready", []string{"wait", "--for=condition=Ready", "servicegraph/shop", "-n", "shop", "--timeout=60s"}},
		{"kubectl get servicegraphs", []string{"get", "servicegraphs", "-n", "shop"}},
		{"kubectl get servicegraphs -o wide", []string{"get", "servicegraphs", "-n", "shop", "-o", "wide"}},
		{"The API documentation", []string{"explain", "servicegraph.spec.edges"}},
		{"Generated policies", []string{"get", "networkpolicies,peerauthentications,authorizationpolicies", "-n", "shop", "-L", "policy.servicegraph.io/service"}},
		{"The ServiceGraph's status", []string{"describe", "servicegraph", "shop", "-n", "shop"}},
		{"The api service's NetworkPolicy", []string{"get", "networkpolicy", "shop-svc-api", "-n", "shop", "-o", "yaml"}},
		{"The database's AuthorizationPolicy", []string{"get", "authorizationpolicy", "shop-svc-database", "-n", "shop", "-o", "yaml"}},
		{"Deleting default-deny by hand", []string{"delete", "networkpolicy", "shop-default-deny", "-n", "shop"}},
	}
	for _, s := range steps {
		if err := kubectl(ctx, cluster, s.title, s.args...); err != nil {
			return err
		}
	}
	step("Waiting for the operator to restore it")
	if err := waitFor(ctx, func() bool {
		_, err := cluster.Kubectl(ctx, "get", "networkpolicy", "shop-default-deny", "-n", "shop")
		return err == nil
	}); err != nil {
		return err
	}
	return kubectl(ctx, cluster, "Restored, and recorded as an event", "get", "events", "-n", "shop",
		"--field-selector", "reason=DriftCorrected", "-o", "custom-columns=REASON:.reason,MESSAGE:.message")
}

func kubectl(ctx context.Context, cluster *testenv.Cluster, title string, args ...string) error {
	if title != "" {
		step("%s", title)
	}
	fmt.Printf("$ kubectl %s\n", strings.Join(args, " "))
	out, err := cluster.Kubectl(ctx, args...)
	fmt.Print(out)
	return err
}

func waitFor(ctx context.Context, ok func() bool) error {
	deadline := time.Now().Add(30 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return nil
}

func step(format string, args ...any) {
	fmt.Printf("\n==> "+format+"\n", args...)
}
