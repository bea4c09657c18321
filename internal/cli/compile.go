package cli

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/servicegraph/servicegraph-operator/internal/object"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/compiler"
	"github.com/servicegraph/servicegraph-operator/internal/graph"
	"github.com/servicegraph/servicegraph-operator/internal/lint"
	"github.com/servicegraph/servicegraph-operator/internal/render"
)

func runCompile(e *env, args []string) int {
	fs, in := newFlagSet(e, "compile", "-f FILE|DIR|- [-f ...] [flags]",
		"Prints the objects the operator applies for each ServiceGraph, in apply order, graphs sorted\n"+
			"by namespace and name. Invalid input prints every error and exits 1, printing nothing else.\n"+
			"The operator adds an ownerReference to each object; the output has none.")
	opts := compiler.DefaultOptions()
	istio := true
	fs.BoolVar(&istio, "istio", istio, "generate the Istio PeerAuthentication and AuthorizationPolicies and allow egress to istiod")
	fs.StringVar(&opts.TrustDomain, "trust-domain", opts.TrustDomain, "the mesh's trust domain, used in AuthorizationPolicy principals")
	var output string
	fs.StringVar(&output, "o", "yaml", "output format: yaml (a multi-document stream) or json (a v1 List)")
	fs.StringVar(&output, "output", "yaml", "the long form of -o")
	if code, ok := parseFlags(e, fs, args, in); !ok {
		return code
	}
	printer := map[string]func(io.Writer, []object.Object) error{"yaml": render.WriteYAML, "json": writeJSON}[output]
	if printer == nil {
		return usageError(e, fs, "-o must be yaml or json, not %q", output)
	}

	var facts compiler.Facts
	if !istio {
		facts.Missing = compiler.Builtin().KindsOf(compiler.LayerIstio)
	}
	objs, errs := compileFiles(in, e.stdin, opts, facts)
	if len(errs) > 0 {
		printErrors(e, errs)
		return ExitInvalid
	}
	if err := printer(e.stdout, objs); err != nil { // nothing printed, or stdout failed
		printErrors(e, []error{err})
		return ExitInvalid
	}
	return ExitOK
}

func writeJSON(w io.Writer, objs []object.Object) error {
	out, err := render.JSON(objs)
	if err == nil {
		_, err = w.Write(out)
	}
	return err
}

// compileFiles compiles every graph of the inputs and returns their objects, graphs sorted by
// namespace and name, each graph's objects in apply order; or every error, each naming the file,
// the graph and the edge.
func compileFiles(in *input, stdin io.Reader, opts compiler.Options, facts compiler.Facts) ([]object.Object, []error) {
	var objs []object.Object
	errs := eachGraph(in, stdin, func(sg *v1alpha1.ServiceGraph) error {
		res, err := compiler.Compile(sg, opts, facts)
		if err == nil {
			objs = append(objs, res.Objects()...)
		}
		return err
	})
	return objs, errs
}

// eachGraph reads the graphs of the inputs and calls fn on each, sorted by namespace and name. It
// returns every error: unreadable input, no graph at all, a graph defined twice, and what fn
// returns, each naming the file and the graph (a graph.ErrorList gives one error per problem).
func eachGraph(in *input, stdin io.Reader, fn func(*v1alpha1.ServiceGraph) error) []error {
	docs, _, problems := readDocuments(in, stdin, graphKinds)
	errs := errorsOf(problems)
	if len(docs) == 0 && len(errs) == 0 {
		return []error{fmt.Errorf("no ServiceGraph found in %s", strings.Join(in.files, ", "))}
	}
	slices.SortStableFunc(docs, func(a, b document) int {
		return cmp.Or(cmp.Compare(a.obj.GetNamespace(), b.obj.GetNamespace()), cmp.Compare(a.obj.GetName(), b.obj.GetName()))
	})
	first := map[string]document{} // the first graph of each namespace
	for i, d := range docs {
		if i > 0 && d.obj.GetNamespace() == docs[i-1].obj.GetNamespace() && d.obj.GetName() == docs[i-1].obj.GetName() {
			errs = append(errs, fmt.Errorf("%s: also defined in %s", d, docs[i-1].file))
			continue
		}
		if f, ok := first[d.obj.GetNamespace()]; ok {
			errs = append(errs, fmt.Errorf("%s: %w", d, lint.OneGraphPerNamespace(f.obj.GetName(), f.file)))
		} else {
			first[d.obj.GetNamespace()] = d
		}
		err := fn(d.graph())
		var list graph.ErrorList
		switch {
		case errors.As(err, &list):
			for _, e := range list {
				errs = append(errs, fmt.Errorf("%s: %w", d, e))
			}
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: %w", d, err))
		}
	}
	return errs
}
