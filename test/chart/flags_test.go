package chart

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/servicegraph/servicegraph-operator/test/testenv"
)

// binaryFlag is one flag as `manager --help` lists it.
type binaryFlag struct{ typ, def string }

// binaryFlags reads the manager's flag set from its --help (Go's flag.PrintDefaults): a line
// "  -name type" per flag, the usage below it ending in "(default X)" unless X is the zero value.
func binaryFlags(t *testing.T) map[string]binaryFlag {
	t.Helper()
	out, _ := exec.Command(manager, "--help").CombinedOutput() // exits 0 or 2 depending on Go's version
	header := regexp.MustCompile(`^  -(\S+)(?: (\S+))?$`)
	def := regexp.MustCompile(`\(default (.*)\)$`)
	flags := map[string]binaryFlag{}
	var name string
	for _, line := range strings.Split(string(out), "\n") {
		if m := header.FindStringSubmatch(line); m != nil {
			name = m[1]
			flags[name] = binaryFlag{typ: m[2]}
			continue
		}
		if m := def.FindStringSubmatch(strings.TrimSpace(line)); m != nil && name != "" {
			f := flags[name]
			f.def = m[1]
			if unquoted, err := strconv.Unquote(m[1]); err == nil {
				f.def = unquoted
			}
			flags[name] = f
		}
	}
	if len(flags) < 10 {
		t.Fatalf("could not read the manager's flags from --help:\n%s", out)
	}
	return flags
}

// zero is the default --help leaves out.
func (f binaryFlag) zero() string {
	switch f.typ {
	case "":
		return "false" // a bool flag prints no type
	case "int", "uint", "int64", "uint64", "float64":
		return "0"
	case "duration":
		return "0s"
	}
	return ""
}

// Every flag of the binary is a value of the chart with the binary's default; only the Deployment's
// deliberate choices differ.
func TestEveryFlagIsAValue(t *testing.T) {
	var values struct{ Flags map[string]any }
	testenv.ReadYAML(t, filepath.Join(chartDir, "values.yaml"), &values)
	deliberate := map[string]string{"leader-elect": "true", "metrics-bind-address": ":8443"}
	// In a pod the manager uses its ServiceAccount; a kubeconfig is for running it elsewhere.
	notValues := map[string]bool{"kubeconfig": true}

	flags := binaryFlags(t)
	for name, f := range flags {
		if notValues[name] {
			continue
		}
		v, ok := values.Flags[name]
		if !ok {
			t.Errorf("flag --%s (default %q) has no value in values.yaml's flags", name, f.defaultValue())
			continue
		}
		got := format(v)
		want := f.defaultValue()
		if d, ok := deliberate[name]; ok {
			want = d
		}
		if !sameValue(f.typ, got, want) {
			t.Errorf("flags.%s is %q, the binary's default %q", name, got, want)
		}
	}
	for name := range values.Flags {
		if _, ok := flags[name]; !ok {
			t.Errorf("values.yaml's flags.%s is no flag of the manager", name)
		}
	}
}

func (f binaryFlag) defaultValue() string {
	if f.def == "" {
		return f.zero()
	}
	return f.def
}

// format writes a value as the chart passes it (YAML numbers arrive as float64).
func format(v any) string {
	if n, ok := v.(float64); ok {
		return strconv.FormatInt(int64(n), 10)
	}
	return fmt.Sprint(v)
}

// sameValue compares durations by length (values may say 1m, the binary 1m0s), and an unset
// string, func-valued or zero flag with an empty value.
func sameValue(typ, got, want string) bool {
	if typ == "duration" {
		g, err1 := time.ParseDuration(got)
		w, err2 := time.ParseDuration(want)
		return err1 == nil && err2 == nil && g == w
	}
	return got == want
}
