package semantics_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// corpusDir holds public manifests written by others; SOURCES names each file's repository, path,
// commit and licence.
const corpusDir = "../testdata/corpus"

// corpusPolicy is one NetworkPolicy of the corpus and where it was read.
type corpusPolicy struct {
	source string // file#document (#document.item for an item of a List)
	np     *networkingv1.NetworkPolicy
}

// corpusCounts are what reading the corpus found and left out.
type corpusCounts struct {
	files, documents int
	// unparsable are documents that are not YAML at all (Helm templates), by file.
	unparsable map[string]int
	// otherKinds are documents of another kind or apiVersion (items of a List counted one by one).
	otherKinds int
	// notStrict are NetworkPolicies with a field networking.k8s.io/v1 does not have (a List's items
	// written with "status: {}", which NetworkPolicy no longer has), by source.
	notStrict map[string]string
}

// readCorpus returns every networking.k8s.io/v1 NetworkPolicy of the corpus that decodes strictly,
// in file order.
func readCorpus(t *testing.T) ([]corpusPolicy, corpusCounts) {
	t.Helper()
	var out []corpusPolicy
	counts := corpusCounts{unparsable: map[string]int{}, notStrict: map[string]string{}}
	err := filepath.WalkDir(corpusDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Ext(path) != ".yaml" {
			return err
		}
		counts.files++
		rel, _ := filepath.Rel(corpusDir, path)
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
		for i := 0; ; i++ {
			doc, err := r.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return fmt.Errorf("%s: %w", rel, err)
			}
			if len(bytes.TrimSpace(doc)) == 0 {
				continue
			}
			counts.documents++
			var head map[string]any
			if err := yaml.Unmarshal(doc, &head); err != nil {
				counts.unparsable[rel]++
				continue
			}
			if head == nil {
				continue
			}
			source := fmt.Sprintf("%s#%d", rel, i)
			items, isList := head["items"].([]any)
			if kind, _ := head["kind"].(string); !isList || !strings.HasSuffix(kind, "List") {
				out = decodePolicy(doc, source, out, &counts)
				continue
			}
			for j, item := range items {
				raw, err := json.Marshal(item)
				if err != nil {
					return err
				}
				out = decodePolicy(raw, fmt.Sprintf("%s.%d", source, j), out, &counts)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out, counts
}

func decodePolicy(raw []byte, source string, out []corpusPolicy, counts *corpusCounts) []corpusPolicy {
	var head struct{ APIVersion, Kind string }
	if err := yaml.Unmarshal(raw, &head); err != nil || head.APIVersion != "networking.k8s.io/v1" || head.Kind != "NetworkPolicy" {
		counts.otherKinds++
		return out
	}
	np := &networkingv1.NetworkPolicy{}
	if err := yaml.UnmarshalStrict(raw, np); err != nil {
		counts.notStrict[source] = err.Error()
		return out
	}
	return append(out, corpusPolicy{source: source, np: np})
}
