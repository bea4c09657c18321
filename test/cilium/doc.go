// Package cilium holds tests that judge the generated CiliumNetworkPolicies with Cilium's own code:
// its types and validation, and its policy repository resolving every endpoint's policy. A module
// of its own, so the operator's module does not take Cilium's dependency tree.
package cilium
