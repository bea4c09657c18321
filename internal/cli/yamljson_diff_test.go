package cli

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// These tests hold yamlToJSON to its contract: for any input it returns exactly what
// sigs.k8s.io/yaml.YAMLToJSON returns, the same bytes, and an error exactly when YAMLToJSON
// returns one.

// yamlDiff reports how yamlToJSON and yaml.YAMLToJSON disagree on raw, "" when they agree.
func yamlDiff(raw []byte) string {
	if _, ok := readBlockYAML(raw); !ok {
		// yamlToJSON hands the document to YAMLToJSON itself: nothing to compare. (YAMLToJSON's
		// output may even differ from call to call, by map order, where two keys become one: "80: a"
		// and "'80': b"; the line reader refuses those.)
		return ""
	}
	got, gotErr := yamlToJSON(raw)
	want, wantErr := yaml.YAMLToJSON(raw)
	switch {
	case (gotErr != nil) != (wantErr != nil):
		return "yamlToJSON: " + shorten(string(got)) + " (" + errText(gotErr) + ")\nYAMLToJSON: " + shorten(string(want)) + " (" + errText(wantErr) + ")"
	case gotErr == nil && !bytes.Equal(got, want):
		return "yamlToJSON: " + shorten(string(got)) + "\nYAMLToJSON: " + shorten(string(want))
	}
	return ""
}

func errText(err error) string {
	if err == nil {
		return "no error"
	}
	return err.Error()
}

func shorten(s string) string {
	if len(s) > 300 {
		return s[:150] + "..." + s[len(s)-150:]
	}
	return s
}

