package cli

import (
	"bytes"
	"cmp"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"

	"github.com/servicegraph/servicegraph-operator/internal/eval"
)

func runDiff(e *env, args []string) int {
	fs := flag.NewFlagSet("diff", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	format := fs.String("format", "text", "text, markdown (a table for a pull-request comment) or json")
	baseRef := fs.String("base-ref", "", "compare PATH at this git revision (OLD) with PATH in the working tree (NEW)")
	fs.Usage = func() {
		fmt.Fprint(e.stderr, "Usage: servicegraph diff OLD NEW [--format text|markdown|json]\n"+
			"       servicegraph diff --base-ref REF PATH [--format ...]\n\n"+
			"Compiles the graphs of OLD and NEW (files or directories, with the hand-written policies and\n"+
			"workloads beside them) and prints the connections that open and close, and in which layer: L4\n"+
			"(NetworkPolicies and Cilium's policies), mTLS and authorization. Exits 0 whether or not anything changes, 1 on input\n"+
			"that does not compile, 2 on a wrong command line.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	paths, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return ExitOK
	}
	if err != nil {
		return ExitUsage
	}
	render := diffFormats[*format]
	if render == nil {
		return usageError(e, fs, "--format must be text, markdown or json, not %q", *format)
	}
	if *baseRef != "" {
		if len(paths) != 1 {
			return usageError(e, fs, "--base-ref takes one PATH")
		}
		old, cleanup, err := checkout(*baseRef, paths[0])
		if err != nil {
			printErrors(e, []error{err})
			return ExitInvalid
		}
		defer cleanup()
		paths = []string{old, paths[0]}
	}
	if len(paths) != 2 {
		return usageError(e, fs, "want OLD and NEW, got %d arguments", len(paths))
	}
	before, err := offlineWorld(&input{files: stringList{paths[0]}, namesOnly: true}, e.stdin)
	if err != nil {
		printErrors(e, []error{fmt.Errorf("OLD: %w", err)})
		return ExitInvalid
	}
	after, err := offlineWorld(&input{files: stringList{paths[1]}, namesOnly: true}, e.stdin)
	if err != nil {
		printErrors(e, []error{fmt.Errorf("NEW: %w", err)})
		return ExitInvalid
	}
	return write(e, render(connectivityDiff(before, after)), ExitOK)
}

// checkout writes PATH as it is at a git revision into a temporary directory, and returns its path
// there.
func checkout(ref, path string) (_ string, _ func(), err error) {
	dir, err := os.MkdirTemp("", "servicegraph-diff-")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { _ = os.RemoveAll(dir) }
	defer func() {
		if err != nil { // every failure below leaves nothing behind
			cleanup()
		}
	}()
	top, err := gitOutput("", "rev-parse", "--show-toplevel")
	if err != nil {
		return "", nil, err
	}
	top = strings.TrimSpace(top)
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", nil, err
	}
	rel, err := filepath.Rel(top, abs)
	if err != nil {
		return "", nil, err
	}
	archive := exec.Command("git", "archive", "--format=tar", ref, "--", filepath.ToSlash(rel))
	archive.Dir = top
	untar := exec.Command("tar", "-x", "-C", dir)
	var stderr bytes.Buffer
	archive.Stderr = &stderr
	if untar.Stdin, err = archive.StdoutPipe(); err != nil {
		return "", nil, err
	}
	if err = untar.Start(); err != nil {
		return "", nil, err
	}
	if err = archive.Run(); err != nil {
		return "", nil, fmt.Errorf("git archive %s -- %s: %w: %s", ref, rel, err, strings.TrimSpace(stderr.String()))
	}
	if err = untar.Wait(); err != nil {
		return "", nil, err
	}
	return filepath.Join(dir, rel), cleanup, nil
}

func gitOutput(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s: %w", strings.Join(args, " "), err)
	}
	return string(out), nil
}

// change is a connection whose verdict differs end to end or in one layer at least.
type change struct {
	Connection string `json:"connection"`
	From       string `json:"from"`
	To         string `json:"to"`
	Protocol   string `json:"protocol"`
	Port       int32  `json:"port"`
	Path       string `json:"path,omitempty"`
	EndToEnd   flip   `json:"endToEnd"`
	// Layers are the layers as a reviewer reads them, by key: l4 (both NetworkPolicy directions), mtls
	// and authorization; a layer that changes while another still denies is defence in depth won
	// or lost.
	Layers map[string]flip `json:"layers"`
}

