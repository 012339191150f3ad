#!/usr/bin/env bash
# The test command: vet, then every test (unit, integration against a real
# embedded etcd, end-to-end through scripts/up.sh) with the race detector,
# then the docker-compose end-to-end test when a Docker engine answers.
# Needs only Go (and Docker for the last part); everything binds to
# 127.0.0.1 on free ports.
set -euo pipefail
cd "$(dirname "$0")/.."
go vet ./...
go test -race -count=1 -timeout 20m ./...
if command -v docker >/dev/null && command -v docker-compose >/dev/null && docker info >/dev/null 2>&1; then
  scripts/e2e-compose.sh
else
  echo "test: SKIPPED scripts/e2e-compose.sh: no Docker engine answers here (docker info failed)"
fi
