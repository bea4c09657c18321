package cli

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/lint"
	"github.com/servicegraph/servicegraph-operator/internal/object"
)

// stdinName names standard input in messages.
const stdinName = "<stdin>"

// document is an object read from a file.
type document struct {
	file string
	// line is where the object's YAML document starts (its first line that is not blank or a
	// comment), for findings to point at.
	line int
	obj  object.Object
}

func (d document) String() string {
	return fmt.Sprintf("%s: %s %s/%s", d.file, d.obj.GetObjectKind().GroupVersionKind().Kind, d.obj.GetNamespace(), d.obj.GetName())
}

// graph is the document's ServiceGraph, nil for another kind.
func (d document) graph() *v1alpha1.ServiceGraph {
	sg, _ := d.obj.(*v1alpha1.ServiceGraph)
	return sg
}

// input is what a command reads: the -f paths and the -n namespace.
type input struct {
	files     stringList
	namespace string
	// namesOnly makes -n name the namespace of names on the command line (check) and of objects
	// without one, and not refuse objects of other namespaces.
	namesOnly bool
	// enforce compiles graphs in Audit mode as Enforce would apply them (audit judges the policies
	// a promotion would bring).
	enforce bool
	// requireObjects makes a file or directory without an object (apiVersion and kind) a problem:
	// lint reports what it could not check, where other commands just find nothing there.
	requireObjects bool
}

// readDocuments reads every object of the given kinds in the given files, directories (every
// *.yaml, *.yml and *.json below, in lexical order) and "-" (standard input). Objects of other kinds
// are counted by kind in skipped. An object without a namespace gets -n's; without -n, a
// ServiceGraph is a problem (its namespace is in every principal it writes, and kubectl apply would
// use the context's, which the CLI cannot know) and other kinds get "default". Every file or
// document that cannot be read is a problem naming its file and line; the rest is still read. So is,
// with in.requireObjects, a file or directory with nothing to read.
func readDocuments(in *input, stdin io.Reader, want kinds) (docs []document, skipped map[string]int, problems []inputProblem) {
	skipped = map[string]int{}
	for _, p := range in.files {
		files, err := expand(p)
		if err != nil {
			problems = append(problems, inputProblem{file: p, err: err})
			continue
		}
		if len(files) == 0 && in.requireObjects {
			problems = append(problems, inputProblem{file: p, err: errors.New("nothing to lint: no *.yaml, *.yml or *.json file below it")})
		}
		for _, f := range files {
			data, err := readFile(f, stdin)
			if err != nil {
				problems = append(problems, inputProblem{file: displayName(f), err: err})
				continue
			}
			d, pr := decode(displayName(f), data, want, *in, skipped)
			docs, problems = append(docs, d...), append(problems, pr...)
		}
	}
	return docs, skipped, problems
}

// inputProblem is a file or a document that cannot be read as an object.
type inputProblem struct {
	file string
	// line is the file's line the problem is on (the document's first when nothing better is
	// known); 0 for a file that cannot be read at all.
	line int
	// problem says what kind of problem it is.
	problem lint.InputProblem
	// kind and name are the object's, when they could be read.
	kind, name string
	err        error
}

func (p inputProblem) Error() string {
	where := p.file
	if p.line > 0 {
		where = fmt.Sprintf("%s:%d", p.file, p.line)
	}
	if p.kind != "" {
		return fmt.Sprintf("%s: %s %s: %v", where, p.kind, p.name, p.err)
	}
	return fmt.Sprintf("%s: %v", where, p.err)
}

// errorsOf turns input problems into errors, for the commands that stop on them.
func errorsOf(problems []inputProblem) []error {
	out := make([]error, len(problems))
	for i, p := range problems {
		out[i] = p
	}
	return out
}

func displayName(f string) string {
	if f == "-" {
		return stdinName
	}
	return f
}

// expand turns a path into the files it names.
func expand(p string) ([]string, error) {
	if p == "-" {
		return []string{p}, nil
	}
	info, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if !info.IsDir() {
		return []string{p}, nil
	}
	var files []string
	err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch strings.ToLower(filepath.Ext(path)) {
		case ".yaml", ".yml", ".json":
			if !d.IsDir() {
				files = append(files, path)
			}
		}
		return nil
	})
	slices.Sort(files) // WalkDir is lexical already; sorting states the contract
	return files, err
}

func readFile(f string, stdin io.Reader) ([]byte, error) {
	if f != "-" {
		return os.ReadFile(f)
	}
	data, err := io.ReadAll(stdin)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", stdinName, err)
	}
	return data, nil
}

// setNamespace gives an object the namespace kubectl apply -n would, and refuses a mismatch as
// kubectl does.
func setNamespace(obj object.Object, in input) error {
	switch ns, namespace := obj.GetNamespace(), in.namespace; {
	case ns != "" && namespace != "" && ns != namespace && !in.namesOnly:
		return fmt.Errorf("the namespace of the object, %q, does not match the namespace %q given with -n", ns, namespace)
	case ns != "":
	case namespace != "":
		obj.SetNamespace(namespace)
	case obj.GetObjectKind().GroupVersionKind().Kind == "ServiceGraph":
		return errors.New("no metadata.namespace, and no -n: the namespace is in every principal and policy the graph makes, so say which (kubectl apply would use its context's)")
	default:
		obj.SetNamespace(metav1.NamespaceDefault)
	}
	return nil
}
