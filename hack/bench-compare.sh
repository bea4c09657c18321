#!/usr/bin/env bash
# Compares the compile benchmark of a base revision with the working tree, side by side: both test
# binaries are built first, then run in turns (base, working tree, base, ...) so that a busy moment
# of the machine hits both, and benchstat reports the difference with its confidence interval.
#   hack/bench-compare.sh BASE COUNT BENCHSTAT
set -euo pipefail
base=${1:?base revision}; count=${2:-10}; benchstat=${3:?benchstat binary}
root=$(git rev-parse --show-toplevel)
work=$(mktemp -d)
trap 'git -C "$root" worktree remove --force "$work/base" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

git -C "$root" worktree add --detach --quiet "$work/base" "$base"
(cd "$work/base" && go test -c -o "$work/base.test" ./internal/compiler)
(cd "$root" && go test -c -o "$work/head.test" ./internal/compiler)
for i in $(seq "$count"); do
  for side in base head; do
    echo "run $i/$count: $side" >&2
    "$work/$side.test" -test.run '^$' -test.bench '^BenchmarkCompile' -test.benchmem -test.count 1 >>"$work/$side.txt"
  done
done
"$benchstat" base="$work/base.txt" head="$work/head.txt"
