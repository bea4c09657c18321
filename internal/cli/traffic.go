package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/common/model"

	"github.com/servicegraph/servicegraph-operator/internal/graph"
	"github.com/servicegraph/servicegraph-operator/internal/traffic"
)

// Exit statuses of audit: a CI gate reads them.
const (
	ExitCovered = 0
	ExitRefused = 1
	ExitNoData  = 2
)

// trafficFlags are the flags that name where traffic is read from (one per kind of source) and
// the window.
type trafficFlags struct {
	sources map[string]*string
	since   string
	opts    traffic.SourceOptions
}

func addTrafficFlags(fs *flag.FlagSet, defaultSince string) *trafficFlags {
	t := &trafficFlags{sources: map[string]*string{}}
	for _, k := range traffic.Sources {
		t.sources[k.Flag] = fs.String(k.Flag, "", k.Usage)
	}
	fs.StringVar(&t.since, "since", defaultSince, "how far back to look (30m, 24h, 7d)")
	fs.StringVar(&t.opts.BearerTokenFile, "token-file", "", "a file holding the bearer token for an HTTP source (Prometheus)")
	fs.StringVar(&t.opts.CAFile, "ca-file", "", "a PEM file of the CA that signed an HTTPS source's certificate")
	return t
}

// flows reads every source named on the command line; false when none is.
func (t *trafficFlags) flows(ctx context.Context, e *env, namespaces []string) ([]traffic.Flow, bool, error) {
	t.opts.Stdin, t.opts.Warn = e.stdin, e.stderr
	window, err := model.ParseDuration(t.since)
	if err != nil {
		return nil, true, fmt.Errorf("--since %q: %w", t.since, err)
	}
	t.opts.Window = time.Duration(window)
	var all []traffic.Flow
	named := false
	for _, k := range traffic.Sources {
		arg := *t.sources[k.Flag]
		if arg == "" {
			continue
		}
		named = true
		src, err := k.Open(arg, t.opts)
		if err != nil {
			return nil, true, fmt.Errorf("--%s: %w", k.Flag, err)
		}
		flows, err := src.Flows(ctx, namespaces)
		if err != nil {
			return nil, true, fmt.Errorf("--%s: %w", k.Flag, err)
		}
		all = append(all, flows...)
	}
	return all, named, nil
}

func sourceFlagList() string {
	var names []string
	for _, k := range traffic.Sources {
		names = append(names, "--"+k.Flag)
	}
	return strings.Join(names, " | ")
}

