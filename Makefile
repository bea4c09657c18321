# servicegraph-operator — every developer and CI entry point.
# Everything the targets need is installed into the git-ignored bin/ from the Go module proxy.

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

# Every go command here runs Go 1.27.3, which the go command downloads from the module proxy once
# (~76 MB): Go 1.26.8's standard library has vulnerabilities reachable from the operator (make
# verify), and 1.27.3 is the only fixed Go the proxy serves. go.mod keeps `go 1.26.0` (a minimum;
# no dependency needs more): with GOTOOLCHAIN=local in a Go's go.env, as here, only this export
# switches, and a higher go line would just make go commands run without it fail.
export GOTOOLCHAIN := go1.27.3

IMG ?= servicegraph-operator:dev
ROOT := $(CURDIR)
BIN := $(ROOT)/bin
GOOS := $(shell go env GOOS)
GOARCH := $(shell go env GOARCH)

## Pinned tool versions.
CONTROLLER_TOOLS_VERSION ?= v0.23.0
K8S_VERSION ?= 1.37.2
K8S_MINOR := $(word 2,$(subst ., ,$(K8S_VERSION)))
GOLANGCI_LINT_VERSION ?= v2.15.0
BENCHSTAT_VERSION ?= v0.0.0-20260908200009-22c9c6c9d4da

CONTROLLER_GEN := $(BIN)/controller-gen-$(CONTROLLER_TOOLS_VERSION)
# The NetworkPolicy enforcer of the dataplane suite, at the version hack/tools/knp/go.mod pins.
KNP_VERSION := $(shell awk '$$1 == "sigs.k8s.io/kube-network-policies" {print $$2}' hack/tools/knp/go.mod)
KNP_DIR := $(BIN)/knp/$(KNP_VERSION)
KNP := $(KNP_DIR)/kube-network-policies
# The Argo CD the real-Argo CD suite (test/argocd) runs, at the version hack/tools/argocd/go.mod pins.
ARGOCD_VERSION := $(shell awk '$$1 == "github.com/argoproj/argo-cd/v3" {print $$2}' hack/tools/argocd/go.mod)
ARGOCD_DIR := $(BIN)/argocd/$(ARGOCD_VERSION)
ARGOCD := $(ARGOCD_DIR)/argocd
# The Prometheus server and promtool of the traffic suites, at the version hack/tools/prometheus/go.mod pins.
PROMETHEUS_VERSION := $(shell awk '$$1 == "github.com/prometheus/prometheus" {print $$2} $$1 == "require" && $$2 == "github.com/prometheus/prometheus" {print $$3}' hack/tools/prometheus/go.mod)
PROMETHEUS_DIR := $(BIN)/prometheus/$(PROMETHEUS_VERSION)
PROMETHEUS := $(PROMETHEUS_DIR)/prometheus
# The control plane the tests and the demo run: kube-apiserver, etcd and a kubectl of the same version.
ENVTEST_DIR := $(BIN)/k8s/$(K8S_VERSION)-$(GOOS)-$(GOARCH)
KUBE_APISERVER := $(ENVTEST_DIR)/kube-apiserver
ETCD := $(ENVTEST_DIR)/etcd
KUBECTL := $(ENVTEST_DIR)/kubectl
ENVTEST_BINARIES := $(KUBE_APISERVER) $(ETCD) $(KUBECTL)
export KUBEBUILDER_ASSETS := $(ENVTEST_DIR)

# Stamp the real version into the Kubernetes binaries (they would print v0.0.0-master otherwise).
K8S_VERSION_PKGS := k8s.io/component-base/version k8s.io/client-go/pkg/version
K8S_LDFLAGS := -s -w $(foreach p,$(K8S_VERSION_PKGS),-X $(p).gitVersion=v$(K8S_VERSION) -X $(p).gitMajor=1 -X $(p).gitMinor=$(K8S_MINOR) -X $(p).gitTreeState=clean)

