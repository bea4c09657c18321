package cli

import (
	"fmt"
	"strings"
	"testing"
)

// diff of a pull request on a graph compiled for Cilium: a host that toFQDNs stops naming closes,
// a new one opens, and a path a new HTTP rule admits opens while the old ones stay.
func TestDiffCiliumGolden(t *testing.T) {
	var out strings.Builder
	for _, args := range [][]string{
		{"testdata/diff-cilium/old", "testdata/diff-cilium/new"},
		{"testdata/diff-cilium/new", "testdata/diff-cilium/old", "--format", "markdown"},
	} {
		code, stdout, stderr := run(t, "", append([]string{"diff"}, args...)...)
		fmt.Fprintf(&out, "$ servicegraph diff %s\n%s[exit %d]%s\n", strings.Join(args, " "), stdout, code, stderr)
	}
	golden(t, "diff-cilium/golden.txt", out.String())
}
