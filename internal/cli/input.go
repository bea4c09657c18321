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
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/servicegraph/servicegraph-operator/internal/object"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/servicegraph/servicegraph-operator/api/v1alpha1"
	"github.com/servicegraph/servicegraph-operator/internal/lint"
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
	// Workloads tell which pods a policy's selector can select: read for their pods' labels only.
	{APIVersion: "v1", Kind: "Pod"}:              newWorkload,
	{APIVersion: "apps/v1", Kind: "Deployment"}:  newWorkload,
	{APIVersion: "apps/v1", Kind: "StatefulSet"}: newWorkload,
	{APIVersion: "apps/v1", Kind: "DaemonSet"}:   newWorkload,
	{APIVersion: "apps/v1", Kind: "ReplicaSet"}:  newWorkload,
	{APIVersion: "batch/v1", Kind: "Job"}:        newWorkload,
	{APIVersion: "batch/v1", Kind: "CronJob"}:    newWorkload,
}

// removed are API versions of linted kinds the API server no longer serves, with their successor.
var removed = map[metav1.TypeMeta]string{
	{APIVersion: "extensions/v1beta1", Kind: "NetworkPolicy"}: "networking.k8s.io/v1",
}

// newWorkload is a workload as lint reads it: its pods' labels (see lint.Object).
func newWorkload() object.Object { return &metav1.PartialObjectMetadata{} }

// podLabels reads a workload's name and its pods' labels, leniently: nothing else of it is checked.
func podLabels(data []byte, w *metav1.PartialObjectMetadata) error {
	var obj struct {
		metav1.TypeMeta `json:",inline"`
		Metadata        metav1.ObjectMeta `json:"metadata"`
		Spec            struct {
			Template    struct{ Metadata metav1.ObjectMeta } `json:"template"`
			JobTemplate struct {
				Spec struct {
					Template struct{ Metadata metav1.ObjectMeta } `json:"template"`
				} `json:"spec"`
			} `json:"jobTemplate"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(data, &obj); err != nil {
		return err
	}
	w.TypeMeta, w.Name, w.Namespace = obj.TypeMeta, obj.Metadata.Name, obj.Metadata.Namespace
	switch obj.Kind {
	case "Pod":
		w.Labels = obj.Metadata.Labels
	case "CronJob":
		w.Labels = obj.Spec.JobTemplate.Spec.Template.Metadata.Labels
	default:
		w.Labels = obj.Spec.Template.Metadata.Labels
	}
	return nil
}

// input is what a command reads: the -f paths and the -n namespace.
type input struct {
	files     stringList
	namespace string
	// namesOnly makes -n name the namespace of names on the command line (check) and of objects
	// without one, and not refuse objects of other namespaces.
	namesOnly bool
}

// readDocuments reads every object of the given kinds in the given files, directories (every
// *.yaml, *.yml and *.json below, in lexical order) and "-" (standard input). Objects of other kinds
// are counted by kind in skipped. An object without a namespace gets -n's; without -n, a
// ServiceGraph is a problem (its namespace is in every principal it writes, and kubectl apply would
// use the context's, which the CLI cannot know) and other kinds get "default". Every file or
// document that cannot be read is a problem naming its file and line; the rest is still read.
func readDocuments(in *input, stdin io.Reader, want kinds) (docs []document, skipped map[string]int, problems []inputProblem) {
	skipped = map[string]int{}
	for _, p := range in.files {
		files, err := expand(p)
		if err != nil {
			problems = append(problems, inputProblem{file: p, err: err})
			continue
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

// decode splits a YAML (or JSON) stream into documents and keeps the objects of the wanted
// kinds, looking into lists (v1 List, as `kubectl get -o yaml` prints them, and typed lists such as
// NetworkPolicyList). Objects of other kinds are counted in skipped.
func decode(file string, data []byte, want kinds, in input, skipped map[string]int) ([]document, []inputProblem) {
	var docs []document
	var problems []inputProblem
	raws, err := splitDocuments(data)
	for _, raw := range raws {
		if template.Match(raw.data) {
			kind, name := guessKindAndName(raw.data)
			problems = append(problems, inputProblem{file: file, line: raw.line, problem: lint.Template, kind: kind, name: name,
				err: errors.New("an unrendered template ({{ ... }} or ${...}): render it first (helm template, kustomize build, envsubst) and lint the output")})
			continue
		}
		objs, e := decodeObject(raw.data, want, in, skipped)
		for _, obj := range objs {
			docs = append(docs, document{file: file, line: raw.line, obj: obj})
		}
		for _, p := range e {
			p.file, p.line = file, fileLine(raw, p.err)
			p.err = readable(p.err)
			if p.kind == "" {
				p.kind, p.name = guessKindAndName(raw.data)
			}
			problems = append(problems, p)
		}
	}
	if err != nil {
		problems = append(problems, inputProblem{file: file, line: len(bytes.Split(data, []byte("\n"))), err: err})
	}
	return docs, problems
}

// template finds what a generator leaves for itself in a manifest: Go template actions (Helm,
// Hugo) and envsubst's ${VARIABLE}.
var template = regexp.MustCompile(`\{\{[^}]*\}\}|\$\{[A-Za-z_][A-Za-z0-9_]*\}`)

// guessKindAndName reads kind and metadata.name from a document that does not parse, for the
// message.
func guessKindAndName(data []byte) (kind, name string) {
	field := func(re string) string {
		if m := regexp.MustCompile(re).FindSubmatch(data); m != nil && !template.Match(m[1]) {
			return strings.Trim(string(m[1]), `"'`)
		}
		return ""
	}
	kind, name = field(`(?m)^kind:\s*(\S+)`), field(`(?m)^  name:\s*(.+?)\s*$`)
	if ns := field(`(?m)^  namespace:\s*(.+?)\s*$`); ns != "" && name != "" {
		name = ns + "/" + name
	}
	return kind, name
}

