// Package opa runs the Gatekeeper policies of config/gatekeeper through Gatekeeper's own
// constraint framework (github.com/open-policy-agent/frameworks/constraint, its local Rego driver,
// the code Gatekeeper and gator evaluate templates with) and holds them to `servicegraph lint`:
// table tests per template, and an agreement test over the public corpus of test/testdata/corpus.
// A module of its own, so the operator's module does not take OPA's dependency tree.
package opa
