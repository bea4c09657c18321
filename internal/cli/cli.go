// Package cli is the servicegraph command line: subcommands that read ServiceGraph manifests and
// run the same pure code as the operator. cmd/servicegraph only wires it to the process.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// Exit statuses.
const (
	ExitOK       = 0
	ExitInvalid  = 1 // the input is invalid, unreadable or empty (lint reports unreadable input as findings)
	ExitFindings = 1 // lint: a finding at or above --fail-on
	ExitUsage    = 2 // the command line is wrong
)

// env is what a subcommand may touch of the process.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
}

type command struct {
	name    string
	summary string
	run     func(e *env, args []string) int
}

// commands lists the subcommands.
var commands = []command{
	{name: "compile", summary: "print the objects the operator applies for ServiceGraph manifests", run: runCompile},
	{name: "lint", summary: "check ServiceGraphs, NetworkPolicies and Istio policies for security problems", run: runLint},
	{name: "graph", summary: "draw ServiceGraphs as a Mermaid or Graphviz diagram", run: runGraph},
	{name: "check", summary: "say what the policies do with one connection, layer by layer, and why", run: runCheck},
	{name: "diff", summary: "list the connections a change of graphs or policies opens and closes", run: runDiff},
	{name: "discover", summary: "propose the ServiceGraph a namespace's observed traffic implies", run: runDiscover},
	{name: "audit", summary: "judge observed traffic with a graph: what it would refuse, what it declares unused", run: runAudit},
}

// Main runs the command line args (without the program name) and returns the exit status.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr}
	if len(args) == 0 {
		usage(stderr)
		return ExitUsage
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		usage(stdout)
		return ExitOK
	}
	for _, c := range commands {
		if c.name == args[0] {
			return c.run(e, args[1:])
		}
	}
	fmt.Fprintf(stderr, "servicegraph: unknown command %q\n\n", args[0])
	usage(stderr)
	return ExitUsage
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: servicegraph COMMAND [flags]")
	fmt.Fprintln(w, "\nCommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'servicegraph COMMAND -h' for a command's flags.")
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// newFlagSet makes a subcommand's flags with the -f every subcommand takes; synopsis follows the
// command's name in the usage line, description explains the command.
func newFlagSet(e *env, name, synopsis, description string) (*flag.FlagSet, *input) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	in := &input{}
	fs.Var(&in.files, "f", "a manifest: FILE, DIR (*.yaml, *.yml, *.json below it) or - for standard input; repeatable")
	fs.StringVar(&in.namespace, "n", "", "the namespace of objects that name none, as kubectl apply -n gives it; a ServiceGraph without a namespace needs it")
	fs.StringVar(&in.namespace, "namespace", "", "the long form of -n")
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "Usage: servicegraph %s %s\n\n%s\n\nFlags:\n", name, synopsis, description)
		fs.PrintDefaults()
	}
	return fs, in
}

// parseFlags parses a subcommand's arguments, which must include -f and nothing after the flags.
// It returns false, with the exit status, when the command must stop: on -h or a usage error.
func parseFlags(e *env, fs *flag.FlagSet, args []string, in *input) (int, bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK, false
		}
		return ExitUsage, false
	}
	switch {
	case fs.NArg() > 0:
		return usageError(e, fs, "unexpected argument %q", fs.Arg(0)), false
	case len(in.files) == 0:
		return usageError(e, fs, "-f is required"), false
	}
	return ExitOK, true
}

func usageError(e *env, fs *flag.FlagSet, format string, args ...any) int {
	fmt.Fprintf(e.stderr, "servicegraph %s: %s\n", fs.Name(), fmt.Sprintf(format, args...))
	fs.Usage()
	return ExitUsage
}

func printErrors(e *env, errs []error) {
	for _, err := range errs {
		fmt.Fprintln(e.stderr, err)
	}
}

// write prints a command's output and returns code, or ExitInvalid when stdout fails.
func write(e *env, out []byte, code int) int {
	if _, err := e.stdout.Write(out); err != nil {
		fmt.Fprintln(e.stderr, err)
		return ExitInvalid
	}
	return code
}
