// Package testenv starts the project's test control plane: a real kube-apiserver and etcd (built by
// `make envtest`) with the ServiceGraph CRD and, optionally, Istio's CRDs from the istio.io/api module.
package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/servicegraph/servicegraph-operator/controllers"
)

// KubernetesVersion is the version of the control plane `make envtest` builds.
const KubernetesVersion = "1.37.2"

// Root is the repository's top directory.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// AssetsDir is where kube-apiserver, etcd and kubectl are: KUBEBUILDER_ASSETS when set (the
// Makefile sets it), else the folder `make envtest` builds into.
func AssetsDir() string {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir
	}
	return filepath.Join(Root(), "bin", "k8s", KubernetesVersion+"-"+runtime.GOOS+"-"+runtime.GOARCH)
}

// Kubectl is the kubectl built at the API server's version.
func Kubectl() string { return filepath.Join(AssetsDir(), "kubectl") }

// ProjectCRDs is the folder of the generated ServiceGraph CRD.
func ProjectCRDs() string { return filepath.Join(Root(), "config", "crd", "bases") }

// IstioCRDs is Istio's own CRD file, shipped in the istio.io/api module the project depends on, so
// the tests validate against exactly the schema (and CEL rules) a real mesh has.
func IstioCRDs() (string, error) {
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "istio.io/api")
	cmd.Dir = Root()
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("locating the istio.io/api module: %w", err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), "kubernetes", "customresourcedefinitions.gen.yaml"), nil
}

// GatewayCRDs is the Gateway API's standard CRDs, shipped in the sigs.k8s.io/gateway-api module
// the project depends on: Istio's waypoints are Gateways.
func GatewayCRDs() (string, error) {
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/gateway-api")
	cmd.Dir = Root()
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("locating the sigs.k8s.io/gateway-api module: %w", err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), "config", "crd", "standard"), nil
}

// CiliumCRDs is Cilium's CiliumNetworkPolicy CRD, shipped in the github.com/cilium/cilium module
// at the version test/cilium (the module that runs Cilium's policy engine on the operator's
// objects) pins; the operator's own module does not take Cilium's.
func CiliumCRDs() (string, error) {
	dir := filepath.Join(Root(), "test", "cilium")
	goCmd := func(args ...string) *exec.Cmd {
		c := exec.Command("go", args...)
		c.Dir = dir
		return c
	}
	out, err := goCmd("list", "-m", "-f", "{{.Dir}}", "github.com/cilium/cilium").Output()
	if err == nil && strings.TrimSpace(string(out)) == "" {
		// Required but not downloaded yet.
		if err = goCmd("mod", "download", "github.com/cilium/cilium").Run(); err == nil {
			out, err = goCmd("list", "-m", "-f", "{{.Dir}}", "github.com/cilium/cilium").Output()
		}
	}
	if err != nil || strings.TrimSpace(string(out)) == "" {
		return "", fmt.Errorf("locating the github.com/cilium/cilium module of test/cilium: %v", err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), "pkg", "k8s", "apis", "cilium.io", "client", "crds", "v2", "ciliumnetworkpolicies.yaml"), nil
}

// New describes a control plane with the project's CRDs, plus Istio's and the Gateway API's
// (ambient mode's waypoints) when withIstio is set.
func New(withIstio bool) (*envtest.Environment, error) {
	paths := []string{ProjectCRDs()}
	if withIstio {
		istio, err := IstioCRDs()
		if err != nil {
			return nil, err
		}
		gateway, err := GatewayCRDs()
		if err != nil {
			return nil, err
		}
		paths = append(paths, istio, gateway)
	}
	if _, err := os.Stat(filepath.Join(AssetsDir(), "kube-apiserver")); err != nil {
		return nil, fmt.Errorf("no test control plane in %s: run `make envtest` first", AssetsDir())
	}
	return &envtest.Environment{
		BinaryAssetsDirectory: AssetsDir(),
		CRDDirectoryPaths:     paths,
		ErrorIfCRDPathMissing: true,
	}, nil
}

// ManagerOptions are the options of a manager that a test runs in its own process: the operator's
// scheme and cache, no metrics or probe servers, and leave to start several managers one after
// another (controller names are otherwise unique per process).
func ManagerOptions() ctrl.Options {
	return ctrl.Options{
		Scheme:                 controllers.NewScheme(),
		Cache:                  controllers.CacheOptions(),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
	}
}
