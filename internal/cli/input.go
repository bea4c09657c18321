package cli

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
)

// stdinName names standard input in messages.
const stdinName = "<stdin>"

// document is a ServiceGraph read from a file.
type document struct {
	file  string
	graph *v1alpha1.ServiceGraph
}

func (d document) String() string {
	return fmt.Sprintf("%s: ServiceGraph %s/%s", d.file, d.graph.Namespace, d.graph.Name)
}

// readGraphs reads every ServiceGraph in the given files, directories (every *.yaml, *.yml and
// *.json below, in lexical order) and "-" (standard input). Other kinds of documents are skipped;
// a graph without a namespace gets "default", as kubectl would give it. It returns every problem
// it finds, each naming its file.
func readGraphs(paths []string, stdin io.Reader) ([]document, []error) {
	var docs []document
	var errs []error
	for _, p := range paths {
		files, err := expand(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, f := range files {
			data, err := readFile(f, stdin)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			d, e := decode(f, data)
			docs, errs = append(docs, d...), append(errs, e...)
		}
	}
	return docs, errs
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

// decode splits a YAML (or JSON) stream into documents and keeps the ServiceGraphs, looking into
// v1 Lists as `kubectl get -o yaml` prints them.
func decode(file string, data []byte) ([]document, []error) {
	if file == "-" {
		file = stdinName
	}
	var docs []document
	var errs []error
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for n := 1; ; n++ {
		raw, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: document %d: %w", file, n, err))
			break
		}
		d, e := decodeObject(raw)
		for _, g := range d {
			docs = append(docs, document{file: file, graph: g})
		}
		for _, err := range e {
			errs = append(errs, fmt.Errorf("%s: document %d: %w", file, n, err))
		}
	}
	return docs, errs
}

func decodeObject(raw []byte) ([]*v1alpha1.ServiceGraph, []error) {
	var meta struct {
		metav1.TypeMeta `json:",inline"`
		Metadata        struct{ Name, Namespace string } `json:"metadata"`
		Items           []yamlRaw                        `json:"items"`
	}
	data, err := yaml.YAMLToJSON(raw)
	switch {
	case err != nil:
		return nil, []error{err}
	case bytes.Equal(data, []byte("null")): // only comments
		return nil, nil
	case data[0] != '{':
		return nil, []error{errors.New("not a Kubernetes object: want a YAML mapping with apiVersion and kind")}
	}
	if err := json.Unmarshal(data, &meta); err != nil {
		return nil, []error{err}
	}
	switch {
	case meta.APIVersion == v1alpha1.GroupVersion.String() && meta.Kind == "ServiceGraph":
		sg := &v1alpha1.ServiceGraph{}
		// Strict: a misspelt field would otherwise vanish silently (the API server would reject it).
		if err := yaml.UnmarshalStrict(raw, sg); err != nil {
			return nil, []error{fmt.Errorf("ServiceGraph %s/%s: %w", cmp.Or(meta.Metadata.Namespace, metav1.NamespaceDefault), meta.Metadata.Name, err)}
		}
		if sg.Namespace == "" {
			sg.Namespace = metav1.NamespaceDefault
		}
		return []*v1alpha1.ServiceGraph{sg}, nil
	case meta.APIVersion == "v1" && meta.Kind == "List":
		var graphs []*v1alpha1.ServiceGraph
		var errs []error
		for i, item := range meta.Items {
			g, e := decodeObject(item)
			graphs = append(graphs, g...)
			for _, err := range e {
				errs = append(errs, fmt.Errorf("items[%d]: %w", i, err))
			}
		}
		return graphs, errs
	}
	return nil, nil
}

// yamlRaw keeps a list item undecoded (as JSON) for decodeObject.
type yamlRaw []byte

func (r *yamlRaw) UnmarshalJSON(b []byte) error {
	*r = slices.Clone(b)
	return nil
}
