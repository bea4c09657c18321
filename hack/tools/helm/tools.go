//go:build tools

// Package tools records the Helm command `make helm` builds.
package tools

import _ "helm.sh/helm/v4/cmd/helm"
