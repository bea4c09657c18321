# The Helm chart (charts/servicegraph-operator) and the release manifest (dist/install.yaml).
#
# One source of truth: config/ is what controller-gen and the kubebuilder layout produce; the chart
# carries verbatim copies of its generated files (the CRD, the manager's roles, the admission
# policies; `make chart-sync` refreshes them) and templates for the rest. test/chart fails when a
# copy is stale, and when `helm template` with the default values and `kubectl kustomize
# config/default` disagree on any CRD, RBAC object, ServiceAccount, Deployment or Service.

# The Helm CLI test/chart drives, at the version hack/tools/helm/go.mod pins.
HELM_VERSION := $(shell awk '$$1 == "require" && $$2 == "helm.sh/helm/v4" {print $$3}' hack/tools/helm/go.mod)
HELM_DIR := $(BIN)/helm/$(HELM_VERSION)
HELM := $(HELM_DIR)/helm
CHART := charts/servicegraph-operator

##@ Chart and release

.PHONY: helm
helm: $(HELM) ## Build the Helm CLI test/chart drives, once per version.

# First build: a few minutes on 2 cores.
$(HELM): hack/tools/helm/go.mod
	@echo "building Helm $(HELM_VERSION) from the Go module proxy (first time: a few minutes)"
	cd hack/tools/helm && go build -trimpath -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$(HELM_VERSION)" -o $@.tmp helm.sh/helm/v4/cmd/helm
	mv $@.tmp $@

.PHONY: chart-sync
chart-sync: ## Copy config/'s generated CRD, manager roles and admission policies into the chart.
	cp config/crd/bases/policy.servicegraph.io_servicegraphs.yaml $(CHART)/crds/
	cp config/rbac/role.yaml $(CHART)/files/rbac/
	cp config/admission/params.yaml config/admission/enforced_namespaces.yaml config/admission/unsafe_policies.yaml $(CHART)/files/admission/

.PHONY: chart-lint
chart-lint: $(HELM) ## helm lint --strict the chart.
	$(HELM) lint --strict $(CHART)

.PHONY: chart-package
chart-package: $(HELM) ## Package the chart into dist/.
	$(HELM) package $(CHART) -d dist

# The image the release manifest deploys: the one `make release` builds (hack/make/release.mk), else IMG.
RELEASE_IMG ?= $(or $(IMAGE_REF),$(IMG))

.PHONY: release-manifests
release-manifests: $(KUBECTL) ## Write dist/install.yaml (CRDs and operator, from config/default, image RELEASE_IMG).
	@mkdir -p dist
	@rm -rf dist/.overlay && mkdir dist/.overlay
	@img='$(RELEASE_IMG)'; name=$$img; tag=latest; \
	if [[ "$${img##*/}" == *:* ]]; then name=$${img%:*}; tag=$${img##*:}; fi; \
	printf 'resources: [../../config/default]\nimages: [{name: servicegraph-operator, newName: "%s", newTag: "%s"}]\n' "$$name" "$$tag" > dist/.overlay/kustomization.yaml
	@{ echo "# servicegraph-operator: the CRD and the operator (namespace servicegraph-system), from config/default."; \
	  echo "# Install: kubectl apply --server-side -f install.yaml"; \
	  $(KUBECTL) kustomize dist/.overlay; } > dist/install.yaml.tmp
	@rm -rf dist/.overlay
	mv dist/install.yaml.tmp dist/install.yaml

# test/chart runs the Helm CLI (and, through `make release-manifests`, kubectl kustomize).
TEST_DEPS += helm
