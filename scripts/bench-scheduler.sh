#!/usr/bin/env bash
# Scheduler throughput benchmark (scheduler_perf's SchedulingBasic shape):
# 5,000 nodes, 10,000 pods, real apiserver and embedded etcd, no kubelets.
# Prints figures; asserts nothing. Flags: -nodes, -pods, -bind-workers.
set -euo pipefail
cd "$(dirname "$0")/.."
go run ./scripts/benchsched "$@"
