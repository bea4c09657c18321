# make release: the manager image without a container engine (an OCI layout and a `docker load`
# tarball) with its CycloneDX SBOM, and the kubectl plugin archives with their krew manifest.
# Everything is reproducible from the tree: same sources, same toolchain, same bytes.

##@ Release

# The version make release stamps into the image and the krew manifest. It is fixed here, not taken
# from git describe, so the committed plugins/krew/servicegraph.yaml can be regenerated identically.
VERSION ?= v0.1.0
# One timestamp for every file, tar entry and config field (https://reproducible-builds.org/).
SOURCE_DATE_EPOCH ?= 0
DIST ?= $(ROOT)/dist
IMAGE_ARCH ?= $(GOARCH)
IMAGE_REF ?= servicegraph-operator:$(VERSION)
PLUGIN_PLATFORMS := linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64
# -trimpath and no VCS stamp: the binaries depend on the sources and the Go version only.
RELEASE_GOFLAGS := -trimpath -buildvcs=false
RELEASE_LDFLAGS := -s -w
KREW_MANIFEST := plugins/krew/servicegraph.yaml

IMAGE_TOOLS_DIR := $(BIN)/image-tools
IMAGE_TOOL := $(IMAGE_TOOLS_DIR)/image
PLUGIN_TOOL := $(IMAGE_TOOLS_DIR)/plugin
CYCLONEDX_VERSION := $(shell awk '$$1 == "github.com/CycloneDX/cyclonedx-gomod" {print $$2}' hack/tools/image/go.mod)
CYCLONEDX := $(IMAGE_TOOLS_DIR)/cyclonedx-gomod-$(CYCLONEDX_VERSION)
# krew's own manifest validator and installer, at the version test/krew/go.mod pins.
KREW_VERSION := $(shell awk '$$1 == "sigs.k8s.io/krew" {print $$2}' test/krew/go.mod)
KREW_DIR := $(BIN)/krew/$(KREW_VERSION)
KREW_TOOLS := $(KREW_DIR)/kubectl-krew $(KREW_DIR)/validate-krew-manifest

.PHONY: release
release: image plugin-archives ## Build the image, its SBOM and the kubectl plugin archives into dist/, and write plugins/krew/servicegraph.yaml.
	cp $(DIST)/plugin/servicegraph.yaml $(KREW_MANIFEST)

# Phony: go build decides what is stale; a rebuild from its cache only relinks.
.PHONY: image
image: $(IMAGE_TOOL) $(CYCLONEDX) ## Build the manager image as an OCI layout (dist/image/oci) and a tarball, with its SBOM, no container engine needed.
	@mkdir -p $(DIST)/build $(DIST)/image
	CGO_ENABLED=0 GOOS=linux GOARCH=$(IMAGE_ARCH) go build $(RELEASE_GOFLAGS) -ldflags "$(RELEASE_LDFLAGS)" -o $(DIST)/build/manager-linux-$(IMAGE_ARCH) ./cmd/manager
	CGO_ENABLED=0 GOOS=linux GOARCH=$(IMAGE_ARCH) $(CYCLONEDX) app -json -noserial -notimestamp -main cmd/manager -output $(DIST)/image/sbom.cdx.json .
	SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) $(IMAGE_TOOL) -binary $(DIST)/build/manager-linux-$(IMAGE_ARCH) -arch $(IMAGE_ARCH) \
		-sbom $(DIST)/image/sbom.cdx.json -oci $(DIST)/image/oci -tar $(DIST)/image/manager-image.tar \
		-ref $(IMAGE_REF) -version $(VERSION) > $(DIST)/image/digest
	@echo "image $(IMAGE_REF) $$(cat $(DIST)/image/digest)"

.PHONY: plugin-archives
plugin-archives: $(PLUGIN_TOOL) ## Build kubectl-servicegraph archives for every krew platform and their manifest into dist/plugin.
	@mkdir -p $(DIST)/build
	for p in $(PLUGIN_PLATFORMS); do \
		CGO_ENABLED=0 GOOS=$${p%/*} GOARCH=$${p#*/} go build $(RELEASE_GOFLAGS) -ldflags "$(RELEASE_LDFLAGS)" -o $(DIST)/build/servicegraph-$${p%/*}-$${p#*/} ./cmd/servicegraph; \
	done
	SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) $(PLUGIN_TOOL) $(foreach p,$(PLUGIN_PLATFORMS),-bin $(p)=$(DIST)/build/servicegraph-$(subst /,-,$(p))) \
		-out $(DIST)/plugin -manifest $(DIST)/plugin/servicegraph.yaml -version $(VERSION) $(if $(wildcard LICENSE),-license LICENSE)

$(IMAGE_TOOL): hack/tools/image/go.mod $(wildcard hack/tools/image/*.go)
	cd hack/tools/image && go build -o $@ .

$(PLUGIN_TOOL): hack/tools/image/go.mod $(wildcard hack/tools/image/plugin/*.go)
	cd hack/tools/image && go build -o $@ ./plugin

$(CYCLONEDX): hack/tools/image/go.mod
	cd hack/tools/image && go build -o $@ github.com/CycloneDX/cyclonedx-gomod/cmd/cyclonedx-gomod

$(KREW_DIR)/kubectl-krew: test/krew/go.mod
	cd test/krew && go build -o $@ sigs.k8s.io/krew/cmd/krew

$(KREW_DIR)/validate-krew-manifest: test/krew/go.mod
	cd test/krew && go build -o $@ sigs.k8s.io/krew/cmd/validate-krew-manifest

# test/image reads the image from dist/ and builds it once more for the digest; test/krew validates
# the manifests with krew, installs every archive with krew and runs the plugin through kubectl.
.PHONY: test-release
test-release: image plugin-archives $(KREW_TOOLS) $(KUBECTL) ## Test the image (config, contents, SBOM, reproducibility) and the plugin archives and krew manifest.
	cd test/image && go vet ./... && RELEASE_DIST=$(DIST) go test ./... -count=1 -timeout 15m
	cd test/krew && go vet ./... && RELEASE_DIST=$(DIST) SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) KREW_DIR=$(KREW_DIR) KUBECTL=$(KUBECTL) go test ./... -count=1 -timeout 15m

TEST_DEPS += $(IMAGE_TOOL) $(PLUGIN_TOOL) $(CYCLONEDX) $(KREW_TOOLS)
TEST_SUITES += test-release
