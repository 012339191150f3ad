#!/usr/bin/env bash
# Stops what scripts/up.sh started, by PID: SIGTERM, then SIGKILL after 20 s.
# Safe to run twice. KUBELITE_STATE as for up.sh; --purge also deletes the
# state folder (etcd data, logs).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
state="${KUBELITE_STATE:-$repo/.state}"
[ -d "$state/pids" ] || { echo "down: nothing to stop (no $state/pids)"; exit 0; }

ours() { [ -r "/proc/$1/cmdline" ] && tr '\0' ' ' < "/proc/$1/cmdline" | grep -q "bin/$2"; }

# Stop the node agents first and the apiserver last, so they can say goodbye.
for name in kubelet controller-manager scheduler apiserver; do
  for f in "$state"/pids/"$name"*.pid; do
    [ -f "$f" ] || continue
    pid=$(cat "$f"); comp=$(basename "$f" .pid)
    if [ -n "$pid" ] && ours "$pid" "$name"; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 200); do ours "$pid" "$name" || break; sleep 0.1; done
      if ours "$pid" "$name"; then
        echo "down: $comp (pid $pid) ignored SIGTERM for 20s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
      fi
      echo "down: stopped $comp (pid $pid)"
    fi
    rm -f "$f"
  done
done
if [ "${1:-}" = "--purge" ]; then
  rm -rf "$state"
  echo "down: removed $state"
fi
