package cli

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/servicegraph/servicegraph-operator/internal/compiler"
	"github.com/servicegraph/servicegraph-operator/internal/graph"
	"github.com/servicegraph/servicegraph-operator/internal/render"
)

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func runCompile(e *env, args []string) int {
	fs := flag.NewFlagSet("compile", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	var files stringList
	opts := compiler.DefaultOptions()
	fs.Var(&files, "f", "a ServiceGraph manifest: FILE, DIR (*.yaml, *.yml, *.json below it) or - for standard input; repeatable")
	fs.BoolVar(&opts.Istio, "istio", opts.Istio, "generate the Istio PeerAuthentication and AuthorizationPolicies and allow egress to istiod")
	fs.StringVar(&opts.TrustDomain, "trust-domain", opts.TrustDomain, "the mesh's trust domain, used in AuthorizationPolicy principals")
	output := fs.String("o", "yaml", "output format: yaml (a multi-document stream) or json (a v1 List)")
	fs.Usage = func() {
		fmt.Fprintln(e.stderr, "Usage: servicegraph compile -f FILE|DIR|- [-f ...] [flags]")
		fmt.Fprintln(e.stderr, "\nPrints the objects the operator applies for each ServiceGraph, in apply order, graphs sorted")
		fmt.Fprintln(e.stderr, "by namespace and name. Invalid input prints every error and exits 1, printing nothing else.")
		fmt.Fprintln(e.stderr, "The operator adds an ownerReference to each object; the output has none.")
		fmt.Fprintln(e.stderr, "\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		return ExitUsage
	}
	printer := map[string]func([]client.Object) ([]byte, error){"yaml": render.YAML, "json": render.JSON}[*output]
	switch {
	case fs.NArg() > 0:
		return usageError(e, fs, "unexpected argument %q", fs.Arg(0))
	case len(files) == 0:
		return usageError(e, fs, "-f is required")
	case printer == nil:
		return usageError(e, fs, "-o must be yaml or json, not %q", *output)
	}

	objs, errs := compileFiles(files, e.stdin, opts)
	if len(errs) > 0 {
		for _, err := range errs {
			fmt.Fprintln(e.stderr, err)
		}
		return ExitInvalid
	}
	out, err := printer(objs)
	if err != nil {
		fmt.Fprintln(e.stderr, err)
		return ExitInvalid
	}
	if _, err := e.stdout.Write(out); err != nil {
		fmt.Fprintln(e.stderr, err)
		return ExitInvalid
	}
	return ExitOK
}

func usageError(e *env, fs *flag.FlagSet, format string, args ...any) int {
	fmt.Fprintf(e.stderr, "servicegraph compile: "+format+"\n", args...)
	fs.Usage()
	return ExitUsage
}

// compileFiles compiles every graph of the inputs and returns their objects, graphs sorted by
// namespace and name, each graph's objects in apply order; or every error, each naming the file,
// the graph and the edge.
func compileFiles(files []string, stdin io.Reader, opts compiler.Options) ([]client.Object, []error) {
	docs, errs := readGraphs(files, stdin)
	if len(docs) == 0 && len(errs) == 0 {
		return nil, []error{fmt.Errorf("no ServiceGraph found in %s", strings.Join(files, ", "))}
	}
	slices.SortStableFunc(docs, func(a, b document) int {
		return cmp.Or(cmp.Compare(a.graph.Namespace, b.graph.Namespace), cmp.Compare(a.graph.Name, b.graph.Name))
	})
	var objs []client.Object
	for i, d := range docs {
		if i > 0 && d.graph.Namespace == docs[i-1].graph.Namespace && d.graph.Name == docs[i-1].graph.Name {
			errs = append(errs, fmt.Errorf("%s: also defined in %s", d, docs[i-1].file))
			continue
		}
		res, err := compiler.Compile(d.graph, opts)
		var list graph.ErrorList
		switch {
		case errors.As(err, &list):
			for _, e := range list {
				errs = append(errs, fmt.Errorf("%s: %w", d, e))
			}
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: %w", d, err))
		default:
			objs = append(objs, res.Objects()...)
		}
	}
	return objs, errs
}
