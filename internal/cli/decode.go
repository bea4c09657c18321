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
	"sigs.k8s.io/yaml"

	"github.com/servicegraph/servicegraph-operator/internal/lint"
	"github.com/servicegraph/servicegraph-operator/internal/object"
)

// decode splits a YAML (or JSON) stream into documents and keeps the objects of the wanted
// kinds, looking into lists (v1 List, as `kubectl get -o yaml` prints them, and typed lists such as
// NetworkPolicyList). Objects of other kinds are counted in skipped.
func decode(file string, data []byte, want kinds, in input, skipped map[string]int) ([]document, []inputProblem) {
	var docs []document
	var problems []inputProblem
	raws, err := splitDocuments(data)
	for _, raw := range raws {
		if unrenderedTemplate.Match(raw.data) {
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

// unrenderedTemplate finds what a generator leaves for itself in a manifest: Go template
// actions (Helm, Hugo) and envsubst's ${VARIABLE}.
var unrenderedTemplate = regexp.MustCompile(`\{\{[^}]*\}\}|\$\{[A-Za-z_][A-Za-z0-9_]*\}`)

// decodeObject decodes one document, or one item of a list, into the objects of the wanted kinds
// it holds: the object itself or a list's items. Objects of other kinds are counted in skipped.
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
		return decodeKnown(data, newObject(), in, meta.Kind, name)
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
	return decodeItems(meta.Items, want, in, skipped)
}

// decodeKnown decodes an object of a wanted kind (data, in JSON) into obj: a workload leniently,
// for its pods' labels, any other kind strictly. kind and name are the object's, for problems.
func decodeKnown(data []byte, obj object.Object, in input, kind, name string) ([]object.Object, []inputProblem) {
	if w, ok := obj.(*metav1.PartialObjectMetadata); ok {
		if err := workloadMeta(data, w); err != nil {
			return nil, []inputProblem{{kind: kind, name: name, err: err}}
		}
		if w.Namespace == "" {
			w.Namespace = cmp.Or(in.namespace, metav1.NamespaceDefault)
		}
		return []object.Object{w}, nil
	}
	// Strict: a misspelt field would otherwise vanish silently (the API server would reject it).
	// status is what the cluster reports, not what is linted: exported objects carry it.
	if err := yaml.UnmarshalStrict(withoutStatus(data), obj); err != nil {
		return nil, []inputProblem{{kind: kind, name: name, err: err}}
	}
	if err := setNamespace(obj, in); err != nil {
		return nil, []inputProblem{{kind: kind, name: name, err: err}}
	}
	if pod, ok := obj.(*corev1.Pod); ok {
		podAddresses(data, pod)
	}
	return []object.Object{obj}, nil
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
