#!/usr/bin/env bash
# Regenerates proto/kubelite/v1/*.pb.go from the .proto files with pinned tools:
# protoc 3.21 (Debian's protobuf-compiler), protoc-gen-go and protoc-gen-go-grpc
# at the versions below, installed into .tools/ on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
PROTOC_GEN_GO_VERSION=v1.36.12
PROTOC_GEN_GO_GRPC_VERSION=v1.6.0
tools="$PWD/.tools"
if ! command -v protoc >/dev/null; then
  echo "gen-proto: protoc not found; install it with: apt-get install -y protobuf-compiler" >&2
  exit 2
fi
mkdir -p "$tools"
[ -x "$tools/protoc-gen-go" ] && "$tools/protoc-gen-go" --version | grep -q "$PROTOC_GEN_GO_VERSION" ||
  GOBIN="$tools" go install "google.golang.org/protobuf/cmd/protoc-gen-go@$PROTOC_GEN_GO_VERSION"
[ -x "$tools/protoc-gen-go-grpc" ] && "$tools/protoc-gen-go-grpc" --version | grep -q "${PROTOC_GEN_GO_GRPC_VERSION#v}" ||
  GOBIN="$tools" go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@$PROTOC_GEN_GO_GRPC_VERSION"
PATH="$tools:$PATH" protoc -I proto \
  --go_out=. --go_opt=module=github.com/kubelite/kubelite \
  --go-grpc_out=. --go-grpc_opt=module=github.com/kubelite/kubelite \
  proto/kubelite/v1/*.proto
echo "gen-proto: regenerated proto/kubelite/v1"
