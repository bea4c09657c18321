// Package chart tests the Helm chart (charts/servicegraph-operator) and the release manifest
// (dist/install.yaml) with the real Helm CLI (built into bin/helm by `make helm`) and the test
// control plane: lint, template, the chart against config/ (one source of truth), and installs whose
// operator runs as the manager binary under the installed ServiceAccount's token.
package chart