// flip is a verdict before and after.
type flip struct {
	Before bool `json:"before"`
	After  bool `json:"after"`
}

func (f flip) String() string {
	switch {
	case f.Before == f.After:
		return map[bool]string{true: "allowed", false: "denied"}[f.After]
	case f.After:
		return "opens"
	default:
		return "closes"
	}
}

// probe is one connection both worlds are asked about.
type probe struct {
	from, to *eval.Workload
	port     int32
	protocol corev1.Protocol
	http     *eval.HTTP
}

func (p probe) String() string {
	s := fmt.Sprintf("%s -> %s %s/%d", p.from, p.to, p.protocol, p.port)
	if p.http != nil {
		s += " " + p.http.Path
	}
	return s
}

// connectivityDiff evaluates every connection between the workloads of either world (a workload
// only one world has is asked about in both: what would the other world do with it), and from them
// to the hosts Cilium's toFQDNs rules name, on every port a policy or a container of either names,
// with the paths HTTP rules name, and lists those whose verdict changed in any layer.
func connectivityDiff(before, after *World) []change {
	workloads := map[string]*eval.Workload{}
	for _, w := range append(slices.Clone(before.workloads), after.workloads...) {
		workloads[w.String()] = w
	}
	var all []*eval.Workload
	for _, k := range slices.Sorted(maps.Keys(workloads)) {
		all = append(all, workloads[k])
	}
	targets := probedPorts(all, before.cluster, after.cluster)
	destinations := append(slices.Clone(all), ciliumHosts(before.cluster, after.cluster)...)
	var out []change
	for _, from := range all {
		for _, to := range destinations {
			if from == to {
				continue
			}
			for _, t := range targets {
				p := probe{from: from, to: to, port: t.port, protocol: t.protocol, http: t.http}
				req := eval.Request{From: eval.Endpoint{Workload: from, IP: from.IP}, To: to, Port: p.port, Protocol: p.protocol, HTTP: p.http}
				a, b := before.cluster.Check(req), after.cluster.Check(req)
				c := change{Connection: p.String(), From: from.String(), To: to.String(), Protocol: string(p.protocol), Port: p.port, EndToEnd: flip{a.Allowed, b.Allowed}, Layers: map[string]flip{}}
				changed := a.Allowed != b.Allowed
				for _, l := range eval.LayerGroups {
					f := flip{a.Allows(l.Layers...), b.Allows(l.Layers...)}
					c.Layers[layerKey(l)] = f
					changed = changed || f.Before != f.After
				}
				if p.http != nil {
					c.Path = p.http.Path
				}
				if changed {
					out = append(out, c)
				}
			}
		}
	}
	return out
}

// portTarget is a port to probe, with an HTTP path when a rule matches one.
type portTarget struct {
	port     int32
	protocol corev1.Protocol
	http     *eval.HTTP
}

// probedPorts lists the container ports of the workloads and the numbered ports the
// NetworkPolicies, Cilium's policies and AuthorizationPolicies of both clusters name, each as a
// plain connection and, for every path an ALLOW or DENY rule or a Cilium HTTP rule names on it, as
// an HTTP request on that path.
func probedPorts(workloads []*eval.Workload, clusters ...*eval.Cluster) []portTarget {
	seen := map[string]portTarget{}
	add := func(t portTarget) {
		key := fmt.Sprintf("%s/%05d", t.protocol, t.port)
		if t.http != nil {
			key += " " + t.http.Path
		}
		seen[key] = t
	}
	for _, w := range workloads {
		for _, p := range w.Ports {
			add(portTarget{port: p.ContainerPort, protocol: cmp.Or(p.Protocol, corev1.ProtocolTCP)})
		}
	}
	for _, c := range clusters {
		addCiliumPorts(c, add)
		for _, np := range c.NetworkPolicies {
			var ports []networkingv1.NetworkPolicyPort
			for _, r := range np.Spec.Ingress {
				ports = append(ports, r.Ports...)
			}
			for _, r := range np.Spec.Egress {
				ports = append(ports, r.Ports...)
			}
			for _, p := range ports {
				if p.Port != nil && p.Port.StrVal == "" {
					proto := corev1.ProtocolTCP
					if p.Protocol != nil {
						proto = *p.Protocol
					}
					add(portTarget{port: p.Port.IntVal, protocol: proto})
				}
			}
		}
		for _, ap := range c.AuthorizationPolicies {
			for _, r := range ap.Spec.GetRules() {
				for _, t := range r.GetTo() {
					for _, port := range t.GetOperation().GetPorts() {
						n, err := strconv.Atoi(port)
						if err != nil {
							continue
						}
						add(portTarget{port: int32(n), protocol: corev1.ProtocolTCP})
						for _, path := range t.GetOperation().GetPaths() {
							add(portTarget{port: int32(n), protocol: corev1.ProtocolTCP, http: &eval.HTTP{Path: eval.PathExample(path), Method: "GET"}})
						}
					}
				}
			}
		}
	}
	out := make([]portTarget, 0, len(seen))
	for _, k := range slices.Sorted(maps.Keys(seen)) {
		out = append(out, seen[k])
	}
	return out
}

