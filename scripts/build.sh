#!/usr/bin/env bash
# Builds every kubelite binary into bin/. Go's build cache makes this cheap
# when nothing changed, so it is safe to run every time. Static binaries
# (CGO_ENABLED=0) so the same files run in FROM-scratch images.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bin
bins=(apiserver kubectl-lite etcdctl-lite)
for extra in scheduler controller-manager kubelet; do
  [ -f "$extra/main.go" ] && bins+=("$extra")
done
pkgs=()
for b in "${bins[@]}"; do pkgs+=("./$b"); done
export CGO_ENABLED=${CGO_ENABLED:-0}
go build -o bin/ "${pkgs[@]}"
if [ -f kubelet/shim/main.go ]; then
  go build -trimpath -ldflags='-s -w' -o bin/kubelet-shim ./kubelet/shim
  bins+=(kubelet-shim)
fi
go build -o bin/kubelite-app ./deploy/app
bins+=(kubelite-app)
echo "build: ${bins[*]} -> bin/"
