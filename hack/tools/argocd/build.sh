#!/usr/bin/env bash
# build.sh OUT_DIR — builds, at the Argo CD version go.mod pins, everything the real-Argo CD tests
# (test/argocd) run, into OUT_DIR:
#   argocd          Argo CD's multi-call binary (github.com/argoproj/argo-cd/v3/cmd); the tests run
#                   it as argocd-repo-server, argocd-application-controller and
#                   argocd-applicationset-controller (ARGOCD_BINARY_NAME picks the program)
#   redis           miniredis with a clock (./redis): the Redis both processes need
#   path/           a PATH directory for the repo-server:
#                     kustomize                 the repo-server runs it for kustomize sources (the
#                                               overlays of examples/gitops); see KUSTOMIZE_VERSION
#                     git-verify-wrapper.sh,    copied unchanged from the module's hack/: the
#                     gpg-wrapper.sh            repo-server runs them on every manifest request
#                                               (v3.6 does even with GPG off) and fails with
#                                               "permission denied" without them
#   crds/           Argo CD's CRDs (Application, ApplicationSet, AppProject) from the module
# Argo CD v3.6 needs Go >= 1.27: the go command downloads that toolchain (GOTOOLCHAIN below, as the
# Makefile exports for everything), also when the script runs on its own.
set -euo pipefail
export GOTOOLCHAIN=${ARGOCD_GOTOOLCHAIN:-go1.27.3}
here=$(cd "$(dirname "$0")" && pwd)
out=$(mkdir -p "$1" && cd "$1" && pwd)
cd "$here"
module=github.com/argoproj/argo-cd/v3
go mod download "$module"
moddir=$(go list -m -f '{{.Dir}}' "$module")
version=$(go list -m -f '{{.Version}}' "$module")

go build -trimpath -ldflags "-s -w -X $module/common.version=${version#v}" -o "$out/argocd.new" "$module/cmd"
go build -trimpath -ldflags "-s -w" -o "$out/redis" ./redis

mkdir -p "$out/path" "$out/crds"
# Argo CD v3.6.1's image ships kustomize 5.8.3 (its hack/tool-versions.sh), but 5.8.3 does not
# build from the Go module proxy (its kyaml needs a k8s.io/kube-openapi pseudo-version the proxy
# refuses with 403); 5.8.2 is the newest that does.
KUSTOMIZE_VERSION=${KUSTOMIZE_VERSION:-v5.8.2}
GOBIN="$out/path" go install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"
for script in git-verify-wrapper.sh gpg-wrapper.sh; do
	install -m 0755 "$moddir/hack/$script" "$out/path/$script"
done
for crd in application-crd.yaml applicationset-crd.yaml appproject-crd.yaml; do
	install -m 0644 "$moddir/manifests/crds/$crd" "$out/crds/$crd"
done
# The binary goes in place last: make rebuilds when it is missing or older than go.mod.
mv "$out/argocd.new" "$out/argocd"
echo "built Argo CD $version (kustomize $KUSTOMIZE_VERSION) into $out"
