// Package dataplane runs the operator's policies on a real NetworkPolicy implementation and sends
// real packets through them. A "node" network namespace holds the test control plane, the
// operator and the enforcer (SIG-Network's kube-network-policies); each pod is a network namespace
// of its own, joined to the node by a veth pair. Nothing touches the machine's own network
// namespace: no address, route or firewall rule, and no route out of the namespaces the harness
// creates.
package dataplane

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
)

// Addresses inside the test's namespaces. The node's uplink is a veth pair with both ends in the
// node namespace: kube-apiserver needs a default route to pick its advertise address, and this one
// leads nowhere. Pod i has 10.244.i.10/32 behind the node's 10.244.i.1.
const (
	uplinkAddr = "10.250.0.1/24"
	uplinkPeer = "10.250.0.2"
	// SlotCount is how many pod namespaces a run prepares: the largest scenario's pods plus the
	// harness's own two (the prober and the canary).
	SlotCount = 32
)

// namePrefix names this run's namespaces after the process that owns them, so a later run can
// tell the leftovers of a killed run from namespaces in use.
const namePrefix = "sgdp"

// Topology is the namespaces of one run.
type Topology struct {
	Prefix string
	Node   string
	Slots  []Slot
}

// Slot is a pod's network namespace, prepared before any pod exists.
type Slot struct {
	Netns string
	IP    string
	// Gateway is the node's end of the pod's veth.
	Gateway string
}

// Setup creates the node namespace and the pod namespaces of a run owned by this process, after
// removing the leftovers of runs whose process is gone.
func Setup() (*Topology, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("the dataplane harness needs root (CAP_SYS_ADMIN to create network and mount namespaces, CAP_NET_ADMIN for veth pairs and nftables): run it as root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, errors.New("the dataplane harness needs the `ip` command (iproute2)")
	}
	removeStale()
	t := &Topology{Prefix: fmt.Sprintf("%s%d", namePrefix, os.Getpid())}
	t.Node = t.Prefix + "-node"
	err := t.create()
	if err != nil {
		return nil, errors.Join(err, t.Teardown())
	}
	return t, nil
}

func (t *Topology) create() error {
	node := t.Node
	steps := [][]string{
		{"netns", "add", node},
		{"-n", node, "link", "set", "lo", "up"},
		{"-n", node, "link", "add", "up0", "type", "veth", "peer", "name", "up1"},
		{"-n", node, "addr", "add", uplinkAddr, "dev", "up0"},
		{"-n", node, "link", "set", "up0", "up"},
		{"-n", node, "link", "set", "up1", "up"},
		{"-n", node, "route", "add", "default", "via", uplinkPeer},
	}
	if err := ipAll(steps); err != nil {
		return err
	}
	if err := run("ip", "netns", "exec", node, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"); err != nil {
		return fmt.Errorf("enabling forwarding in the node namespace: %w", err)
	}
	for i := 1; i <= SlotCount; i++ {
		s := Slot{Netns: fmt.Sprintf("%s-p%d", t.Prefix, i), IP: fmt.Sprintf("10.244.%d.10", i), Gateway: fmt.Sprintf("10.244.%d.1", i)}
		hostSide := fmt.Sprintf("v%d", i)
		err := ipAll([][]string{
			{"netns", "add", s.Netns},
			{"-n", s.Netns, "link", "set", "lo", "up"},
			{"-n", s.Netns, "link", "add", "eth0", "type", "veth", "peer", "name", hostSide, "netns", node},
			{"-n", s.Netns, "addr", "add", s.IP + "/32", "dev", "eth0"},
			{"-n", s.Netns, "link", "set", "eth0", "up"},
			{"-n", s.Netns, "route", "add", s.Gateway, "dev", "eth0", "scope", "link"},
			{"-n", s.Netns, "route", "add", "default", "via", s.Gateway, "dev", "eth0"},
			{"-n", node, "addr", "add", s.Gateway + "/32", "dev", hostSide},
			{"-n", node, "link", "set", hostSide, "up"},
			{"-n", node, "route", "add", s.IP + "/32", "dev", hostSide},
		})
		if err != nil {
			return err
		}
		t.Slots = append(t.Slots, s)
	}
	return nil
}

// Teardown deletes the run's namespaces; their veth pairs go with them.
func (t *Topology) Teardown() error {
	return deleteNamespaces(func(name string) bool { return strings.HasPrefix(name, t.Prefix+"-") })
}

// removeStale deletes the namespaces of earlier runs whose process no longer exists.
func removeStale() {
	_ = deleteNamespaces(func(name string) bool {
		owner, _, ok := strings.Cut(strings.TrimPrefix(name, namePrefix), "-")
		pid, err := strconv.Atoi(owner)
		return strings.HasPrefix(name, namePrefix) && ok && err == nil && syscall.Kill(pid, 0) == syscall.ESRCH
	})
}

func deleteNamespaces(match func(string) bool) error {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return err
	}
	var errs []error
	for _, line := range strings.Split(string(out), "\n") {
		if name, _, _ := strings.Cut(line, " "); name != "" && match(name) {
			errs = append(errs, run("ip", "netns", "delete", name))
		}
	}
	return errors.Join(errs...)
}

func ipAll(steps [][]string) error {
	for _, args := range steps {
		if err := run("ip", args...); err != nil {
			return err
		}
	}
	return nil
}

func run(name string, args ...string) error {
	var out bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}
