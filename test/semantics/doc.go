// Package semantics holds the project's pure evaluator of policies (internal/eval) to
// implementations this project did not write. Its tests are differential: they build small worlds
// (namespaces, pods, addresses outside the cluster and the policies over them), ask eval and the
// other implementation about every connection among them, and fail on any difference that is not
// a documented limitation of the other implementation.
//
// networkpolicy_test.go judges eval's NetworkPolicy layer (egress of the source, ingress of the
// destination; no workload is meshed, so the Istio layers never apply) against np-guard's
// netpol-analyzer, over every NetworkPolicy of the public corpus in test/testdata/corpus and over
// random policy sets drawn with a fixed seed.
package semantics
