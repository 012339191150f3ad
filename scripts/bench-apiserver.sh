#!/usr/bin/env bash
# Benchmark: pod create latency (1 client) and throughput (64 clients) through
# the apiserver, each beside raw etcd Txn puts of the same size on the same
# embedded etcd in the same run. Prints figures; asserts nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
go run ./scripts/benchapi "$@" 2> >(grep -v ' INFO ' >&2)
