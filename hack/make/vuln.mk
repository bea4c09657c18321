# Vulnerability scan, offline: govulncheck against a local copy of the Go vulnerability database,
# both at the versions hack/tools/vuln/go.mod pins, built once into bin/.

VULN_TOOLS := hack/tools/vuln
GOVULNCHECK_VERSION := $(shell awk '$$1 == "golang.org/x/vuln" {print $$2}' $(VULN_TOOLS)/go.mod)
VULNDB_VERSION := $(shell awk '$$1 == "golang.org/x/vulndb" {print $$2}' $(VULN_TOOLS)/go.mod)
# govulncheck type-checks the standard library of the Go that runs the scan, and go/types refuses
# source newer than itself: build it with that same Go (GOTOOLCHAIN reaches $(shell) only by hand).
VULN_GO_VERSION := $(shell $(if $(GOTOOLCHAIN),GOTOOLCHAIN=$(GOTOOLCHAIN)) go env GOVERSION)
GOVULNCHECK := $(BIN)/govulncheck/$(GOVULNCHECK_VERSION)-$(VULN_GO_VERSION)/govulncheck
VULNDB_DIR := $(BIN)/vulndb/$(VULNDB_VERSION)
VULNDB := $(VULNDB_DIR)/index/db.json
# The database govulncheck reads; point it at https://vuln.go.dev (or a mirror) for the newest entries.
GOVULNDB ?= file://$(VULNDB_DIR)

TEST_DEPS += $(GOVULNCHECK) $(VULNDB)
TEST_SUITES += vulncheck vulncheck-proof

.PHONY: verify
verify: lint vulncheck ## lint, and govulncheck: fail on a known vulnerability reachable from the project's code.

# test/istio and test/opa are not scanned: test-only modules that ship nothing, and Istio's and
# OPA's trees would multiply the scan time.
.PHONY: vulncheck
vulncheck: $(GOVULNCHECK) $(VULNDB) ## govulncheck the operator's module against the local database (exit 3: a reachable vulnerability, with its fix version).
	$(GOVULNCHECK) -db $(GOVULNDB) ./...

.PHONY: vulncheck-proof
vulncheck-proof: $(GOVULNCHECK) $(VULNDB) ## Prove the scan is not a no-op: test/vuln calls a vulnerable x/text, the scan must report it.
	cd test/vuln && go vet ./... && GOVULNCHECK=$(GOVULNCHECK) GOVULNDB=$(GOVULNDB) go test ./... -count=1

$(GOVULNCHECK): $(VULN_TOOLS)/go.mod
	cd $(VULN_TOOLS) && go build -trimpath -o $@ golang.org/x/vuln/cmd/govulncheck

# indexdb turns data/osv of the pinned x/vulndb into the layout govulncheck's -db file:// reads
# (~4,800 entries, ~20 s). Built beside and renamed, so an interrupted build is never taken for one.
$(VULNDB):
	@echo "indexing the Go vulnerability database $(VULNDB_VERSION)"
	rm -rf $(VULNDB_DIR).tmp && mkdir -p $(VULNDB_DIR).tmp
	cd $(VULN_TOOLS) && go build -trimpath -o $(VULNDB_DIR).tmp/indexdb golang.org/x/vulndb/cmd/indexdb
	cd $(VULN_TOOLS) && $(VULNDB_DIR).tmp/indexdb -vulns "$$(go list -m -f '{{.Dir}}' golang.org/x/vulndb)/data/osv" -out $(VULNDB_DIR).tmp/db
	rm -rf $(VULNDB_DIR) && mv $(VULNDB_DIR).tmp/db $(VULNDB_DIR) && rm -rf $(VULNDB_DIR).tmp
