package cli

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/servicegraph/servicegraph-operator/internal/cilium"
	"github.com/servicegraph/servicegraph-operator/internal/lint"
	"github.com/servicegraph/servicegraph-operator/internal/object"
)

// decode splits a YAML (or JSON) stream into documents and keeps the objects of the wanted
// kinds, looking into lists (v1 List, as `kubectl get -o yaml` prints them, and typed lists such as
// NetworkPolicyList). Objects of other kinds are counted in skipped. With in.requireObjects, a
// file without a document that has an apiVersion and a kind is a problem: a run that read nothing
// there says so rather than pass in silence.
func decode(file string, data []byte, want kinds, in input, skipped map[string]int) ([]document, []inputProblem) {
	var docs []document
	var problems []inputProblem
	typed := false
	raws, err := splitDocuments(data)
	for _, raw := range raws {
		objs, e, t := decodeObject(raw.data, want, in, skipped)
		typed = typed || t
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
	if in.requireObjects && !typed && len(problems) == 0 {
		problems = append(problems, inputProblem{file: file, err: nothingToLint(raws)})
	}
	return docs, problems
}

// nothingToLint says why a file that parses holds no object.
func nothingToLint(raws []rawDocument) error {
	what := "the file is empty"
	for _, raw := range raws {
		if t := bytes.TrimSpace(raw.data); len(t) > 0 {
			what = "the file holds only comments"
		}
		if data, err := yaml.YAMLToJSON(raw.data); err == nil && !bytes.Equal(data, []byte("null")) {
			what = "no document has both apiVersion and kind (a kustomization or a values file is not a manifest)"
			break
		}
	}
	return fmt.Errorf("nothing to lint: %s", what)
}

// unrenderedTemplate finds what a generator leaves for itself in a manifest: Go template
// actions (Helm, Hugo) and envsubst's ${VARIABLE}.
var unrenderedTemplate = regexp.MustCompile(`\{\{[^}]*\}\}|\$\{[A-Za-z_][A-Za-z0-9_]*\}`)

// errTemplate is the problem of a document whose template hides what lint would check.
var errTemplate = errors.New("an unrendered template ({{ ... }} or ${...}): render it first (helm template, kustomize build, envsubst) and lint the output")

// decodeObject decodes one document, or one item of a list, into the objects of the wanted kinds
// it holds: the object itself or a list's items. Objects of other kinds are counted in skipped,
// templates or not (a ConfigMap's shell script says ${VAR}). typed says whether it has an
// apiVersion and a kind.
func decodeObject(raw []byte, want kinds, in input, skipped map[string]int) (objs []object.Object, problems []inputProblem, typed bool) {
	var meta struct {
		metav1.TypeMeta `json:",inline"`
		Metadata        struct{ Name, Namespace string } `json:"metadata"`
		Items           []yamlRaw                        `json:"items"`
	}
	template := hasTemplate(raw)
	data, err := yamlToJSON(raw)
	if err == nil && !bytes.Equal(data, []byte("null")) && data[0] == '{' {
		err = json.Unmarshal(data, &meta)
	}
	switch {
	case err != nil && template: // the template is what breaks it, most likely
		return nil, []inputProblem{{problem: lint.Template, err: errTemplate}}, false
	case err != nil:
		return nil, []inputProblem{{err: err}}, false
	case bytes.Equal(data, []byte("null")): // only comments
		return nil, nil, false
	case data[0] != '{':
		return nil, []inputProblem{{err: fmt.Errorf("not a Kubernetes object but %s: want a mapping with apiVersion and kind", jsonValueKind(data))}}, false
	}
	typed = meta.APIVersion != "" && meta.Kind != ""
	name := untemplated(meta.Metadata.Name) // as guessKindAndName: what a template leaves is no name
	if ns := untemplated(meta.Metadata.Namespace); ns != "" {
		name = ns + "/" + name
	}
	list := strings.HasSuffix(meta.Kind, "List") && meta.Items != nil
	if template && !list && want.mayRead(meta.TypeMeta) {
		if newObject, ok := want[meta.TypeMeta]; ok {
			if objs, problems := decodeKnown(data, newObject(), in, meta.Kind, name); len(problems) == 0 && !keepsTemplate(objs) {
				return objs, nil, typed // the template is in what lint does not read: a workload's script
			}
		}
		return nil, []inputProblem{{problem: lint.Template, kind: untemplated(meta.Kind), name: name, err: errTemplate}}, typed
	}
	if newObject, ok := want[meta.TypeMeta]; ok {
		objs, problems := decodeKnown(data, newObject(), in, meta.Kind, name)
		return objs, problems, typed
	}
	if removed[meta.TypeMeta] != "" {
		return nil, []inputProblem{{problem: lint.Removed, kind: meta.Kind, name: name,
			err: fmt.Errorf("%s is no longer served (since Kubernetes 1.16): write it as %s", meta.APIVersion, removed[meta.TypeMeta])}}, typed
	}
	if !list {
		if typed { // without an apiVersion it is no object of any kind
			skipped[meta.Kind]++
		}
		return nil, nil, typed
	}
	objs, problems = decodeItems(meta.Items, want, in, skipped)
	return objs, problems, typed
}

// keepsTemplate reports whether a template is in what was read of an object: all of it, but for a
// workload, of which lint keeps a few fields (its pods' labels, ports, ...), and for role evidence
// (a webhook configuration, a ServiceMonitor, ...), where a templated value only fails to name
// anything, so that no role is found (and no finding softened) by it.
func keepsTemplate(objs []object.Object) bool {
	for _, obj := range objs {
		switch obj.(type) {
		case *unstructured.Unstructured:
			continue
		case *corev1.PodTemplate, *metav1.PartialObjectMetadata:
			if data, err := json.Marshal(obj); err == nil && !unrenderedTemplate.Match(data) {
				continue
			}
		}
		return true
	}
	return false
}

// mayRead reports whether a document of this type may be one the command reads, for a template
// in it to matter: its kind is a template, or it is one of the wanted or removed types (by kind
// alone when the apiVersion is missing or a template).
func (want kinds) mayRead(t metav1.TypeMeta) bool {
	switch {
	case t.Kind == "": // a mapping without a kind is no object, template or not
		return false
	case unrenderedTemplate.MatchString(t.Kind):
		return true
	case t.APIVersion != "" && !unrenderedTemplate.MatchString(t.APIVersion):
		_, ok := want[t]
		return ok || removed[t] != ""
	}
	for k := range want {
		if k.Kind == t.Kind {
			return true
		}
	}
	for k := range removed {
		if k.Kind == t.Kind {
			return true
		}
	}
	return false
}

// decodeKnown decodes an object of a wanted kind (data, in JSON) into obj: a workload leniently,
// for its pods' labels, any other kind strictly. kind and name are the object's, for problems.
func decodeKnown(data []byte, obj object.Object, in input, kind, name string) ([]object.Object, []inputProblem) {
	if w, ok := obj.(*corev1.PodTemplate); ok {
		if err := lint.ReadWorkload(data, w); err != nil {
			return nil, []inputProblem{{kind: kind, name: name, err: err}}
		}
		if w.Namespace == "" {
			w.Namespace = cmp.Or(in.namespace, metav1.NamespaceDefault)
		}
		return []object.Object{w}, nil
	}
	// Strict: a misspelt field would otherwise vanish silently (the API server would reject it).
	// status is what the cluster reports, not what is linted: exported objects carry it.
	if err := unmarshalStrict(withoutStatus(data), obj); err != nil {
		return nil, []inputProblem{{kind: kind, name: name, err: locateTypeError(withoutStatus(data), obj, err)}}
	}
	if clusterScoped(obj) {
		obj.SetNamespace("")
	} else if err := setNamespace(obj, in); err != nil {
		return nil, []inputProblem{{kind: kind, name: name, err: err}}
	}
	if pod, ok := obj.(*corev1.Pod); ok {
		podAddresses(data, pod)
	}
	return []object.Object{obj}, nil
}

// clusterScoped tells whether an object of a kind read has no namespace: a
// CiliumClusterwideNetworkPolicy.
func clusterScoped(obj object.Object) bool {
	_, ok := obj.(*cilium.CiliumClusterwideNetworkPolicy)
	return ok
}

// podAddresses keeps an exported pod's addresses: traffic sources that name pods by address
// (access logs, Hubble) find them by it.
func podAddresses(data []byte, pod *corev1.Pod) {
	var exported struct {
		Status struct {
			PodIP  string          `json:"podIP"`
			PodIPs []corev1.PodIP  `json:"podIPs"`
			Phase  corev1.PodPhase `json:"phase"`
		} `json:"status"`
	}
	if json.Unmarshal(data, &exported) == nil {
		pod.Status.PodIP, pod.Status.PodIPs = exported.Status.PodIP, exported.Status.PodIPs
	}
}

// decodeItems decodes the items of a list, each problem naming the item it is in.
func decodeItems(items []yamlRaw, want kinds, in input, skipped map[string]int) ([]object.Object, []inputProblem) {
	var objs []object.Object
	var problems []inputProblem
	for i, item := range items {
		o, e, _ := decodeObject(item, want, in, skipped)
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
	if !bytes.Contains(data, []byte("status")) && !bytes.Contains(data, []byte(`\u`)) {
		return data // no key can be status: decoding the whole object would only say so
	}
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
	begin, end := 0, 0 // the current document's bytes: its lines are contiguous in data
	for n, line := range bytes.SplitAfter(data, []byte("\n")) {
		end += len(line)
		if rest, ok := bytes.CutPrefix(line, []byte("---")); ok {
			flush()
			if t := bytes.TrimSpace(rest); len(t) > 0 && t[0] != '#' {
				return docs, fmt.Errorf("invalid YAML document separator: %s", t)
			}
			continue
		}
		if len(cur.data) == 0 {
			cur.start, begin = n+1, end-len(line)
		}
		if t := bytes.TrimSpace(line); cur.line == 0 && len(t) > 0 && t[0] != '#' {
			cur.line = n + 1
		}
		cur.data = data[begin:end:end]
	}
	flush()
	for i := range docs {
		docs[i].line = max(docs[i].line, 1) // a document of comments only: its line does not matter
	}
	return docs, nil
}