// yamlLine is the line number a YAML parser puts in its messages, counted from the document's
// first line.
var yamlLine = regexp.MustCompile(`^(?:yaml: )?(?:line|yaml: line) (\d+): `)

// fileLine is the file's line of a problem in a document: the parser's line counted from the
// file's start, else the document's first line.
func fileLine(raw rawDocument, err error) int {
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		n, _ := strconv.Atoi(m[1])
		return raw.start + n - 1
	}
	return raw.line
}

// readable drops what a decoder's message says about itself ("error unmarshaling JSON: while
// decoding JSON: json: ") and puts the line in the file's terms (fileLine has it).
func readable(err error) error {
	msg := err.Error()
	msg = yamlLine.ReplaceAllString(msg, "")
	for _, noise := range []string{"error converting YAML to JSON: ", "error unmarshaling JSON: ", "while decoding JSON: ", "json: ", "yaml: "} {
		msg = strings.ReplaceAll(msg, noise, "")
	}
	msg = goField.ReplaceAllStringFunc(msg, func(m string) string {
		g := goField.FindStringSubmatch(m)
		return fmt.Sprintf("%s: %s where %s belongs", g[2], article(g[1]), article(jsonType(g[3])))
	})
	return errors.New(msg)
}

// goField is encoding/json's message for a value of the wrong type, which names Go types.
var goField = regexp.MustCompile(`cannot unmarshal (\w+) into Go struct field \w+\.(\S+) of type (\S+)`)

// jsonType says a Go type as the YAML it takes.
func jsonType(goType string) string {
	switch {
	case strings.Contains(goType, "int") && !strings.Contains(goType, "IntOrString"):
		return "number"
	case strings.Contains(goType, "IntOrString"):
		return "number or name"
	case goType == "string":
		return "string"
	case goType == "bool":
		return "boolean"
	case strings.HasPrefix(goType, "[]"):
		return "list"
	case strings.HasPrefix(goType, "map"):
		return "mapping"
	}
	return "mapping"
}

