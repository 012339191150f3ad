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

# A pid file holds "PID START_TIME BOOT_ID" (scripts/up.sh). A pid is
# signalled only while it is still the process recorded: same boot, same
# start time (field 22 of /proc/PID/stat), and our binary; a pid reused by
# an unrelated process is left alone. A pid file of an older up.sh holds
# the pid alone: then only the command line (our binary) tells.
start_time() { # start_time PID
  local s; s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  s=${s##*) }
  # shellcheck disable=SC2086
  set -- $s
  echo "${20}"
}
boot_id=$(cat /proc/sys/kernel/random/boot_id)
runs_bin() { # runs_bin PID NAME: the command line of PID runs .../bin/NAME
  local cmd
  cmd=$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null) || return 1
  [[ "$cmd" == *"bin/$2 "* ]]
}
ours() { # ours PID START BOOT NAME (START and BOOT empty: an old pid file)
  if [ -z "$2" ]; then
    runs_bin "$1" "$4"
    return
  fi
  [ "$3" = "$boot_id" ] && [ "$(start_time "$1")" = "$2" ] && runs_bin "$1" "$4"
}

# Stop the node agents first and the apiserver last.
for name in kubelet controller-manager scheduler apiserver; do
  for f in "$state"/pids/"$name"*.pid; do
    [ -f "$f" ] || continue
    pid='' start='' boot=''
    read -r pid start boot <"$f" || true
    comp=$(basename "$f" .pid)
    if [ -n "$pid" ] && [ -z "$start" ]; then
      echo "down: $comp: $f is from an older up.sh (pid only): checking pid $pid by its command line (bin/$name) alone"
    fi
    if [ -n "$pid" ] && ours "$pid" "$start" "$boot" "$name"; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 200); do ours "$pid" "$start" "$boot" "$name" || break; sleep 0.1; done
      if ours "$pid" "$start" "$boot" "$name"; then
        echo "down: $comp (pid $pid) ignored SIGTERM for 20s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
      fi
      echo "down: stopped $comp (pid $pid)"
    elif [ -n "$pid" ] && [ -e "/proc/$pid" ]; then
      if [ -z "$start" ]; then
        echo "down: $comp: pid $pid does not run bin/$name: not the process up.sh started; not signalling it"
      else
        echo "down: $comp: pid $pid is no longer the process up.sh started (start time, boot or binary differs); not signalling it"
      fi
    fi
    rm -f "$f"
  done
done

# Containers still running: state.json without status.json. Each runs in
# its own process group (pgid = pid); its shim reaps it and exits. The
# group leader is the container's main process: its group is signalled only
# while that pid is still the process the shim started (same start time),
# checked again before each signal.
leader_is() { # leader_is PGID START: the pid PGID still has start time START
  [ "$(start_time "$1" || true)" = "$2" ]
}
running=() # "PGID START PREFIX"
for st in "$state"/kubelet-*/state/*.state.json; do
  [ -f "$st" ] || continue
  prefix=${st%.state.json}
  [ -f "$prefix.status.json" ] && continue
  # The shim or a kubelet may remove the file at any moment.
  pgid=$(sed -n 's/.*"pgid":\([0-9]*\).*/\1/p' "$st" 2>/dev/null) || continue
  started=$(sed -n 's/.*"startTime":\([0-9]*\).*/\1/p' "$st" 2>/dev/null) || continue
  if [ -n "$pgid" ] && [ -n "$started" ] && leader_is "$pgid" "$started"; then
    running+=("$pgid $started $prefix")
  fi
done
if [ ${#running[@]} -gt 0 ]; then
  for r in "${running[@]}"; do
    read -r pgid started prefix <<<"$r"
    if leader_is "$pgid" "$started"; then kill -TERM -- "-$pgid" 2>/dev/null || true; fi
  done
  for _ in $(seq 1 50); do
    left=0
    for r in "${running[@]}"; do
      read -r pgid started prefix <<<"$r"
      [ -f "$prefix.status.json" ] || left=1
    done
    [ $left = 0 ] && break
    sleep 0.1
  done
  for r in "${running[@]}"; do
    read -r pgid started prefix <<<"$r"
    [ -f "$prefix.status.json" ] && continue
    if leader_is "$pgid" "$started"; then
      kill -KILL -- "-$pgid" 2>/dev/null || true
    else
      echo "down: the leader of process group $pgid ($prefix) is gone: its shim finishes it; not signalling the group"
    fi
  done
  echo "down: stopped ${#running[@]} container(s) the kubelets left running"
fi
if [ "${1:-}" = "--purge" ]; then
  rm -rf "$state"
  echo "down: removed $state"
fi