// yamlDiffSeeds are YAML 1.1's traps and Kubernetes manifests' shapes, for the table test and as
// the fuzzer's seeds.
var yamlDiffSeeds = []string{
	// Words and numbers YAML 1.1 resolves to other types than a string.
	"a: yes\n", "a: no\n", "a: on\n", "a: off\n", "a: y\n", "a: n\n", "a: Y\n", "a: N\n", "a: True\n",
	"a: FALSE\n", "a: tRUE\n", "a: ~\n", "a: Null\n", "a: NULL\n", "a: nULL\n", "a: 0x1F\n", "a: 0o17\n",
	"a: 017\n", "a: 08\n", "a: 1_000\n", "a: +1\n", "a: -0\n", "a: -1\n", "a: 1e3\n", "a: 1E3\n", "a: 1.\n",
	"a: .5\n", "a: .inf\n", "a: -.Inf\n", "a: .NaN\n", "a: 0b101\n", "a: -0b1\n", "a: 2001-12-14\n",
	"a: 2001-12-14T21:59:43.10-05:00\n", "a: 2001-12-14 21:59:43.10\n", "a: 2001-1-2\n", "a: 12:30:00\n",
	"a: 190:20:30.15\n", "a: 1:2\n", "a: 9223372036854775807\n", "a: 9223372036854775808\n",
	"a: 18446744073709551615\n", "a: 18446744073709551616\n", "a: -9223372036854775808\n", "a: 0\n",
	"a: 00\n", "a: 10.0.0.1\n", "a: 10.0.0.0/8\n", "a: 1.2.3\n", "a: 1..2\n", "a: 1 2\n", "a: 80/TCP\n",
	"a: 1a\n", "a: 0xZZ\n", "a: Infinity\n", "a: NaN\n", "a: yES\n", "a: <<\n", "a: =\n",
	// Keys that are numbers, bools or nulls, and duplicate keys.
	"80: x\n", "0: x\n", "007: x\n", "-1: x\n", "1.5: x\n", "1e3: x\n", "true: y\n", "yes: y\n", "on: y\n",
	"y: y\n", "null: x\n", "~: x\n", "9223372036854775807: x\n", "99999999999999999999: x\n",
	"10.0.0.1: x\n", "1/2: x\n", "80: a\n'80': b\n", "a: 1\na: 2\n", "a: 1\n'a': 2\n", "a: {b: 1, b: 2}\n",
	"<<: x\n", "a: &x {b: 1}\nc:\n  <<: *x\n  d: 2\n",
	// Whitespace: tabs, CRLF, a BOM, trailing spaces, blank and comment lines.
	"a:\tb\n", "a: b\t\n", "\ta: b\n", "a: b\r\n", "a: b\r\nc: d\r\n", "\ufeffa: b\n", "a: b   \n",
	"a: b\n\n\n  \nc: d\n", "a:   \n  b: c\n", "  a: b\n", "a: b\n  # c\nd: e\n", "# c\na: b\n",
	// Comments and '#'.
	"a: b # c\n", "a: b#c\n", "a: b #c\n", "a: b  # c: d\n", "a: 'b' # c\n", "a: 'b'#c\n", "a: [b]#c\n",
	"a: \"b\"#c\n", "a: # c\n  b: d\n", "a:# c\n", "a: b:#c\n", "a: b\u00a0# c\n", "#a: b\nc: d\n",
	// Quoted strings and escapes.
	"a: \"\\u00e9\\t\"\n", "a: 'it''s'\n", "a: ''''\n", "a: 'b''\n", "a: \"b\n", "a: \"\"\n", "a: ''\n",
	"a: \"b #c\"\n", "a: 'b: c'\n", "a: \"<b>&\"\n", "a: \"é\"\n", "a: 'b' c\n", "a: \"b\": c\n",
	"'a': b\n", "\"a\": b\n", "'a b': c\n", "\"a:b\": c\n", "'a''b': c\n",
	// Empty values.
	"a:\n", "a:\nb: c\n", "a: \"\"\n", "a:\n  b:\nc: d\n", "a:\n- \n",
	// Flow collections.
	"a: {a: 1, b: [x, y]}\n", "a: []\n", "a: {}\n", "a: [ ]\n", "a: { }\n", "a: [a b]\n", "a: [a, ]\n",
	"a: {a: }\n", "a: {a}\n", "a: {a:1}\n", "a: { a : 1 }\n", "a: [a: b]\n", "a: [a:b]\n", "a: {b: c:d}\n",
	"a: [b, [c, {d: e}], {}, []]\n", "a: [b\n", "a: [b,\n  c]\n", "a: {'b': \"c\", d: 'e'}\n",
	"a: ['', \"\"]\n", "a: [a?b]\n", "a: [a#b]\n", "a: [a #b]\n", "a: {\"b\":c}\n", "a: [1, 1.5, 0x1, yes]\n",
	"a: [b, c]: d\n", "a: {b: [c, d]} # e\n", "a: [http://x]\n", "a: [[[[x]]]]\n",
	// Block sequences at various indents.
	"a:\n- b\n- c\n", "a:\n  - b\n  - c\n", "a:\n- b: 1\n  c: 2\n- d\n", "a:\n  - b: 1\n    c: [2, 3]\n  - d\n",
	"a:\n- - x\n  - y\n- z\n", "a:\n-   - x\n    - y\n", "a:\n-   m: n\n    o: p\n", "a:\n- b:\n  - c\n  d: e\n",
	"a:\n- b: 1\n  - c\n", "a:\n- a:\n- b\n", "a:\n  - b\n- c\n", "a:\n- b\n  c\n", "a:\n- b\n   - c\n",
	"a:\n-b\n", "a: b\n- c\n", "- a\n- b\n", "a:\n- 'b: c'\n- \"d: e\"\n- f:g\n", "a:\n- {b: c}\n- [d]\n",
	"a:\n  b: c\n  - d\n", "a:\n    b: c\n  d: e\n", "a:\n  b: c\n d: e\n",
	// Keys with colons or spaces, values with ": " inside.
	"a b: c\n", "a.b/c-d_e: f\n", "a:b: c\n", "a : b\n", "a: b: c\n", "a: b:\n", "a: b :c\n", "a: b:c\n",
	"a: http://x:80/y\n", "- a: b\n", "-a: b\n", "a[0]: b\n", "a?b: c\n", "/: x\n", "_a: x\n", ".a: x\n",
	// Values starting with YAML indicators.
	"a: - b\n", "a: -\n", "a: ? b\n", "a: !b\n", "a: &b c\n", "a: *b\n", "a: |\n  b\n", "a: >-\n  b\n  c\n",
	"a: |+\n  b\n\n", "a: >\n  b\n", "a: @b\n", "a: `b\n", "a: %b\n", "a: b&c\n", "a: b[0]\n", "a: b - c\n",
	"a: !!str 1\n", "a: !!int \"1\"\n", "a: !!binary aGk=\n",
	// Multi-line plain scalars.
	"a: b\n  c\n", "a: b\n  c\nd: e\n", "a:\n  b\n", "a: b\n\n  c\n",
	// Document markers and directives.
	"---\na: b\n", "a: b\n---\n", "a: b\n...\n", "a: b\n---\nc: d\n", "--- a: b\n", "%YAML 1.1\n---\na: b\n",
	"---x: y\n", "a: ---\n", "a: ...\n",
	// Unicode.
	"a: web→api:8080\n", "a: bé\n", "é: b\n", "a: \u00a0b\n", "a: b\u0085c\n", "a: b\u2028c\n", "a: 日本\n",
	"a: \U0001F600\n", "a: b\u00a0\n", "a: \u200b\n",
	// Empty documents, comments only, top-level sequences and scalars.
	"", "\n", "# only a comment\n", "---\n", "a\n", "1\n", "'a'\n", "[a, b]\n", "{a: b}\n", "- a\n",
	// Kubernetes manifests.
	"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  namespace: y\n  labels:\n    app: web\n  annotations:\n    a.b/c: \"true\"\ndata:\n  k: v\n",
	"apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: np\nspec:\n  podSelector:\n    matchLabels:\n      app: web\n  policyTypes:\n  - Ingress\n  ingress:\n  - from:\n    - podSelector:\n        matchLabels:\n          app: api\n    ports:\n    - port: 8080\n      protocol: TCP\n    - port: http\n",
	"apiVersion: policy.servicegraph.io/v1alpha1\nkind: ServiceGraph\nmetadata:\n  name: shop\nspec:\n  services:\n  - name: web\n  - name: api\n    serviceAccount: api-sa\n  edges:\n  - web -> api:8080\n  - \"api -> db:5432\"\n  connections:\n  - from: web\n    to: api\n    ports: [{port: 80, protocol: HTTP}]\n    paths: [/api/*]\n",
}

