package cli

import (
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

	"github.com/servicegraph/servicegraph-operator/internal/object"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
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

// kinds maps the apiVersion and kind of the documents a command reads to a new object to decode
// them into; documents of other kinds are skipped.
type kinds map[metav1.TypeMeta]func() object.Object

func newServiceGraph() object.Object { return &v1alpha1.ServiceGraph{} }

func newAuthorizationPolicy() object.Object { return &securityv1.AuthorizationPolicy{} }

func newPeerAuthentication() object.Object { return &securityv1.PeerAuthentication{} }

// graphKinds are what compile and graph read.
var graphKinds = kinds{
	{APIVersion: v1alpha1.GroupVersion.String(), Kind: "ServiceGraph"}: newServiceGraph,
}

// lintKinds are what lint reads: graphs and the policies people write by hand. Istio's v1beta1
// and v1 share one spec, so both decode into the v1 types.
var lintKinds = kinds{
	{APIVersion: v1alpha1.GroupVersion.String(), Kind: "ServiceGraph"}:     newServiceGraph,
	{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"}:            func() object.Object { return &networkingv1.NetworkPolicy{} },
	{APIVersion: "security.istio.io/v1", Kind: "AuthorizationPolicy"}:      newAuthorizationPolicy,
	{APIVersion: "security.istio.io/v1beta1", Kind: "AuthorizationPolicy"}: newAuthorizationPolicy,
	{APIVersion: "security.istio.io/v1", Kind: "PeerAuthentication"}:       newPeerAuthentication,
	{APIVersion: "security.istio.io/v1beta1", Kind: "PeerAuthentication"}:  newPeerAuthentication,
	// Services tell what protocol Istio sees on a port: a graph's HTTP paths are checked against them.
	{APIVersion: "v1", Kind: "Service"}: func() object.Object { return &corev1.Service{} },
}

// input is what a command reads: the -f paths and the -n namespace.
type input struct {
	files     stringList
	namespace string
}

// readDocuments reads every object of the given kinds in the given files, directories (every
// *.yaml, *.yml and *.json below, in lexical order) and "-" (standard input). Other kinds of
// documents are skipped. An object without a namespace gets -n's; without -n, a ServiceGraph is an
// error (its namespace is in every principal it writes, and kubectl apply would use the context's,
// which the CLI cannot know) and other kinds get "default". It returns every problem it finds,
// each naming its file.
func readDocuments(in *input, stdin io.Reader, want kinds) ([]document, []error) {
	var docs []document
	var errs []error
	for _, p := range in.files {
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
			d, e := decode(f, data, want, in.namespace)
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

// decode splits a YAML (or JSON) stream into documents and keeps the objects of the wanted
// kinds, looking into v1 Lists as `kubectl get -o yaml` prints them.
func decode(file string, data []byte, want kinds, namespace string) ([]document, []error) {
	if file == "-" {
		file = stdinName
	}
	var docs []document
	var errs []error
	raws, err := splitDocuments(data)
	for n, raw := range raws {
		objs, e := decodeObject(raw.data, want, namespace)
		for _, obj := range objs {
			docs = append(docs, document{file: file, line: raw.line, obj: obj})
		}
		for _, err := range e {
			errs = append(errs, fmt.Errorf("%s: document %d: %w", file, n+1, err))
		}
	}
	if err != nil {
		errs = append(errs, fmt.Errorf("%s: document %d: %w", file, len(raws)+1, err))
	}
	return docs, errs
}

func decodeObject(raw []byte, want kinds, namespace string) ([]object.Object, []error) {
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
	if newObject, ok := want[meta.TypeMeta]; ok {
		obj := newObject()
		// Strict: a misspelt field would otherwise vanish silently (the API server would reject it).
		if err := yaml.UnmarshalStrict(raw, obj); err != nil {
			return nil, []error{fmt.Errorf("%s %s/%s: %w", meta.Kind, cmp.Or(meta.Metadata.Namespace, metav1.NamespaceDefault), meta.Metadata.Name, err)}
		}
		if err := setNamespace(obj, namespace); err != nil {
			return nil, []error{fmt.Errorf("%s %s: %w", meta.Kind, meta.Metadata.Name, err)}
		}
		return []object.Object{obj}, nil
	}
	if meta.APIVersion != "v1" || meta.Kind != "List" {
		return nil, nil
	}
	var objs []object.Object
	var errs []error
	for i, item := range meta.Items {
		o, e := decodeObject(item, want, namespace)
		objs = append(objs, o...)
		for _, err := range e {
			errs = append(errs, fmt.Errorf("items[%d]: %w", i, err))
		}
	}
	return objs, errs
}

// yamlRaw keeps a list item undecoded (as JSON) for decodeObject.
type yamlRaw []byte

func (r *yamlRaw) UnmarshalJSON(b []byte) error {
	*r = slices.Clone(b)
	return nil
}

// rawDocument is one document of a YAML stream and the line it starts on.
type rawDocument struct {
	line int
	data []byte
}

// splitDocuments splits a YAML stream where k8s.io/apimachinery's YAMLReader (which kubectl uses)
// does: at lines starting with "---" followed by nothing but spaces or a comment, dropping empty
// documents. It does the splitting itself to know each document's line. On a malformed
// separator it returns the documents before it and the error.
func splitDocuments(data []byte) ([]rawDocument, error) {
	var docs []rawDocument
	var cur rawDocument
	flush := func() {
		if len(cur.data) > 0 {
			docs = append(docs, cur)
		}
		cur = rawDocument{}
	}
	for n, line := range bytes.SplitAfter(data, []byte("\n")) {
		if rest, ok := bytes.CutPrefix(line, []byte("---")); ok {
			flush()
			if t := bytes.TrimSpace(rest); len(t) > 0 && t[0] != '#' {
				return docs, fmt.Errorf("invalid YAML document separator: %s", t)
			}
			continue
		}
		if t := bytes.TrimSpace(line); cur.line == 0 && len(t) > 0 && t[0] != '#' {
			cur.line = n + 1
		}
		cur.data = append(cur.data, line...)
	}
	flush()
	for i := range docs {
		docs[i].line = max(docs[i].line, 1) // a document of comments only: its line does not matter
	}
	return docs, nil
}

// setNamespace gives an object the namespace kubectl apply -n would, and refuses a mismatch as
// kubectl does.
func setNamespace(obj object.Object, namespace string) error {
	switch ns := obj.GetNamespace(); {
	case ns != "" && namespace != "" && ns != namespace:
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
