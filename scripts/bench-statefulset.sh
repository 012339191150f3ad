#!/usr/bin/env bash
# StatefulSet rolling update benchmark: a 10-replica set for a grid of
# (SIGTERM honoured or ignored, readiness delay, maxUnavailable 1 or 3),
# each beside its theoretical minimum. Builds bin/ first; starts and stops
# its own cluster. Prints figures; asserts nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh >/dev/null
go run ./scripts/benchsts "$@"
