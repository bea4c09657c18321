// Command servicegraph works with ServiceGraph manifests offline: `servicegraph compile` prints
// the NetworkPolicies and Istio policies the operator would apply.
package main

import (
	"os"

	"github.com/servicegraph/servicegraph-operator/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
