package cli

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// manifestDocuments returns every YAML document of the repository's manifests (the lint corpus of
// others' manifests included).
func manifestDocuments(t *testing.T) [][]byte {
	t.Helper()
	var docs [][]byte
	err := filepath.WalkDir("../..", func(path string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case d.IsDir() && (d.Name() == "bin" || d.Name() == ".git" || d.Name() == "dist"):
			return filepath.SkipDir
		case strings.HasSuffix(path, ".yaml"), strings.HasSuffix(path, ".yml"), strings.HasSuffix(path, ".json"):
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			raws, _ := splitDocuments(data)
			for _, raw := range raws {
				docs = append(docs, raw.data)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return docs
}

// Wherever the line reader takes a document, it writes the bytes yaml.YAMLToJSON writes: on every
// document of the repository's manifests, and on documents made of what it must read exactly or
// leave to yaml.v2 (comments, flow collections, quotes, numbers that are not decimal integers,
// words yaml.v2 reads as bools, duplicate keys, continued scalars, odd indentation). It must take
// most of the repository's documents, the generated graphs' shape among them.
func TestYAMLToJSONAsYAMLToJSON(t *testing.T) {
	docs := manifestDocuments(t)
	crafted := []string{
		"a: b\nc:\n  d: [e, f]\n  g: {h: 1, i: 'j''k', l: \"m n\"}\n",
		"a: b # c\nd: 'e' # f\ng: \"h\"  # i\nj: # k\n  - l\n  -   m: n\n      o: p\n  - - q\n    - r\n",
		"k: 0\nl: -0\nm: 010\nn: 1_000\no: 1.5\np: 0x1F\nq: 2001-12-14\nr: 99999999999999999999\ns: 12\n",
		"a: yes\n", "a: On\n", "a: ~\n", "a: null\nb: true\nc: false\n", "y: a\n", "a:\n", "a:\nb: c\n",
		"a: b\na: c\n", "a: {b: 1, b: 2}\n", "a: b\n  c\n", "a:\n  b: c\n d: e\n", "a:\n    b: c\n  d: e\n",
		"a: b: c\n", "a: b:\n", "a: [b, c, ]\n", "a: {b}\n", "a: [b, [c, {d: e}], {}, []]\n", "a: [b\n", "a: 'b\n",
		"a: \"b\\tc\"\n", "a: \"<b>&\"\n", "a: web→api:8080\n", "a: &x b\nc: *x\n", "a: !!str 1\n", "a: |\n  b\n",
		"a: >-\n  b\n", "- a\n", "'a': b\n", "\"a\": b\n", "a b: c\n", "a.b/c-d_e: f\n", "a:\n- b\n- c\nd: e\n",
		"a: b #c\n", "a: b#c\n", "a: -b\n", "a: /x/*\n", "a: _x\n", "a: [a:b]\n", "a: {b: c:d}\n",
		"a: b\n...\n", "%YAML 1.1\n---\na: b\n", "a: b\r\n", "a:\tb\n", "a: \u00a0b\n", "a: b\u0085c\n",
		"a:\n  - b: 1\n    c: [2, 3]\n  - d\n", "a: " + strings.Repeat("x", 1200) + "\n", strings.Repeat("k", 1100) + ": v\n",
	}
	for _, c := range crafted {
		docs = append(docs, []byte(c))
	}
	taken := 0
	for _, raw := range docs {
		v, ok := readBlockYAML(raw)
		if !ok {
			continue
		}
		taken++
		want, err := yaml.YAMLToJSON(raw)
		if got := v.appendJSON(nil); err != nil || string(got) != string(want) {
			t.Errorf("%q:\nread as %s\nYAMLToJSON: %s (%v)", raw, got, want, err)
		}
	}
	if taken < len(docs)*3/4 {
		t.Errorf("the line reader took %d of %d documents", taken, len(docs))
	}
	t.Logf("the line reader took %d of %d documents", taken, len(docs))
}
