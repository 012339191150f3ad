#!/usr/bin/env bash
# Benchmark of one kubelet with real processes: startup latency, SIGTERM
# latency, SIGKILL lateness, memory per pod. Builds bin/ first. Prints
# figures; asserts nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh >/dev/null
go run ./scripts/benchkubelet "$@"