// yamlDiffCounterexamples are inputs where yamlToJSON and yaml.YAMLToJSON disagreed when these
// tests were written (see each one's comment); they stay in the table so that a fix is checked.
var yamlDiffCounterexamples = []string{
	// yaml.v2 finds no simple key when its ':' is more than 1024 characters past the key's start: the
	// line reader trims the spaces and takes the key. YAMLToJSON: "could not find expected ':'" (a
	// key after the first), "mapping values are not allowed in this context", "did not find
	// expected ',' or '}'".
	"a: b\nk" + strings.Repeat(" ", 1100) + ": v\n",
	"k" + strings.Repeat(" ", 1100) + ": v\n",
	"a: {k" + strings.Repeat(" ", 1100) + ": v}\n",
	"a:\n- k" + strings.Repeat(" ", 1100) + ": v\n",
	"a:\n  '" + strings.Repeat("k", 1000) + "'" + strings.Repeat(" ", 30) + ": v\n",
	// yaml.v2 refuses more than 10,000 nested flow collections or block indentation levels
	// ("exceeded max depth of 10000"); the line reader reads any depth.
	"a: " + strings.Repeat("[", 10001) + strings.Repeat("]", 10001) + "\n",
	"a: " + strings.Repeat("{a: ", 10001) + "b" + strings.Repeat("}", 10001) + "\n",
	"a:\n" + strings.Repeat("- ", 10001) + "x\n",
}

func TestYAMLToJSONDiffTable(t *testing.T) {
	docs := append(append([]string{}, yamlDiffSeeds...), yamlDiffCounterexamples...)
	// Deep nesting, under yaml.v2's limit: both read it.
	docs = append(docs, "a: "+strings.Repeat("[", 9990)+strings.Repeat("]", 9990)+"\n",
		"a:\n"+strings.Repeat("- ", 500)+"x\n", strings.Repeat(" ", 0)+deepMapping(60))
	// Long lines and long keys.
	docs = append(docs, "a: "+strings.Repeat("x", 5000)+"\n", "a: "+strings.Repeat("x y ", 2000)+"\n",
		strings.Repeat("k", 1000)+": v\n", strings.Repeat("k", 1001)+": v\n", strings.Repeat("k", 1030)+": v\n",
		"'"+strings.Repeat("k", 1022)+"': v\n", "'"+strings.Repeat("k", 1023)+"': v\n",
		"k"+strings.Repeat(" ", 1022)+": v\n", "k"+strings.Repeat(" ", 1023)+": v\n")
	for _, doc := range docs {
		if diff := yamlDiff([]byte(doc)); diff != "" {
			t.Errorf("%q:\n%s", shorten(doc), diff)
		}
	}
}