func article(what string) string {
	if what == "array" {
		what = "list"
	}
	if what == "object" {
		what = "mapping"
	}
	if strings.ContainsAny(what[:1], "aeiou") {
		return "an " + what
	}
	return "a " + what
}

func decodeObject(raw []byte, want kinds, in input, skipped map[string]int) ([]object.Object, []inputProblem) {
	var meta struct {
		metav1.TypeMeta `json:",inline"`
		Metadata        struct{ Name, Namespace string } `json:"metadata"`
		Items           []yamlRaw                        `json:"items"`
	}
	data, err := yaml.YAMLToJSON(raw)
	switch {
	case err != nil:
		return nil, []inputProblem{{err: err}}
	case bytes.Equal(data, []byte("null")): // only comments
		return nil, nil
	case data[0] != '{':
		return nil, []inputProblem{{err: errors.New("not a Kubernetes object: want a YAML mapping with apiVersion and kind")}}
	}
	if err := json.Unmarshal(data, &meta); err != nil {
		return nil, []inputProblem{{err: err}}
	}
	name := meta.Metadata.Name
	if meta.Metadata.Namespace != "" {
		name = meta.Metadata.Namespace + "/" + name
	}
	if newObject, ok := want[meta.TypeMeta]; ok {
		obj := newObject()
		if w, ok := obj.(*metav1.PartialObjectMetadata); ok {
			if err := podLabels(data, w); err != nil {
				return nil, []inputProblem{{kind: meta.Kind, name: name, err: err}}
			}
			if w.Namespace == "" {
				w.Namespace = cmp.Or(in.namespace, metav1.NamespaceDefault)
			}
			return []object.Object{w}, nil
		}
		// Strict: a misspelt field would otherwise vanish silently (the API server would reject it).
		// status is what the cluster reports, not what is linted: exported objects carry it.
		if err := yaml.UnmarshalStrict(withoutStatus(data), obj); err != nil {
			return nil, []inputProblem{{kind: meta.Kind, name: name, err: err}}
		}
		if err := setNamespace(obj, in); err != nil {
			return nil, []inputProblem{{kind: meta.Kind, name: name, err: err}}
		}
		return []object.Object{obj}, nil
	}
	if removed[meta.TypeMeta] != "" {
		return nil, []inputProblem{{problem: lint.Removed, kind: meta.Kind, name: name,
			err: fmt.Errorf("%s is no longer served (since Kubernetes 1.16): write it as %s", meta.APIVersion, removed[meta.TypeMeta])}}
	}
	if !strings.HasSuffix(meta.Kind, "List") || meta.Items == nil {
		if meta.Kind != "" {
			skipped[meta.Kind]++
		}
		return nil, nil
	}
	var objs []object.Object
	var problems []inputProblem
	for i, item := range meta.Items {
		o, e := decodeObject(item, want, in, skipped)
		objs = append(objs, o...)
		for _, p := range e {
			p.err = fmt.Errorf("items[%d]: %w", i, p.err)
			problems = append(problems, p)
		}
	}
	return objs, problems
}

// withoutStatus drops the top-level status of an object in JSON form.
func withoutStatus(data []byte) []byte {
	var fields map[string]json.RawMessage
	if json.Unmarshal(data, &fields) != nil || fields["status"] == nil {
		return data
	}
	delete(fields, "status")
	out, err := json.Marshal(fields)
	if err != nil {
		return data
	}
	return out
}

// yamlRaw keeps a list item undecoded (as JSON) for decodeObject.
type yamlRaw []byte

func (r *yamlRaw) UnmarshalJSON(b []byte) error {
	*r = slices.Clone(b)
	return nil
}

// rawDocument is one document of a YAML stream and the line it starts on.
type rawDocument struct {
	// line is the document's first line that is not blank or a comment, start its first line.
	line, start int
	data        []byte
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
		if len(cur.data) == 0 {
			cur.start = n + 1
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
