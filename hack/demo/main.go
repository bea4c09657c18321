// Command demo shows the operator at work on a local control plane: it starts kube-apiserver and
// etcd (the test binaries), installs the CRDs, runs the manager binary, applies the sample
// ServiceGraph and prints what kubectl shows, then deletes a generated policy and shows it
// restored. Run as root, it does all of that inside a network namespace of its own with a real
// NetworkPolicy enforcer (kube-network-policies) and pods that answer on their ports, and prints
// the connectivity matrix on real packets before and after the graph. Everything it started is
// stopped on exit, Ctrl-C included.
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

	"github.com/servicegraph/servicegraph-operator/internal/cli"
	"github.com/servicegraph/servicegraph-operator/test/dataplane"
	"github.com/servicegraph/servicegraph-operator/test/testenv"
)

func main() {
	manager := flag.String("manager", filepath.Join(testenv.Root(), "bin", "manager"), "the manager binary")
	packets := flag.Bool("packets", true, "run inside a network namespace with a real NetworkPolicy enforcer and print the connectivity matrix (needs root)")
	flag.Parse()
	if *packets && dataplane.InNode() == nil {
		code, err := dataplane.RunInNode()
		if err == nil {
			os.Exit(code)
		}
		fmt.Fprintf(os.Stderr, "demo: no real packets (%v); showing the control plane only\n", err)
		*packets = false
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, *manager, *packets)
	switch {
	case ctx.Err() != nil:
		fmt.Fprintln(os.Stderr, "demo interrupted; everything it started is stopped")
		os.Exit(130)
	case err != nil:
		fmt.Fprintln(os.Stderr, "demo failed:", err)
		os.Exit(1)
	}
}

// demo is what the steps need: the cluster, and the dataplane when there are real packets.
type demo struct {
	cluster *testenv.Cluster
	packets *dataplane.Cluster
	seed    *dataplane.Seed
	dns     *dataplane.Pod
}

func run(ctx context.Context, manager string, packets bool) (err error) {
	step("Starting a local control plane (kube-apiserver v%s, etcd) with the ServiceGraph and Istio CRDs", testenv.KubernetesVersion)
	logFile, err := os.CreateTemp("", "servicegraph-demo-manager-*.log")
	if err != nil {
		return err
	}
	defer logFile.Close()
	d := &demo{}
	if packets {
		d.packets, err = dataplane.StartCluster(dataplane.InNode(), manager, logFile)
		if d.packets != nil {
			d.cluster = d.packets.Cluster
		}
	} else {
		d.cluster, err = testenv.StartCluster(true)
		if err == nil {
			_, err = d.cluster.StartManager(manager, logFile)
		}
	}
	if d.cluster != nil {
		defer func() {
			step("Stopping the operator, the enforcer and the control plane")
			var stopErr error
			if d.packets != nil {
				stopErr = d.packets.Stop()
			} else {
				stopErr = d.cluster.Stop()
			}
			if stopErr != nil && err == nil {
				err = stopErr
			}
		}()
	}
	if err != nil {
		return err
	}
	step("The operator runs (log: %s)", logFile.Name())
	if err := d.kubectl(ctx, "The CRD is served", "get", "crd", "servicegraphs.policy.servicegraph.io"); err != nil {
		return err
	}
	if err := d.createPods(ctx); err != nil {
		return err
	}
	if err := d.matrix(ctx, "Connectivity before the graph: nothing is refused"); err != nil {
		return err
	}
	sample := filepath.Join(testenv.Root(), "config", "samples")
	steps := []struct {
		title string
		args  []string
	}{
		{"Applying the sample ServiceGraph", []string{"apply", "--server-side", "-k", sample}},
		{"Waiting for Ready", []string{"wait", "--for=condition=Ready", "servicegraph/shop", "-n", "shop", "--timeout=60s"}},
		{"kubectl get servicegraphs", []string{"get", "servicegraphs", "-n", "shop"}},
		{"kubectl get servicegraphs -o wide", []string{"get", "servicegraphs", "-n", "shop", "-o", "wide"}},
		{"The API documentation", []string{"explain", "servicegraph.spec.edges"}},
		{"Generated policies", []string{"get", "networkpolicies,peerauthentications,authorizationpolicies", "-n", "shop", "-L", "policy.servicegraph.io/service"}},
		{"The ServiceGraph's status", []string{"describe", "servicegraph", "shop", "-n", "shop"}},
		{"The api service's NetworkPolicy", []string{"get", "networkpolicy", "shop-svc-api", "-n", "shop", "-o", "yaml"}},
		{"The database's AuthorizationPolicy", []string{"get", "authorizationpolicy", "shop-svc-database", "-n", "shop", "-o", "yaml"}},
	}
	for _, s := range steps {
		if err := d.kubectl(ctx, s.title, s.args...); err != nil {
			return err
		}
	}
	if err := d.matrix(ctx, "Connectivity after the graph: web→api:8080 and api→database:5432 connect, DNS works, the rest is refused"); err != nil {
		return err
	}
	if err := d.check("Why is web refused when it calls database, and why may api? (kubectl servicegraph check)",
		[]string{"web", "database:5432/data"}, []string{"api", "database:5432/data"}); err != nil {
		return err
	}
	if err := d.kubectl(ctx, "Deleting default-deny by hand", "delete", "networkpolicy", "shop-default-deny", "-n", "shop"); err != nil {
		return err
	}
	step("Waiting for the operator to restore it")
	if err := waitFor(ctx, func() bool {
		_, err := d.cluster.Kubectl(ctx, "get", "networkpolicy", "shop-default-deny", "-n", "shop")
		return err == nil
	}); err != nil {
		return err
	}
	return d.kubectl(ctx, "Restored, and recorded as an event", "get", "events", "-n", "shop",
		"--field-selector", "reason=DriftCorrected", "-o", "custom-columns=REASON:.reason,MESSAGE:.message")
}