// deepMapping is a block mapping nested n levels deep.
func deepMapping(n int) string {
	var b strings.Builder
	for i := range n {
		b.WriteString(strings.Repeat("  ", i) + "k:\n")
	}
	b.WriteString(strings.Repeat("  ", n) + "v: 1\n")
	return b.String()
}

func FuzzYAMLToJSON(f *testing.F) {
	for _, s := range yamlDiffSeeds {
		f.Add([]byte(s))
	}
	rng := rand.New(rand.NewPCG(1, 1))
	for range 100 {
		f.Add([]byte(yamlDiffDocument(rng)))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if diff := yamlDiff(raw); diff != "" {
			t.Errorf("%q:\n%s", raw, diff)
		}
	})
}

// Documents built as trees of block mappings and sequences (keys and scalars from pools of plain
// and tricky ones, flow collections, comments, blank lines, indentation of 1 to 4 spaces, compact
// and indented sequences), then one in three changed at a random byte or line: yamlToJSON agrees with
// YAMLToJSON on each.
func TestYAMLToJSONDiffGenerated(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	taken := 0
	const n = 60000
	for range n {
		raw := []byte(yamlDiffDocument(rng))
		if _, ok := readBlockYAML(raw); ok {
			taken++
		}
		if diff := yamlDiff(raw); diff != "" {
			t.Errorf("%q:\n%s", raw, diff)
		}
	}
	t.Logf("the line reader took %d of %d documents", taken, n)
}

var (
	// The keys and scalars the line reader takes come first; yamlDiffKey and yamlDiffScalar pick
	// among them three times in four.
	yamlDiffKeys = []string{"a", "b", "c", "d", "e", "f", "g", "h", "name", "app", "spec", "metadata", "ports",
		"port", "x_1", "a.b/c-d_e", "app.kubernetes.io/name", "/p", "80", "0", "8080", "'a'", "\"b\"",
		"'80'", "007", "-1", "1.5", "true",
		"y", "null", "~", "'a b'", "a b", "é", "<<", "''", "1e3", "10.0.0.1", "a#b", "[a]", "a:b", "k "}
	yamlDiffScalars = []string{"b", "web", "api-sa", "/api/*", "v1", "TCP", "true", "null", "false", "0", "12",
		"8080", "10.0.0.0/8", "'it''s'", "''", "\"\"", "\"é\"", "'a: b'", "\"a #b\"", "b # c", "b#c", "b:c",
		"http://x:80/y", "web -> api:8080", "web→api", "a b  c", "é", "日本", "<b>&", "b\u00a0", "Infinity",
		"9223372036854775807", "yes", "No", "on", "OFF", "~",
		"Null", "False", "-0", "012", "0x1F", "0o17", "1_000", "+1", "1e3", ".inf",
		".NaN", "2001-12-14", "2001-12-14T21:59:43.10-05:00", "12:30:00", "1:2", "9223372036854775808", "1.2.3",
		"80/TCP", "\"a\\tb\"", "b: c", "b:", "&a b", "*a", "!!str 1", "-", "? b", "@b", "b[0]", "=", "<<",
		"...", "b '", "b \"", "'b'c", "\"b\" c"}
)

func yamlDiffKey(rng *rand.Rand) string {
	if rng.IntN(4) > 0 {
		return yamlDiffKeys[rng.IntN(18)]
	}
	return yamlDiffPick(rng, yamlDiffKeys)
}

func yamlDiffScalar(rng *rand.Rand) string {
	if rng.IntN(4) > 0 {
		return yamlDiffScalars[rng.IntN(33)]
	}
	return yamlDiffPick(rng, yamlDiffScalars)
}

func yamlDiffPick[T any](rng *rand.Rand, pool []T) T { return pool[rng.IntN(len(pool))] }

