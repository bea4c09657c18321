#!/usr/bin/env bash
# build.sh OUT_DIR — builds kube-network-policies at the version pinned in go.mod into OUT_DIR:
#   kube-network-policies           adapted: the native nftables `queue` expression becomes, where
#                                   the kernel refuses it, the xtables NFQUEUE target (nfqueue/)
#   kube-network-policies-upstream  exactly upstream's code, to prove the adaptation is needed
#   nfprobe                         the kernel capability probe
# The adaptation is generated from the module's own source at build time (nfqueuegen/) and applied
# with `go build -overlay`; the go command refuses overlays of files in the module cache, so the
# module is first copied, unchanged, into a scratch directory under OUT_DIR.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$(mkdir -p "$1" && cd "$1" && pwd)
cd "$here"
module=sigs.k8s.io/kube-network-policies
go mod download "$module"
moddir=$(go list -m -f '{{.Dir}}' "$module")

go build -trimpath -o "$out/kube-network-policies-upstream" "$module/cmd"
go build -trimpath -o "$out/nfprobe" ./nfprobe

scratch="$out/build"
rm -rf "$scratch"
mkdir -p "$scratch"
cp -r "$moddir" "$scratch/src"
chmod -R u+w "$scratch/src"
cp go.mod go.sum "$scratch/"
(cd "$scratch" && go mod edit -module servicegraph.io/knp-build -replace "$module=./src")
go run ./nfqueuegen -moddir "$scratch/src" -helper "$here/nfqueue/compat.go" -out "$scratch/overlay" -min-sites 3
diff -r "$moddir" "$scratch/src" >/dev/null # the copy is upstream's, byte for byte
(cd "$scratch" && go build -trimpath -overlay "$scratch/overlay/overlay.json" -o "$out/kube-network-policies" "$module/cmd")
