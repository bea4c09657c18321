package dataplane

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/servicegraph/servicegraph-operator/test/testenv"
)

// envPrefix tells the program re-run inside the node namespace which run it belongs to.
const envPrefix = "SERVICEGRAPH_DATAPLANE_RUN"

// RunInNode sets up a run's namespaces, runs this program again inside the node namespace with the
// same arguments, forwards SIGINT and SIGTERM to it, tears everything down when it ends (Ctrl-C
// included) and returns its exit code.
func RunInNode() (int, error) {
	self, err := os.Executable()
	if err != nil {
		return 0, err
	}
	t, err := Setup()
	if err != nil {
		return 0, err
	}
	defer func() { _ = t.Teardown() }()
	cmd := exec.Command("ip", append([]string{"netns", "exec", t.Node, self}, os.Args[1:]...)...)
	cmd.Env = append(os.Environ(), envPrefix+"="+t.Prefix)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(signals)
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	go func() {
		for s := range signals {
			_ = cmd.Process.Signal(s)
		}
	}()
	err = cmd.Wait()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), nil
	}
	return 0, err
}

// InNode returns the run's topology when the program runs inside its node namespace (re-run by
// RunInNode), nil otherwise.
func InNode() *Topology {
	prefix := os.Getenv(envPrefix)
	if prefix == "" {
		return nil
	}
	t := &Topology{Prefix: prefix, Node: prefix + "-node"}
	for i := 1; i <= SlotCount; i++ {
		t.Slots = append(t.Slots, Slot{Netns: fmt.Sprintf("%s-p%d", prefix, i), IP: fmt.Sprintf("10.244.%d.10", i), Gateway: fmt.Sprintf("10.244.%d.1", i)})
	}
	return t
}

// knpVersion is the kube-network-policies release hack/tools/knp/go.mod pins.
func knpVersion() (string, error) {
	data, err := os.ReadFile(filepath.Join(testenv.Root(), "hack", "tools", "knp", "go.mod"))
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "sigs.k8s.io/kube-network-policies" {
			return f[1], nil
		}
	}
	return "", errors.New("hack/tools/knp/go.mod requires no sigs.k8s.io/kube-network-policies")
}

// Binaries are the enforcer builds and the kernel probe (`make knp` builds them).
type Binaries struct {
	// Enforcer is kube-network-policies adapted to kernels without NFT_QUEUE; Upstream is it
	// exactly as released.
	Enforcer, Upstream, Probe string
}

// FindBinaries locates the builds under bin/.
func FindBinaries() (Binaries, error) {
	version, err := knpVersion()
	if err != nil {
		return Binaries{}, err
	}
	dir := filepath.Join(testenv.Root(), "bin", "knp", version)
	b := Binaries{
		Enforcer: filepath.Join(dir, "kube-network-policies"),
		Upstream: filepath.Join(dir, "kube-network-policies-upstream"),
		Probe:    filepath.Join(dir, "nfprobe"),
	}
	for _, f := range []string{b.Enforcer, b.Upstream, b.Probe} {
		if _, err := os.Stat(f); err != nil {
			return b, fmt.Errorf("%s is missing: run `make knp` (builds kube-network-policies %s from the Go module proxy)", f, version)
		}
	}
	return b, nil
}

// Kernel is what the kernel offers for queueing packets to user space from nftables.
type Kernel struct {
	NFTables           bool   `json:"nftables"`
	NFTablesError      string `json:"nftablesError"`
	NativeQueue        bool   `json:"nativeQueue"`
	NativeQueueError   string `json:"nativeQueueError"`
	CompatNFQUEUE      bool   `json:"compatNFQUEUE"`
	CompatNFQUEUEError string `json:"compatNFQUEUEError"`
}

// ProbeKernel runs the probe (in a throwaway network namespace of its own) and fails with one
// clear message when the enforcer cannot work on this kernel.
func ProbeKernel(probe string) (Kernel, error) {
	var k Kernel
	out, err := exec.Command(probe).Output()
	if jerr := json.Unmarshal(out, &k); jerr != nil {
		return k, fmt.Errorf("kernel probe %s: %w (%v)", probe, jerr, err)
	}
	switch {
	case !k.NFTables:
		return k, fmt.Errorf("this kernel offers no nftables (CONFIG_NF_TABLES, CONFIG_NF_TABLES_INET): %s", k.NFTablesError)
	case !k.NativeQueue && !k.CompatNFQUEUE:
		return k, fmt.Errorf("this kernel can queue no packet to user space: the nftables queue expression (CONFIG_NFT_QUEUE) is refused (%s) and so is the xtables NFQUEUE target through nft_compat (CONFIG_NFT_COMPAT, CONFIG_NETFILTER_XT_TARGET_NFQUEUE, CONFIG_NETFILTER_NETLINK_QUEUE: %s)",
			k.NativeQueueError, k.CompatNFQUEUEError)
	}
	return k, nil
}

// Describe says how the enforcer queues packets on this kernel.
func (k Kernel) Describe() string {
	if k.NativeQueue {
		return "the kernel has the nftables queue expression (NFT_QUEUE): the enforcer runs as released"
	}
	return "the kernel refuses the nftables queue expression (" + strings.TrimSpace(k.NativeQueueError) +
		"): the enforcer queues through the xtables NFQUEUE target (nft_compat), adapted at build time"
}
