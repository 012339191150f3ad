#!/usr/bin/env bash
# Builds every kubelite binary into bin/. Go's build cache makes this cheap
# when nothing changed, so it is safe to run every time.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bin
bins=(apiserver kubectl-lite etcdctl-lite)
for extra in scheduler controller-manager kubelet; do
  [ -f "$extra/main.go" ] && bins+=("$extra")
done
pkgs=()
for b in "${bins[@]}"; do pkgs+=("./$b"); done
CGO_ENABLED=${CGO_ENABLED:-0} go build -o bin/ "${pkgs[@]}"
echo "build: ${bins[*]} -> bin/"