// yamlDiffFlow is a flow collection of scalars and flow collections.
func yamlDiffFlow(rng *rand.Rand, depth int) string {
	var items []string
	for range rng.IntN(4) {
		v := yamlDiffScalar(rng)
		if depth > 0 && rng.IntN(3) == 0 {
			v = yamlDiffFlow(rng, depth-1)
		}
		if rng.IntN(2) == 0 {
			items = append(items, v)
		} else {
			items = append(items, yamlDiffKey(rng)+yamlDiffPick(rng, []string{": ", ": ", ":", " : "})+v)
		}
	}
	sep := yamlDiffPick(rng, []string{", ", ", ", ",", " , "})
	if rng.IntN(2) == 0 {
		return "[" + strings.Join(items, sep) + yamlDiffPick(rng, []string{"]", "]", " ]", ", ]"})
	}
	return "{" + strings.Join(items, sep) + yamlDiffPick(rng, []string{"}", "}", " }", ", }"})
}

// yamlDiffDocument is a random document: a block mapping at its top.
func yamlDiffDocument(rng *rand.Rand) string {
	var b strings.Builder
	var mapping, sequence func(indent, depth int, first string)
	inline := func() string {
		if rng.IntN(6) == 0 {
			return yamlDiffFlow(rng, 2)
		}
		return yamlDiffScalar(rng)
	}
	end := func() {
		b.WriteString(yamlDiffPick(rng, []string{"", "", "", "", "", " ", " # c", "  #c"}))
		b.WriteString(yamlDiffPick(rng, []string{"\n", "\n", "\n", "\n", "\n", "\n\n", "\n  # c\n", "\n# c\n"}))
	}
	// value writes what follows "key:" or "- ": an inline value, or a block below.
	value := func(indent, depth int, inSeq bool) {
		switch r := rng.IntN(6); {
		case depth == 0 || r < 3:
			b.WriteString(" " + inline())
			end()
		case r == 3 && !inSeq:
			b.WriteString(yamlDiffPick(rng, []string{"", "", " # c"}) + "\n")
			sequence(indent+yamlDiffPick(rng, []int{0, 0, 2, 1, 4}), depth-1, "")
		case r == 3:
			sequence(indent+2, depth-1, "- ")
		case inSeq:
			mapping(indent+2, depth-1, yamlDiffPick(rng, []string{" ", " ", "   "}))
		default:
			b.WriteString(yamlDiffPick(rng, []string{"", "", " # c"}) + "\n")
			mapping(indent+yamlDiffPick(rng, []int{2, 2, 1, 3, 4}), depth-1, "")
		}
	}
	// first is what the first line starts with instead of its indentation (after a sequence's "-").
	mapping = func(indent, depth int, first string) {
		for i := range 1 + rng.IntN(4) {
			if i == 0 && first != "" {
				b.WriteString(first)
			} else {
				b.WriteString(strings.Repeat(" ", indent))
			}
			b.WriteString(yamlDiffKey(rng) + ":")
			value(indent, depth, false)
		}
	}
	sequence = func(indent, depth int, first string) {
		for i := range 1 + rng.IntN(4) {
			if i == 0 && first != "" {
				b.WriteString(first)
			} else {
				b.WriteString(strings.Repeat(" ", indent) + "-")
			}
			value(indent, depth, true)
		}
	}
	mapping(0, 1+rng.IntN(4), "")
	doc := b.String()
	if rng.IntN(3) == 0 && len(doc) > 0 { // a byte changed, deleted or doubled, or a line moved
		i := rng.IntN(len(doc))
		switch rng.IntN(4) {
		case 0:
			doc = doc[:i] + yamlDiffPick(rng, []string{" ", ":", "-", "#", "'", "\"", "\n", "\t", "[", "{", "a", "0"}) + doc[i+1:]
		case 1:
			doc = doc[:i] + doc[i+1:]
		case 2:
			doc = doc[:i] + doc[i:i+1] + doc[i:]
		default:
			lines := strings.SplitAfter(doc, "\n")
			j, k := rng.IntN(len(lines)), rng.IntN(len(lines))
			lines[j], lines[k] = lines[k], lines[j]
			doc = strings.Join(lines, "")
		}
	}
	return doc
}

// Keys that become one JSON key are left to YAMLToJSON, whose choice between them depends on map
// order: the line reader must not pick one of its own.
func TestLineReaderRefusesKeysThatBecomeOne(t *testing.T) {
	for _, doc := range []string{"80: a\n'80': b\n", "a: 1\n\"a\": 2\n", "x:\n  0: a\n  '0': b\n"} {
		if _, ok := readBlockYAML([]byte(doc)); ok {
			t.Errorf("the line reader took %q", doc)
		}
	}
}