// createPods makes a pod per service: with real packets, pods that answer on 8080, 5432 and 7777,
// kube-dns, an intruder in another namespace, and the enforcer; otherwise Pending pods (no kubelet
// runs here), which the operator sees all the same.
func (d *demo) createPods(ctx context.Context) error {
	if d.packets == nil {
		for _, args := range [][]string{
			{"create", "namespace", "shop"},
			{"run", "web-1", "-n", "shop", "--image=registry.example/web", "--labels=app=web", "--annotations=sidecar.istio.io/status={}"},
			{"run", "api-1", "-n", "shop", "--image=registry.example/api", "--labels=app=api", "--annotations=sidecar.istio.io/status={}"},
			{"run", "database-1", "-n", "shop", "--image=registry.example/postgres", "--labels=app=database", "--annotations=sidecar.istio.io/status={}"},
		} {
			if err := d.kubectl(ctx, "", args...); err != nil {
				return err
			}
		}
		return nil
	}
	step("Pods web, api and database in namespace shop, an intruder in shop-elsewhere, kube-dns; each in a network namespace of its own")
	d.seed = dataplane.NewSeed("shop")
	d.dns = dataplane.SystemPods()[0]
	if err := d.packets.AddPods(ctx, append(d.seed.Pods(), d.dns)...); err != nil {
		return err
	}
	if err := d.kubectl(ctx, "", "get", "pods", "-A", "-o", "wide"); err != nil {
		return err
	}
	bins, err := dataplane.FindBinaries()
	if err != nil {
		return err
	}
	kernel, err := dataplane.ProbeKernel(bins.Probe)
	if err != nil {
		return err
	}
	log, err := os.CreateTemp("", "servicegraph-demo-enforcer-*.log")
	if err != nil {
		return err
	}
	step("Starting the NetworkPolicy enforcer, kube-network-policies (log: %s): %s", log.Name(), kernel.Describe())
	_, err = d.packets.StartEnforcer(ctx, bins.Enforcer, 2, log)
	return err
}

// matrix tries every pod against every port of every other pod, as `kubectl exec POD -- curl`
// would, and prints the verdicts.
func (d *demo) matrix(ctx context.Context, title string) error {
	if d.packets == nil {
		return nil
	}
	step("%s", title)
	probes := dataplane.MatrixProbes(append(d.seed.Pods(), d.dns), func(_, _ *dataplane.Pod, _ dataplane.Port) bool { return true })
	results := dataplane.Run(probes)
	out, err := d.packets.Matrix(ctx, results)
	fmt.Print(out)
	return err
}

// check runs the servicegraph CLI's check against the cluster, as `kubectl servicegraph check`
// does, for each connection; a denied one is an answer, not a failure.
func (d *demo) check(title string, connections ...[]string) error {
	step("%s", title)
	for _, c := range connections {
		args := append([]string{"check"}, append(c, "-n", "shop", "--kubeconfig", d.cluster.Kubeconfig)...)
		fmt.Printf("$ kubectl servicegraph check %s -n shop\n", strings.Join(c, " "))
		if code := cli.Main(args, os.Stdin, os.Stdout, os.Stderr); code != cli.ExitAllowed && code != cli.ExitDenied {
			return fmt.Errorf("servicegraph check %v: exit %d", c, code)
		}
	}
	return nil
}

func (d *demo) kubectl(ctx context.Context, title string, args ...string) error {
	if title != "" {
		step("%s", title)
	}
	fmt.Printf("$ kubectl %s\n", strings.Join(args, " "))
	out, err := d.cluster.Kubectl(ctx, args...)
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
