package opa

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"text/tabwriter"

	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/servicegraph/servicegraph-operator/internal/cli"
)

const corpusDir = "../testdata/corpus"

// agreedRules are the linter's rules the templates implement, by the kind they check.
var agreedRules = map[string][]string{
	"NetworkPolicy":       {"NP001", "NP004", "NP006", "NP007", "NP012"},
	"AuthorizationPolicy": {"AP001", "AP002", "AP005"},
	"PeerAuthentication":  {"PA001", "PA002", "PA003"},
}

// unlinted are the linter's rules for an object it could not lint: unreadable (IN001), an
// unrendered template (IN002), an API the server no longer serves (IN006).
var unlinted = []string{"IN001", "IN002", "IN006"}

// tally counts one rule's verdicts over the corpus.
type tally struct {
	objects, both, neither, excused int
}

// TestAgreement holds the templates to `servicegraph lint` over the public corpus: every
// NetworkPolicy, AuthorizationPolicy and PeerAuthentication of test/testdata/corpus (each file
// linted on its own, as internal/cli's TestCorpus does) is reviewed by one constraint per template
// checking all of its rules (PERMISSIVE included, so that PA002 and PA003 are the linter's), and
// for each rule the template implements, it must violate the rule exactly when lint reports it.
//
// One restriction, where the linter knows what Gatekeeper cannot: lint does not report AP001 for
// a rule whose paths or methods a Service in the same file puts on a port Istio sees as TCP (the
// rule never matches there; lint reports AP008 instead). The templates see one object and no
// Services, so AP001 there is excused when lint reports AP008 on the object. Any other difference
// fails the test.
func TestAgreement(t *testing.T) {
	c := newClient(t,
		constraint("ServiceGraphNoAllowAllNetworkPolicy", map[string]any{}, networkPolicy),
		constraint("ServiceGraphNoOpenAuthorizationPolicy", map[string]any{}, authorization),
		constraint("ServiceGraphNoDisabledMTLS", map[string]any{"includePermissive": true}, peerAuthentication))

	tallies := map[string]*tally{}
	objects := map[string]int{}
	files, skipped := 0, 0
	err := filepath.WalkDir(corpusDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Ext(path) != ".yaml" {
			return err
		}
		files++
		rel, _ := filepath.Rel(corpusDir, path)
		found := lintFile(t, path)
		objs, err := policyObjects(path)
		if err != nil {
			// A file the linter cannot read either: it must have said so.
			if !slices.ContainsFunc(slices.Collect(maps.Keys(found)), func(k string) bool { return hasAny(found[k], unlinted) }) {
				t.Errorf("%s: %v, but lint reports no IN001/IN002", rel, err)
			}
			skipped++
			return nil
		}
		verdicts := map[string][]string{} // object key -> rules violated, over duplicates of the key
		order := []string{}
		for _, o := range objs {
			key := objectKey(o.GetKind(), o.GetNamespace(), o.GetName())
			if _, seen := verdicts[key]; !seen {
				order = append(order, key)
				verdicts[key] = []string{}
			}
			verdicts[key] = append(verdicts[key], rules(review(t, c, request(o, admissionv1.Create, "corpus")))...)
		}
		for key, reported := range found {
			if _, read := verdicts[key]; !read && hasAny(reported, slices.Concat(slices.Collect(maps.Values(agreedRules))...)) {
				t.Errorf("%s: lint reports %v for %s, which this test did not read", rel, reported, key)
			}
		}
		for _, key := range order {
			if hasAny(found[key], unlinted) {
				skipped++
				continue
			}
			kind := strings.SplitN(key, " ", 2)[0]
			objects[kind]++
			for _, rule := range agreedRules[kind] {
				n := tallies[rule]
				if n == nil {
					n = &tally{}
					tallies[rule] = n
				}
				n.objects++
				rego, lint := slices.Contains(verdicts[key], rule), slices.Contains(found[key], rule)
				switch {
				case rego && lint:
					n.both++
				case !rego && !lint:
					n.neither++
				case rule == "AP001" && rego && slices.Contains(found[key], "AP008"):
					n.excused++
				default:
					t.Errorf("%s: %s: Rego says %v, lint says %v (lint: %v)", rel, key, verdict(rego), verdict(lint), found[key])
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	var b bytes.Buffer
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "rule\tobjects\tboth report\tneither\texcused\tagree\t\n")
	for _, kind := range []string{"NetworkPolicy", "AuthorizationPolicy", "PeerAuthentication"} {
		for _, rule := range agreedRules[kind] {
			n := tallies[rule]
			if n == nil {
				n = &tally{}
			}
			fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%d\t%d/%d\t\n", rule, n.objects, n.both, n.neither, n.excused, n.both+n.neither+n.excused, n.objects)
		}
	}
	_ = w.Flush()
	t.Logf("%d corpus files; %d NetworkPolicies, %d AuthorizationPolicies, %d PeerAuthentications compared (%d objects or files lint could not read, skipped)\n%s",
		files, objects["NetworkPolicy"], objects["AuthorizationPolicy"], objects["PeerAuthentication"], skipped, b.String())
	for _, kind := range []string{"NetworkPolicy", "AuthorizationPolicy", "PeerAuthentication"} {
		for _, rule := range agreedRules[kind] {
			if n := tallies[rule]; n == nil || n.both == 0 || n.neither == 0 {
				t.Errorf("%s: the corpus should hold objects with and without it, to test both ways", rule)
			}
		}
	}
}

func verdict(reports bool) string {
	if reports {
		return "violated"
	}
	return "clean"
}

func objectKey(kind, namespace, name string) string {
	return kind + " " + namespace + "/" + name
}

func hasAny(have, want []string) bool {
	return slices.ContainsFunc(have, func(r string) bool { return slices.Contains(want, r) })
}

// lintFile runs `servicegraph lint -f FILE --format json` in process and returns the rules
// reported per object ("KIND NAMESPACE/NAME").
func lintFile(t *testing.T, path string) map[string][]string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := cli.Main([]string{"lint", "-f", path, "--format", "json"}, strings.NewReader(""), &stdout, &stderr)
	if code != cli.ExitOK && code != cli.ExitFindings || stderr.Len() > 0 {
		t.Fatalf("lint %s: exit %d: %s", path, code, stderr.String())
	}
	var report struct {
		Findings []struct{ Rule, Kind, Namespace, Name string }
	}
	if err := json.Unmarshal(stdout.Bytes(), &report); err != nil {
		t.Fatalf("lint %s: %v", path, err)
	}
	out := map[string][]string{}
	for _, f := range report.Findings {
		key := objectKey(f.Kind, f.Namespace, f.Name)
		out[key] = append(out[key], f.Rule)
	}
	return out
}

// policyObjects reads the NetworkPolicies, AuthorizationPolicies and PeerAuthentications of a YAML
// or JSON file, in v1 Lists and typed lists too, as lint does.
func policyObjects(path string) ([]*unstructured.Unstructured, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	dec := utilyaml.NewYAMLOrJSONDecoder(f, 4096)
	var out []*unstructured.Unstructured
	for {
		var doc map[string]any
		if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
			return out, nil
		} else if err != nil {
			return nil, err
		}
		if doc == nil {
			continue
		}
		u := &unstructured.Unstructured{Object: doc}
		items := []*unstructured.Unstructured{u}
		if strings.HasSuffix(u.GetKind(), "List") {
			items = nil
			list, _, _ := unstructured.NestedSlice(doc, "items")
			for _, it := range list {
				m, ok := it.(map[string]any)
				if !ok {
					continue
				}
				item := &unstructured.Unstructured{Object: m}
				if item.GetKind() == "" { // a typed list's items may leave it to the list
					item.SetKind(strings.TrimSuffix(u.GetKind(), "List"))
					item.SetAPIVersion(u.GetAPIVersion())
				}
				items = append(items, item)
			}
		}
		for _, item := range items {
			if agreedRules[item.GetKind()] != nil {
				if item.GetNamespace() == "" {
					item.SetNamespace("default") // as kubectl apply, and lint, read it
				}
				out = append(out, item)
			}
		}
	}
}