func runDiscover(e *env, args []string) int {
	fs, in := newFlagSet(e, "discover", "("+sourceFlagList()+") -n NAMESPACE[,NAMESPACE...] [--since 7d] [-f MANIFESTS...] [--base GRAPH]",
		"Proposes, for each namespace, the ServiceGraph its observed traffic implies: a service per workload\n"+
			"that sent or received traffic (its pods' labels and ServiceAccount), peers of other namespaces,\n"+
			"external peers for identified namespaces and addresses, and an edge per connection with its port\n"+
			"(observed, or what the destination's Service says; several ports are listed and marked ambiguous,\n"+
			"never silently widened) and HTTP paths and methods when the source saw them. Each edge carries its\n"+
			"evidence as a comment; an unknown caller is a TODO, never an invented allow. The workloads and\n"+
			"Services come from -f, else from the current kubeconfig. With --base, only what the existing graph\n"+
			"does not allow is proposed (compare them with servicegraph diff).")
	tf := addTrafficFlags(fs, "7d")
	base := fs.String("base", "", "an existing ServiceGraph: propose only the connections it does not allow, added to it")
	kubeconfig := fs.String("kubeconfig", "", "read the workloads and Services from this cluster (default: $KUBECONFIG) when -f is not given")
	if err := fs.Parse(args); err != nil {
		return map[bool]int{true: ExitOK, false: ExitUsage}[errors.Is(err, flag.ErrHelp)]
	}
	namespaces := splitList(in.namespace)
	if len(namespaces) == 0 {
		return usageError(e, fs, "-n NAMESPACE is required")
	}
	in.namesOnly = true
	w, err := trafficWorld(e, in, namespaces, *kubeconfig)
	if err != nil {
		printErrors(e, []error{err})
		return ExitUsage
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	flows, named, err := tf.flows(ctx, e, namespaces)
	switch {
	case !named:
		return usageError(e, fs, "name a traffic source: %s", sourceFlagList())
	case err != nil:
		printErrors(e, []error{err})
		return ExitNoData
	}
	proposals := traffic.Discover(flows, w.inventory(), namespaces, time.Now())
	if *base != "" {
		if err := keepMissing(e, proposals, *base); err != nil {
			printErrors(e, []error{err})
			return ExitUsage
		}
	}
	written := 0
	for _, p := range proposals {
		if p.Empty() {
			// No graph rather than one that does not compile: the TODOs say what was seen.
			fmt.Fprintf(e.stderr, "servicegraph discover: no connection of namespace %s in the window (--since %s) to propose a graph from\n", p.Namespace, tf.since)
			for _, todo := range p.TODO {
				fmt.Fprintf(e.stderr, "  TODO: %s\n", todo)
			}
			continue
		}
		if written > 0 {
			fmt.Fprintln(e.stdout, "---")
		}
		if _, err := e.stdout.Write(p.Write()); err != nil {
			return ExitUsage
		}
		written++
	}
	if written == 0 {
		return ExitNoData
	}
	return ExitOK
}

func runAudit(e *env, args []string) int {
	fs, in := newFlagSet(e, "audit", "-f GRAPH [-f MANIFESTS...] ("+sourceFlagList()+") [--since 24h] [-o text|markdown|json|html]",
		"Judges every observed connection of the window with the evaluator behind check, the graphs of the\n"+
			"files compiled as Enforce would apply them: the connections they would refuse (layer, deciding\n"+
			"object, count, last seen), the plain-text callers STRICT mutual TLS would cut, and the declared\n"+
			"edges no traffic used (candidates to remove). The workloads and Services come from -f, else from the\n"+
			"current kubeconfig (its policies too, but those the files' graphs replace). Exits 0 when nothing\n"+
			"observed would be refused, 1 when something would, 2 when there is not enough data (the source\n"+
			"unreachable, no traffic in the window).")
	tf := addTrafficFlags(fs, "24h")
	output := fs.String("o", "text", "output format: text, markdown, json or html (one self-contained page drawing the graph with the observed traffic on it)")
	kubeconfig := fs.String("kubeconfig", "", "read the workloads and Services from this cluster (default: $KUBECONFIG) when -f names none")
	if code, ok := parseFlags(e, fs, args, in); !ok {
		return code
	}
	format, ok := auditFormats[*output]
	if !ok {
		return usageError(e, fs, "-o must be text, markdown, json or html, not %q", *output)
	}
	in.namesOnly, in.enforce = true, true
	w, err := trafficWorld(e, in, nil, *kubeconfig)
	if err != nil {
		printErrors(e, []error{err})
		return ExitNoData
	}
	var graphs []*graph.Graph
	var namespaces []string
	for _, sg := range w.graphs {
		if g, err := graph.Build(sg); err == nil {
			graphs = append(graphs, g)
			namespaces = append(namespaces, g.Namespace)
		}
	}
	if len(graphs) == 0 {
		return usageError(e, fs, "no ServiceGraph in the files")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	flows, named, err := tf.flows(ctx, e, namespaces)
	switch {
	case !named:
		return usageError(e, fs, "name a traffic source: %s", sourceFlagList())
	case err != nil:
		printErrors(e, []error{err})
		return ExitNoData
	}
	report := traffic.Audit(flows, w.inventory(), w.cluster, graphs)
	if _, err := e.stdout.Write(format(report)); err != nil {
		return ExitUsage
	}
	switch {
	case report.Flows == 0:
		fmt.Fprintf(e.stderr, "servicegraph audit: no traffic of the graphs' namespaces in the window (--since %s)\n", tf.since)
		return ExitNoData
	case !report.Covered():
		return ExitRefused
	}
	return ExitCovered
}

// auditFormats print an audit report.
var auditFormats = map[string]func(*traffic.Report) []byte{
	"text":     (*traffic.Report).Text,
	"markdown": (*traffic.Report).Markdown,
	"json":     (*traffic.Report).JSON,
	"html":     (*traffic.Report).HTML,
}

func splitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}
