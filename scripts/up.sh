#!/usr/bin/env bash
# Starts a local kubelite cluster in the background: builds what is missing or
# stale, starts the components on 127.0.0.1, waits until the apiserver
# answers and writes the CLI config. Running it again while the cluster runs
# changes nothing. Stop it with scripts/down.sh.
#
# Overridable: KUBELITE_STATE (state folder, default .state), KUBELITE_API_PORT
# (6443), KUBELITE_ETCD_PORT (2379), KUBELITE_ETCD_PEER_PORT (2380),
# KUBELITE_METRICS_PORT (10251), KUBELITE_CONFIG (CLI config file, default
# ~/.kubelite/config), NODES (kubelets to start, default 2: node-1, node-2),
# KUBELET_FLAGS (extra flags for every kubelet), SCHEDULERS (default 1; more
# run leader election), SCHEDULER_FLAGS, CONTROLLER_MANAGER_FLAGS.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
state="${KUBELITE_STATE:-$repo/.state}"
api_port="${KUBELITE_API_PORT:-6443}"
etcd_port="${KUBELITE_ETCD_PORT:-2379}"
peer_port="${KUBELITE_ETCD_PEER_PORT:-2380}"
metrics_port="${KUBELITE_METRICS_PORT:-10251}"
config="${KUBELITE_CONFIG:-$HOME/.kubelite/config}"
mkdir -p "$state/pids" "$state/logs"

binary() { # binary NAME: the program a component runs (kubelet-node-2 -> kubelet, scheduler-1 -> scheduler)
  local b=${1%%-node-*}
  echo "${b%-[0-9]*}"
}

# A pid file holds "PID START_TIME BOOT_ID": field 22 of /proc/PID/stat and
# /proc/sys/kernel/random/boot_id when it was started, so a pid reused by
# another process (after an exit or a reboot) is never taken for ours.
start_time() { # start_time PID: field 22 of /proc/PID/stat (after the ")" that ends the command name)
  local s; s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  s=${s##*) }
  # shellcheck disable=SC2086
  set -- $s
  echo "${20}"
}
boot_id() { cat /proc/sys/kernel/random/boot_id; }

runs_bin() { # runs_bin PID NAME: the command line of PID runs .../bin/NAME
  local cmd
  cmd=$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null) || return 1
  [[ "$cmd" == *"bin/$2 "* ]]
}

old_pid_files_told=''
alive() { # alive NAME: the pid file names a live process of ours
  local f="$state/pids/$1.pid" pid='' start='' boot='' bin; bin=$(binary "$1")
  [ -f "$f" ] || return 1
  read -r pid start boot <"$f" || true
  [ -n "$pid" ] || return 1
  if [ -z "$start" ]; then
    # A pid file of an older up.sh (the pid alone): only the command line tells.
    if [[ " $old_pid_files_told " != *" $1 "* ]]; then # said once per file: alive runs in wait loops
      echo "up: $f is from an older up.sh (pid only): checking pid $pid by its command line (bin/$bin) alone" >&2
      old_pid_files_told+=" $1"
    fi
    runs_bin "$pid" "$bin"
    return
  fi
  [ "$boot" = "$(boot_id)" ] && [ "$(start_time "$pid")" = "$start" ] && runs_bin "$pid" "$bin"
}

start() { # start NAME ARGS...: run bin/<NAME without its -node-N or -N suffix> in the background, logging to the state folder
  local name=$1; shift
  local bin; bin=$(binary "$name")
  if alive "$name"; then
    echo "up: $name already running (pid $(cut -d' ' -f1 "$state/pids/$name.pid"))"
    return
  fi
  nohup "$repo/bin/$bin" "$@" >>"$state/logs/$name.log" 2>&1 </dev/null &
  # The start time is fixed at fork, so reading it after the exec is exact.
  echo "$! $(start_time $!) $(boot_id)" >"$state/pids/$name.pid"
  echo "up: started $name (pid $!, log $state/logs/$name.log)"
}

command -v go >/dev/null || { echo "up: Go is needed to build kubelite (https://go.dev/dl)" >&2; exit 2; }
scripts/build.sh

start apiserver --listen "127.0.0.1:$api_port" --data-dir "$state/apiserver" \
  --etcd-client-url "http://127.0.0.1:$etcd_port" --etcd-peer-url "http://127.0.0.1:$peer_port" \
  --metrics-addr "127.0.0.1:$metrics_port"

export KUBELITE_SERVER="127.0.0.1:$api_port"
for i in $(seq 1 120); do
  if bin/kubectl-lite get nodes >/dev/null 2>&1; then break; fi
  if ! alive apiserver; then
    echo "up: the apiserver exited; its log ($state/logs/apiserver.log) ends with:" >&2
    tail -n 15 "$state/logs/apiserver.log" >&2
    exit 1
  fi
  sleep 0.5
  [ "$i" = 120 ] && { echo "up: the apiserver did not answer on 127.0.0.1:$api_port within 60s; see $state/logs/apiserver.log" >&2; exit 1; }
done

schedulers="${SCHEDULERS:-1}"
for i in $(seq 1 "$schedulers"); do
  # shellcheck disable=SC2086
  start "scheduler-$i" --apiserver "127.0.0.1:$api_port" ${SCHEDULER_FLAGS:-}
done

start controller-manager --apiserver "127.0.0.1:$api_port" ${CONTROLLER_MANAGER_FLAGS:-}

nodes="${NODES:-2}"
# Claim folders (<volume-dir>/<namespace>/<claim>) are shared by every
# kubelet here, like a network disk: a claim's folder follows its pod to
# whichever node runs it; only the kubelet that bound the claim (its
# volume.kubernetes.io/selected-node) removes the folder.
# Containers inherit the kubelet's PATH: the sample app in bin/ is found by name.
export PATH="$repo/bin:$PATH"
for i in $(seq 1 "$nodes"); do
  # Port 0: each kubelet picks a free port and reports it in its Node.
  # shellcheck disable=SC2086
  start "kubelet-node-$i" --apiserver "127.0.0.1:$api_port" --node-name "node-$i" \
    --root-dir "$state/kubelet-node-$i" --listen 127.0.0.1:0 --volume-dir "$state/volumes" ${KUBELET_FLAGS:-}
done
for i in $(seq 1 120); do
  ready=$(bin/kubectl-lite get nodes --no-headers 2>/dev/null | grep -c ' Ready' || true)
  [ "$ready" -ge "$nodes" ] && break
  [ "$i" = 120 ] && { echo "up: only $ready of $nodes nodes became Ready within 60s; see $state/logs/" >&2; exit 1; }
  sleep 0.5
done

mkdir -p "$(dirname "$config")"
cat >"$config" <<CFG
server: 127.0.0.1:$api_port
etcdEndpoints:
- 127.0.0.1:$etcd_port
CFG

cat <<MSG

kubelite is up: apiserver on 127.0.0.1:$api_port, embedded etcd on 127.0.0.1:$etcd_port,
$schedulers scheduler(s), a controller-manager, $nodes kubelet(s): $(seq -s ' ' -f 'node-%g' 1 "$nodes").
State and logs: $state   CLI config: $config

  export PATH="$repo/bin:\$PATH"
  kubectl-lite apply -f deploy/examples/pod.yaml
  kubectl-lite get pods -w
  etcdctl-lite get --prefix /registry/pods
  kubectl-lite delete pod web

Stop it with scripts/down.sh.
MSG
