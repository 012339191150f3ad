#!/usr/bin/env bash
# Deployment benchmark on real kubelets: 100 replicas with a readiness probe,
# time to available and a full rolling update, each beside its theoretical
# minimum. Builds bin/ first; starts and stops its own cluster. Prints
# figures; asserts nothing. Flags: -replicas, -ready-after, -probe-period, -keep.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh >/dev/null
go run ./scripts/benchdeploy "$@"