var diffFormats = map[string]func([]change) []byte{
	"text": func(changes []change) []byte {
		if len(changes) == 0 {
			return []byte("no connectivity change\n")
		}
		var b bytes.Buffer
		w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprintln(w, "\tCONNECTION\tEND TO END\tL4\tMTLS\tAUTHORIZATION")
		for _, c := range sortedChanges(changes) {
			fmt.Fprintf(w, "%s\t%s\t%s\n", sign(c), c.Connection, strings.Join(columns(c), "\t"))
		}
		_ = w.Flush()
		return b.Bytes()
	},
	"markdown": func(changes []change) []byte {
		if len(changes) == 0 {
			return []byte("**servicegraph diff**: no connectivity change\n")
		}
		var b bytes.Buffer
		opened, closed := 0, 0
		for _, c := range changes {
			switch c.EndToEnd.String() {
			case "opens":
				opened++
			case "closes":
				closed++
			}
		}
		fmt.Fprintf(&b, "**servicegraph diff**: %d connection(s) open, %d close, %d change a layer but not the end result\n\n"+
			"| | connection | end to end | L4 (NetworkPolicy) | mTLS | authorization |\n| --- | --- | --- | --- | --- | --- |\n",
			opened, closed, len(changes)-opened-closed)
		for _, c := range sortedChanges(changes) {
			cells := columns(c)
			for i, cell := range cells {
				if cell == "opens" || cell == "closes" {
					cells[i] = "**" + cell + "**"
				}
			}
			fmt.Fprintf(&b, "| %s | `%s` | %s |\n", sign(c), c.Connection, strings.Join(cells, " | "))
		}
		return b.Bytes()
	},
	"json": func(changes []change) []byte {
		if changes == nil {
			changes = []change{}
		}
		out, _ := marshalJSON(struct {
			Changes []change `json:"changes"`
		}{sortedChanges(changes)})
		return out
	},
}

// layerKey names a diff column in JSON: l4, mtls, authorization.
func layerKey(l eval.LayerGroup) string { return strings.ToLower(l.Name) }

// sign marks a line: + opens end to end, - closes, ~ changes one layer only.
func sign(c change) string {
	return map[string]string{"opens": "+", "closes": "-"}[c.EndToEnd.String()] + map[bool]string{true: "~"}[c.EndToEnd.Before == c.EndToEnd.After]
}

func columns(c change) []string {
	out := []string{c.EndToEnd.String()}
	for _, l := range eval.LayerGroups {
		out = append(out, c.Layers[layerKey(l)].String())
	}
	return out
}

// sortedChanges lists what opens end to end, then what closes, then what changes one layer only,
// each by connection.
func sortedChanges(changes []change) []change {
	rank := map[string]int{"opens": 0, "closes": 1, "allowed": 2, "denied": 2}
	out := slices.Clone(changes)
	slices.SortFunc(out, func(a, b change) int {
		return cmp.Or(cmp.Compare(rank[a.EndToEnd.String()], rank[b.EndToEnd.String()]), cmp.Compare(a.Connection, b.Connection))
	})
	return out
}
