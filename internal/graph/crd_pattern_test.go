package graph

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

const crdPath = "../../config/crd/bases/policy.servicegraph.io_servicegraphs.yaml"

// crdEdgePattern is the OpenAPI pattern the API server checks spec.edges items against, read from
// the generated CRD. The API server compiles it with Go's regexp, as here.
func crdEdgePattern(t testing.TB) *regexp.Regexp {
	t.Helper()
	data, err := os.ReadFile(crdPath)
	if err != nil {
		t.Fatal(err)
	}
	var crd struct {
		Spec struct {
			Versions []struct {
				Schema struct {
					OpenAPIV3Schema struct {
						Properties map[string]struct {
							Properties map[string]struct {
								Items struct {
									Pattern string `json:"pattern"`
								} `json:"items"`
							} `json:"properties"`
						} `json:"properties"`
					} `json:"openAPIV3Schema"`
				} `json:"schema"`
			} `json:"versions"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(data, &crd); err != nil {
		t.Fatalf("%s: %v", crdPath, err)
	}
	if len(crd.Spec.Versions) != 1 {
		t.Fatalf("%s: want one version, got %d", crdPath, len(crd.Spec.Versions))
	}
	p := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"].Properties["edges"].Items.Pattern
	if p == "" {
		t.Fatalf("%s: no pattern on spec.edges items", crdPath)
	}
	return regexp.MustCompile(p)
}

// parserOnly are the rules a regular expression of reasonable size does not check, so the CRD
// pattern accepts edges that the parser (and so the compiler, which reports them in status and
// in `servicegraph compile`) rejects. Everything else must be decided the same way by both.
var parserOnly = []string{
	"service name must be at most 63 characters", // length of a DNS label
	"namespace must be at most 63 characters",    // length of a DNS label
	"port name must be at most 15 characters",    // length of a port name
	`port name must not contain "--"`,            // IANA service names forbid a double hyphen
	forgottenSlash,                               // "5432data": spec.edges' CEL rule refuses it, readably
}

func TestCRDPatternAgreesWithParser(t *testing.T) {
	re := crdEdgePattern(t)
	corpus := edgeCorpus(t)
	for _, s := range corpus {
		_, err := ParseEdge(s)
		switch matched := re.MatchString(s); {
		case err == nil && !matched:
			t.Errorf("the parser accepts %q but the CRD pattern rejects it", s)
		case err != nil && matched && !isParserOnly(err):
			t.Errorf("the CRD pattern accepts %q but the parser rejects it: %v", s, err)
		}
	}
	// Each parser-only rule must show up in the corpus, or the list above documents nothing.
	for _, rule := range parserOnly {
		if !slices.ContainsFunc(corpus, func(s string) bool {
			_, err := ParseEdge(s)
			return err != nil && strings.HasSuffix(err.Error(), rule) && re.MatchString(s)
		}) {
			t.Errorf("no edge in the corpus exercises the parser-only rule %q", rule)
		}
	}
}

func isParserOnly(err error) bool {
	return slices.ContainsFunc(parserOnly, func(rule string) bool { return strings.HasSuffix(err.Error(), rule) })
}

// edgeCorpus is the table inputs, the fuzz seed corpus and random strings over the grammar's
// alphabet (fixed seed), mutated from valid edges so that many are near misses.
func edgeCorpus(t *testing.T) []string {
	var corpus []string
	for _, tc := range invalidEdges {
		corpus = append(corpus, tc.in)
	}
	corpus = append(corpus, label64+"->b:1", "a->"+label64+"/b:1", "a->b:1--a", "a->b:http,abcdefghijklmnop")
	files, err := filepath.Glob("testdata/fuzz/FuzzParseEdge/*")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fuzz seed corpus: %v", err)
	}
	for _, f := range files {
		corpus = append(corpus, readSeed(t, f))
	}
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"a", "b", "z", "0", "1", "5", "6", "9", "-", ">", "→", " ", ":", "/", ",", "*", "A", ".", "⟶", "\t"}
	valid := []string{"web->api:8080", "a -> ns/b:http,65535/x*", "a→b:1-a,8080-tcp/", "a->b:65530,6553,655,65", "ns/a -> b:1"}
	for range 20000 {
		s := []rune(valid[rng.IntN(len(valid))])
		for range 1 + rng.IntN(3) {
			i := rng.IntN(len(s) + 1)
			r := []rune(alphabet[rng.IntN(len(alphabet))])
			switch rng.IntN(3) {
			case 0: // insert
				s = slices.Insert(s, i, r...)
			case 1: // replace
				if i < len(s) {
					s[i] = r[0]
				}
			default: // delete
				if i < len(s) {
					s = slices.Delete(s, i, i+1)
				}
			}
		}
		corpus = append(corpus, string(s))
	}
	return corpus
}

// readSeed reads the string of a "go test fuzz v1" corpus file.
func readSeed(t *testing.T, path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitN(strings.TrimSpace(string(data)), "\n", 2)
	if len(lines) != 2 || lines[0] != "go test fuzz v1" || !strings.HasPrefix(lines[1], "string(") {
		t.Fatalf("%s: not a fuzz corpus file with one string", path)
	}
	s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "string("), ")"))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return s
}
