package compiler

import (
	"slices"
	"testing"
)

func TestParseClusterCIDRs(t *testing.T) {
	for _, tc := range []struct {
		in, err string
		want    []string
	}{
		{in: "10.244.0.0/16,10.96.0.0/12", want: []string{"10.244.0.0/16", "10.96.0.0/12"}},
		{in: " 10.244.1.7/16 , fd00::1/64", want: []string{"10.244.0.0/16", "fd00::/64"}},
		{in: "10.244.0.0", err: `"10.244.0.0" is not an IP range such as 10.244.0.0/16`},
		{in: "10.0.0.0/8,", err: `"" is not an IP range such as 10.244.0.0/16`},
	} {
		got, err := ParseClusterCIDRs(tc.in)
		if (err == nil) != (tc.err == "") || err != nil && err.Error() != tc.err || !slices.Equal(got, tc.want) {
			t.Errorf("ParseClusterCIDRs(%q) = %v, %v; want %v, %s", tc.in, got, err, tc.want, tc.err)
		}
	}
}
