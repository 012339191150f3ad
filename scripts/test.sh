#!/usr/bin/env bash
# The test command: vet, then every test (unit, integration against a real
# embedded etcd, end-to-end through scripts/up.sh) with the race detector.
# Needs only Go; everything binds to 127.0.0.1 on free ports.
set -euo pipefail
cd "$(dirname "$0")/.."
go vet ./...
go test -race -count=1 -timeout 20m ./...