# Fragments under hack/make/ (one per concern: release, image, chart, ...) define their targets and
# append to TEST_DEPS what `make test` builds first, and to TEST_SUITES the targets it runs after the
# Go tests.
TEST_DEPS :=
TEST_SUITES :=
include $(sort $(wildcard hack/make/*.mk))

.PHONY: all
all: build

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-15s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate the CRD and RBAC manifests from the kubebuilder markers.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd paths="./api/...;./controllers/...;./internal/compiler/..." output:crd:artifacts:config=config/crd/bases
	go run ./hack/crddoc config/crd/bases/*.yaml
	$(MAKE) --no-print-directory chart-sync

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate the DeepCopy methods of the API types.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./api/...;./internal/cilium/..."

.PHONY: fmt
fmt: ## Run gofmt on the code.
	gofmt -w $$(git ls-files '*.go')

.PHONY: vet
vet: ## Run go vet.
	go vet ./...

.PHONY: lint
lint: ## go vet, and fail if gofmt or the generators would change anything.
	go vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change: $$out"; exit 1; fi

.PHONY: verify-generated
verify-generated: generate manifests ## Fail if the generated code or manifests are out of date.
	@git diff --exit-code -- api internal/cilium config/crd config/rbac charts/servicegraph-operator/crds charts/servicegraph-operator/files || { echo "run 'make generate manifests' and commit the result"; exit 1; }

.PHONY: test
test: envtest knp argocd prometheus chromium lint verify-generated $(TEST_DEPS) ## Run every test: unit, golden, fuzz seeds, envtest, e2e, real packets (needs root), a real Argo CD (test/argocd), a real Prometheus (test/traffic), a real Chromium (test/browser), Istio's judgement (test/istio), Cilium's judgement (test/cilium) and the Gatekeeper policies (test/opa).
	go test ./... -count=1 -timeout 25m
	cd test/istio && go vet ./... && go test ./... -count=1 -timeout 10m
	cd test/cilium && go vet ./... && go test ./... -count=1 -timeout 10m
	cd test/opa && go vet ./... && go test ./... -count=1
	go test ./internal/graph -run '^$$' -fuzz FuzzParseEdge -fuzztime 5s
	$(if $(TEST_SUITES),$(MAKE) $(TEST_SUITES))

.PHONY: fuzz
fuzz: ## Fuzz the edge parser for a minute.
	go test ./internal/graph -run '^$$' -fuzz FuzzParseEdge -fuzztime 60s

.PHONY: bench
bench: envtest knp prometheus ## Measure the operator side by side with kubectl at scale, and time to enforcement on real packets; writes docs/performance.md.
	go run ./test/bench

BASE ?= main
COUNT ?= 10
BENCHSTAT := $(BIN)/benchstat-$(BENCHSTAT_VERSION)

.PHONY: bench-compare
bench-compare: $(BENCHSTAT) ## Compare the compile benchmark of BASE (default main) with the working tree, with benchstat.
	hack/bench-compare.sh $(BASE) $(COUNT) $(BENCHSTAT)

$(BENCHSTAT):
	GOBIN=$(BIN)/tmp go install golang.org/x/perf/cmd/benchstat@$(BENCHSTAT_VERSION)
	mv $(BIN)/tmp/benchstat $@

.PHONY: envtest
envtest: $(ENVTEST_BINARIES) ## Build the test control plane (kube-apiserver, etcd, kubectl) once.

$(KUBE_APISERVER): hack/tools/k8s/go.mod
	@echo "building kube-apiserver v$(K8S_VERSION) from the Go module proxy (first time: a few minutes)"
	cd hack/tools/k8s && go build -trimpath -ldflags "$(K8S_LDFLAGS)" -o $@ k8s.io/kubernetes/cmd/kube-apiserver

$(KUBECTL): hack/tools/k8s/go.mod
	cd hack/tools/k8s && go build -trimpath -ldflags "$(K8S_LDFLAGS)" -o $@ k8s.io/kubernetes/cmd/kubectl

$(ETCD): hack/tools/etcd/go.mod
	cd hack/tools/etcd && go build -trimpath -ldflags "-s -w" -o $@ go.etcd.io/etcd/server/v3

.PHONY: knp
knp: $(KNP) ## Build kube-network-policies (as released and adapted to kernels without NFT_QUEUE) and the kernel probe.

$(KNP): hack/tools/knp/go.mod hack/tools/knp/build.sh $(wildcard hack/tools/knp/*/*.go)
	@echo "building kube-network-policies $(KNP_VERSION) from the Go module proxy (first time: a few minutes)"
	hack/tools/knp/build.sh $(KNP_DIR)

.PHONY: argocd
argocd: git $(ARGOCD) ## Build Argo CD (repo-server, application and ApplicationSet controllers), a Redis and kustomize for test/argocd, once per version.

# hack/tools/argocd/build.sh builds Argo CD's multi-call binary with the Go toolchain it needs
# (go1.27.3, like everything here; ARGOCD_GOTOOLCHAIN overrides it for Argo CD alone), the
# miniredis program of hack/tools/argocd/redis and kustomize, and copies from the Argo CD module,
# unchanged, its CRDs and the two scripts its repo-server always runs (hack/git-verify-wrapper.sh,
# hack/gpg-wrapper.sh) into a PATH directory under bin/: a container image would carry them; nothing
# of Argo CD's is committed here. First build: 5-9 minutes (7-10 CPU-minutes) and a 2.5 GB peak on 2 cores.
$(ARGOCD): hack/tools/argocd/go.mod hack/tools/argocd/build.sh $(wildcard hack/tools/argocd/redis/*.go)
	@echo "building Argo CD $(ARGOCD_VERSION) from the Go module proxy (first time: 5-9 minutes)"
	hack/tools/argocd/build.sh $(ARGOCD_DIR)

.PHONY: prometheus
prometheus: $(PROMETHEUS) ## Build the Prometheus server and promtool the traffic suites query, once per version.

# The HTTP API is all the suites use: built without the builtinassets tag, the server has no web UI.
# First build: ~8 minutes on 2 cores.
$(PROMETHEUS): hack/tools/prometheus/go.mod
	@echo "building Prometheus $(PROMETHEUS_VERSION) from the Go module proxy (first time: ~8 minutes)"
	cd hack/tools/prometheus && go build -trimpath -ldflags "-s -w" -o $(PROMETHEUS_DIR)/promtool github.com/prometheus/prometheus/cmd/promtool
	cd hack/tools/prometheus && go build -trimpath -ldflags "-s -w" -o $@.tmp github.com/prometheus/prometheus/cmd/prometheus
	mv $@.tmp $@

.PHONY: git
git: ## Install git (Debian's package) when it is missing: Argo CD's repo-server and test/argocd run it.
	@command -v git >/dev/null || { echo "installing git with apt-get"; apt-get update -qq && apt-get install -y -qq git; }

.PHONY: chromium
chromium: ## Install Chromium and chromedriver (Debian's packages) when missing: test/browser draws audit -o html in it.
	@test -x /usr/bin/chromium || { echo "installing chromium with apt-get"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; }

$(CONTROLLER_GEN):
	GOBIN=$(BIN)/tmp go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)
	mv $(BIN)/tmp/controller-gen $@

##@ Build

.PHONY: build
build: ## Build the manager and the servicegraph CLI into bin/.
	go build -o $(BIN)/manager ./cmd/manager
	go build -o $(BIN)/servicegraph ./cmd/servicegraph
	ln -sf servicegraph $(BIN)/kubectl-servicegraph # kubectl finds it as the plugin `kubectl servicegraph`

.PHONY: run
run: install ## Run the manager against the cluster of the current kubeconfig.
	go run ./cmd/manager

.PHONY: demo
demo: envtest build ## Start a local control plane, run the operator on the sample graph, print the result.
	go run ./hack/demo --manager $(BIN)/manager

.PHONY: docker-build
docker-build: ## Build the manager image (needs a container engine).
	docker build -t $(IMG) .

##@ Deployment (current kubeconfig)

.PHONY: install
install: manifests $(KUBECTL) ## Install the CRDs into the cluster.
	$(KUBECTL) apply --server-side -k config/crd

.PHONY: uninstall
uninstall: manifests $(KUBECTL) ## Remove the CRDs from the cluster.
	$(KUBECTL) delete --ignore-not-found -k config/crd

.PHONY: deploy
deploy: manifests $(KUBECTL) ## Deploy the operator (CRDs, RBAC, Deployment) with kustomize.
	$(KUBECTL) apply --server-side -k config/default

.PHONY: undeploy
undeploy: $(KUBECTL) ## Remove the operator.
	$(KUBECTL) delete --ignore-not-found -k config/default
