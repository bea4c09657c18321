// Package cli is the servicegraph command line: subcommands that read ServiceGraph manifests and
// run the same pure code as the operator. cmd/servicegraph only wires it to the process.
package cli

import (
	"fmt"
	"io"
)

// Exit statuses.
const (
	ExitOK      = 0
	ExitInvalid = 1 // the input is invalid or unreadable
	ExitUsage   = 2 // the command line is wrong
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

// commands lists the subcommands; later ones (lint, graph) join here.
var commands = []command{
	{name: "compile", summary: "print the objects the operator applies for ServiceGraph manifests", run: runCompile},
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
