#!/usr/bin/env bash
# Benchmark: resident memory of the apiserver holding many idle watches, for
# the apiserver of BASE (a commit, default 245dce2: before issue 10) and of
# this tree, started one after the other in the same run. Prints figures;
# asserts nothing. Arguments go to scripts/benchwatch (e.g. -watches 2000).
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=${BASE:-245dce2}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/src"
git archive "$BASE" | tar -x -C "$tmp/src"
(cd "$tmp/src" && go build -o "$tmp/apiserver-before" ./apiserver)
go build -o "$tmp/apiserver-after" ./apiserver
go run ./scripts/benchwatch -before "$tmp/apiserver-before" -before-label "$BASE" -after "$tmp/apiserver-after" "$@"
