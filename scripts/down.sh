#!/usr/bin/env bash
# Stops what scripts/up.sh started, by PID: the daemons (SIGTERM, then
# SIGKILL after 20 s), then the containers their kubelets left running
# (a kubelet's exit never stops its pods: a restarted kubelet adopts them).
# Safe to run twice. KUBELITE_STATE as for up.sh; --purge also deletes the
# state folder (etcd data, logs).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
state="${KUBELITE_STATE:-$repo/.state}"
[ -d "$state" ] || { echo "down: nothing to stop (no $state)"; exit 0; }

ours() { [ -r "/proc/$1/cmdline" ] && tr '\0' ' ' < "/proc/$1/cmdline" | grep -q "bin/$2 "; }

# Stop the node agents first and the apiserver last.
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

# Containers still running: state.json without status.json. Each runs in
# its own process group (pgid = pid); its shim reaps it and exits.
running=()
for st in "$state"/kubelet-*/state/*.state.json; do
  [ -f "$st" ] || continue
  prefix=${st%.state.json}
  [ -f "$prefix.status.json" ] && continue
  pgid=$(sed -n 's/.*"pgid":\([0-9]*\).*/\1/p' "$st")
  [ -n "$pgid" ] && kill -0 "$pgid" 2>/dev/null && running+=("$pgid:$prefix")
done
if [ ${#running[@]} -gt 0 ]; then
  for r in "${running[@]}"; do kill -TERM -- "-${r%%:*}" 2>/dev/null || true; done
  for _ in $(seq 1 50); do
    left=0
    for r in "${running[@]}"; do [ -f "${r#*:}.status.json" ] || left=1; done
    [ $left = 0 ] && break
    sleep 0.1
  done
  for r in "${running[@]}"; do [ -f "${r#*:}.status.json" ] || kill -KILL -- "-${r%%:*}" 2>/dev/null || true; done
  echo "down: stopped ${#running[@]} container(s) the kubelets left running"
fi
if [ "${1:-}" = "--purge" ]; then
  rm -rf "$state"
  echo "down: removed $state"
fi
