package cli

import (
	"net/url"
	"os"
	"path/filepath"

	"github.com/servicegraph/servicegraph-operator/internal/lint"
)

// lintFormats print a lint report.
var lintFormats = map[string]func(lint.Report) ([]byte, error){
	"text":  func(r lint.Report) ([]byte, error) { return r.Text(), nil },
	"json":  lint.Report.JSON,
	"sarif": func(r lint.Report) ([]byte, error) { return r.SARIF(sarifURI) },
}

// lintExitCodes is lint's exit status contract; the README states it in the same words (a test
// holds them to it).
const lintExitCodes = "Exits 0 when no finding is at the --fail-on severity or above, 1 when one is\n" +
	"(unreadable input is an IN001 error), 2 on a wrong command line."

func runLint(e *env, args []string) int {
	fs, in := newFlagSet(e, "lint", "-f FILE|DIR|- [-f ...] [--format text|json|sarif] [--fail-on error|warning|note]",
		"Checks ServiceGraphs and hand-written NetworkPolicies, CiliumNetworkPolicies and\n"+
			"CiliumClusterwideNetworkPolicies (cilium.io/v2), Istio AuthorizationPolicies and\n"+
			"PeerAuthentications (security.istio.io v1 and v1beta1) for security and correctness problems.\n"+
			"Input that cannot be read (a missing file, broken YAML, a file without apiVersion and kind)\n"+
			"is a finding and the rest is still linted; every run prints a report, in every format.\n"+
			lintExitCodes+"\n"+
			"An object annotated "+lint.AnnotationIgnore+": \"ID,...\" is not reported for those rules.")
	format := fs.String("format", "text", "output format: text, json or sarif (SARIF 2.1.0, for code-scanning UIs)")
	failOn := fs.String("fail-on", string(lint.SeverityError), "exit 1 when a finding is this severe or more: error, warning or note")
	opts := lint.DefaultOptions()
	fs.StringVar(&opts.RootNamespace, "root-namespace", opts.RootNamespace, "Istio's root namespace, where policies without a selector apply to the whole mesh")
	workloads := fs.String("workloads", "auto", "which workloads a policy that selects none of them is judged against (WL001): auto (those of the policy's own file, when it has any) or complete (every workload of the input: it holds them all)")
	if code, ok := parseFlags(e, fs, args, in); !ok {
		return code
	}
	threshold, err := lint.ParseSeverity(*failOn)
	if err != nil {
		return usageError(e, fs, "--fail-on: %v", err)
	}
	switch *workloads {
	case "auto":
	case "complete":
		opts.Workloads = true
	default:
		return usageError(e, fs, "--workloads must be auto or complete, not %q", *workloads)
	}
	printer := lintFormats[*format]
	if printer == nil {
		return usageError(e, fs, "--format must be text, json or sarif, not %q", *format)
	}

	// Every run prints a report, in every format: a file with nothing to lint is a finding.
	in.requireObjects = true
	docs, skipped, problems := readDocuments(in, e.stdin, lintKinds)
	report := lintDocuments(docs, opts)
	report.Skipped = skipped
	for _, p := range problems {
		report.Findings = append(report.Findings, lint.InputFinding(p.problem, p.file, p.line, p.kind, p.name, p.err.Error()))
	}
	lint.Sort(report.Findings)
	out, err := printer(report)
	if err != nil {
		printErrors(e, []error{err})
		return ExitInvalid
	}
	code := ExitOK
	if lint.Count(report.Findings, threshold) > 0 {
		code = ExitFindings
	}
	return write(e, out, code)
}

func lintDocuments(docs []document, opts lint.Options) lint.Report {
	objs := make([]lint.Object, len(docs))
	for i, d := range docs {
		objs[i] = lint.Object{File: d.file, Line: d.line, Object: d.obj}
	}
	return lint.Report{Findings: lint.Lint(objs, opts), Objects: len(objs)}
}

// sarifURI makes a file name a relative URI reference, as code-scanning UIs resolve artifact
// locations against the repository's root (the working directory of a CI job).
func sarifURI(file string) string {
	if filepath.IsAbs(file) {
		if wd, err := os.Getwd(); err == nil {
			if rel, err := filepath.Rel(wd, file); err == nil {
				file = rel
			}
		}
	}
	return (&url.URL{Path: filepath.ToSlash(file)}).String()
}
