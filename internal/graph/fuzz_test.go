package graph

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

// FuzzParseEdge checks, for any input, that the parser does not panic; that an error is a
// ParseError with a column inside the edge; and that an accepted edge is accepted by the CRD
// pattern too (else the API server would refuse what the compiler takes) and renders back to a
// string that parses to the same edge. The seed corpus is testdata/fuzz/FuzzParseEdge.
func FuzzParseEdge(f *testing.F) {
	pattern := crdEdgePattern(f)
	for _, tc := range invalidEdges {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e, err := ParseEdge(s)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("ParseEdge(%q): error is a %T, want *ParseError", s, err)
			}
			if pe.Column < 1 || pe.Column > utf8.RuneCountInString(s)+1 {
				t.Fatalf("ParseEdge(%q): column %d outside the edge", s, pe.Column)
			}
			if prefix := fmt.Sprintf("edge %q: column %d: ", s, pe.Column); !strings.HasPrefix(err.Error(), prefix) {
				t.Fatalf("ParseEdge(%q): message %q does not start with %q", s, err, prefix)
			}
			return
		}
		if !pattern.MatchString(s) {
			t.Errorf("ParseEdge accepts %q but the CRD pattern rejects it", s)
		}
		rendered := e.String()
		again, err := ParseEdge(rendered)
		if err != nil {
			t.Fatalf("ParseEdge(%q) = %+v renders as %q, which does not parse: %v", s, e, rendered, err)
		}
		if diff := cmp.Diff(e, again); diff != "" {
			t.Fatalf("%q renders as %q, which parses differently (-first +again):\n%s", s, rendered, diff)
		}
		if again.String() != rendered {
			t.Fatalf("rendering is not stable: %q then %q", rendered, again.String())
		}
	})
}
