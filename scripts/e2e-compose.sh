#!/usr/bin/env bash
# End-to-end test of the docker-compose deployments. For each compose file:
# up, a pod through create -> Running -> delete (its SIGTERM seen in its
# log). For the highly available one, while a Deployment scales and rolls:
# kill one etcd member (with its apiserver), the leading scheduler and the
# leading controller-manager, then check that every acknowledged write is
# still there, the Deployment converges and no pod runs twice. Prints the
# figures (start-up, image size, failover times). Tears everything down,
# also on failure. Needs a Docker engine and docker-compose.
set -euo pipefail
cd "$(dirname "$0")/.."
export LEASE_DURATION=4s RENEW_DEADLINE=3s RETRY_PERIOD=500ms
basic="-p kubelite-e2e -f deploy/docker-compose.yml"
ha="-p kubelite-e2e-ha -f deploy/docker-compose.ha.yml"
work=$(mktemp -d)
cleanup() {
  docker-compose $basic down -v --remove-orphans >/dev/null 2>&1 || true
  docker-compose $ha down -v --remove-orphans >/dev/null 2>&1 || true
  jobs -p | xargs -r kill 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "e2e-compose: FAIL: $*" >&2; exit 1; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
waitfor() { # waitfor SECONDS DESCRIPTION COMMAND...
  local limit=$1 what=$2; shift 2
  local end=$(( $(now_ms) + limit * 1000 ))
  until "$@" >/dev/null 2>&1; do
    [ "$(now_ms)" -lt "$end" ] || fail "timed out after ${limit}s waiting for $what"
    sleep 0.2
  done
}

pod_story() { # pod_story KUBECTL...
  local k=("$@")
  "${k[@]}" apply -f deploy/examples/compose-pod.yaml >/dev/null
  waitfor 60 "the pod to run" sh -c "$(printf '%q ' "${k[@]}") get pod hello | grep -q Running"
  "${k[@]}" logs hello -f >"$work/hello.log" 2>&1 &
  local follower=$!
  sleep 1
  "${k[@]}" delete pod hello >/dev/null
  wait $follower || true
  grep -q "got SIGTERM, exiting" "$work/hello.log" || fail "the pod's process did not report SIGTERM: $(cat "$work/hello.log")"
  echo "e2e-compose: pod created, Running, deleted; its process got SIGTERM"
}

# --- single apiserver ---------------------------------------------------
COMPOSE_PROJECT_NAME=kubelite-e2e KUBELITE_API_PORT=16443 KUBELITE_ETCD_PORT=12379 scripts/compose-up.sh | grep "compose-up:"
K=(bin/kubectl-lite --server 127.0.0.1:16443)
pod_story "${K[@]}"
# Output is captured before it is searched: under pipefail, "cmd | grep -q"
# fails when grep exits at its first match and cmd then dies of SIGPIPE.
keys=$(bin/etcdctl-lite --endpoints 127.0.0.1:12379 get --prefix --keys-only /registry/nodes) || fail "etcdctl-lite cannot read the keys: $keys"
grep -q node-1 <<<"$keys" || fail "etcdctl-lite does not list node-1: $keys"
nodes=$(docker-compose $basic exec -T node-1 /bin/kubectl-lite --server apiserver:6443 get nodes) || fail "kubectl-lite inside a container: $nodes"
grep -q node-2 <<<"$nodes" || fail "kubectl-lite inside a container does not list node-2: $nodes"
docker-compose $basic down -v >/dev/null 2>&1

# --- highly available ---------------------------------------------------
COMPOSE_PROJECT_NAME=kubelite-e2e-ha KUBELITE_API_PORT=16441 KUBELITE_API_PORT2=16442 KUBELITE_API_PORT3=16443 \
  KUBELITE_ETCD_PORT=12381 KUBELITE_ETCD_PORT2=12382 KUBELITE_ETCD_PORT3=12383 scripts/compose-up.sh ha | grep "compose-up:"
K=(bin/kubectl-lite --server 127.0.0.1:16441,127.0.0.1:16442,127.0.0.1:16443 --request-timeout 5s)
pod_story "${K[@]}"
cat >"$work/deploy.yaml" <<'YAML'
apiVersion: apps/v1
kind: Deployment
metadata: {name: ha}
spec:
  replicas: 6
  selector: {matchLabels: {app: ha}}
  template:
    metadata: {labels: {app: ha}}
    spec:
      terminationGracePeriodSeconds: 2
      containers: [{name: app, command: [kubelite-app], env: [{name: V, value: "1"}]}]
YAML
"${K[@]}" apply -f "$work/deploy.yaml" >/dev/null
"${K[@]}" rollout status deployment/ha --timeout 120s >/dev/null || fail "the Deployment did not come up"

# A writer acknowledges objects all along; each acknowledged one must survive.
writer() {
  local i=0
  while :; do
    i=$((i + 1))
    if printf 'apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata: {name: ack-%d, namespace: default}\nspec: {holderIdentity: writer}\n' $i |
      "${K[@]}" create -f - >/dev/null 2>&1; then
      echo "$(now_ms) ack-$i" >>"$work/acks"
    fi
    sleep 0.05
  done
}
writer &
writer_pid=$!
sleep 2

# 1. Kill the etcd leader (and the apiserver embedding it): the worst member to lose.
leader_port=$(bin/etcdctl-lite --endpoints 127.0.0.1:12381,127.0.0.1:12382,127.0.0.1:12383 endpoint status | awk '$5 == "true" {print $1}' | cut -d: -f2)
case "$leader_port" in 12381) member=apiserver-1 ;; 12382) member=apiserver-2 ;; *) member=apiserver-3 ;; esac
docker-compose $ha kill "$member" >/dev/null 2>&1
t0=$(now_ms) # once the member is dead
waitfor 60 "a write acknowledged after the etcd member died" sh -c "awk -v t=$t0 '\$1 > t' $work/acks | grep -q ack"
etcd_failover=$(( $(awk -v t=$t0 '$1 > t {print $1; exit}' "$work/acks") - t0 ))

# 2. Kill the leading scheduler while the Deployment grows.
holder=$("${K[@]}" get lease kube-scheduler -n kube-system --no-headers | awk '{print $2}')
svc=${holder%_*}
t0=$(now_ms)
docker-compose $ha kill "$svc" >/dev/null 2>&1
"${K[@]}" scale deployment/ha --replicas=8 >/dev/null
waitfor 90 "pods scheduled after the scheduler leader died" sh -c "[ \$($(printf '%q ' "${K[@]}") get pods -l app=ha -o wide --no-headers | grep -c ' node-') -ge 8 ]"
sched_failover=$(( $(now_ms) - t0 ))

# 3. Kill the leading controller-manager while the Deployment rolls.
holder=$("${K[@]}" get lease kube-controller-manager -n kube-system --no-headers | awk '{print $2}')
svc=${holder%_*}
t0=$(now_ms)
docker-compose $ha kill "$svc" >/dev/null 2>&1
"${K[@]}" set env deployment/ha V=2 >/dev/null
waitfor 120 "the rollout after the controller-manager leader died" "${K[@]}" rollout status deployment/ha --timeout 5s
cm_failover=$(( $(now_ms) - t0 ))

kill $writer_pid 2>/dev/null || true
wait $writer_pid 2>/dev/null || true

# Every acknowledged write is there.
"${K[@]}" get leases -n default -o name | sed 's|^lease/||' | sort >"$work/stored"
awk '{print $2}' "$work/acks" | sort >"$work/acked"
lost=$(comm -23 "$work/acked" "$work/stored" | wc -l)
[ "$lost" -eq 0 ] || fail "$lost acknowledged writes are missing: $(comm -23 "$work/acked" "$work/stored" | head -5 | tr '\n' ' ')"
# The Deployment converged, and no pod runs twice.
pods=$("${K[@]}" get pods -l app=ha --no-headers)
running=$(echo "$pods" | grep -c Running || true)
dups=$(echo "$pods" | awk '{print $1}' | sort | uniq -d | wc -l)
[ "$running" -eq 8 ] || fail "expected 8 running pods, got $running:
$pods"
[ "$dups" -eq 0 ] || fail "a pod name appears twice"
echo "e2e-compose: $(wc -l <"$work/acked") acknowledged writes, none lost; Deployment converged to 8 pods, none twice"
echo "e2e-compose: failover: etcd leader ($member) loss -> next acknowledged write ${etcd_failover} ms;" \
  "scheduler leader loss -> pods scheduled ${sched_failover} ms; controller-manager leader loss -> rollout done ${cm_failover} ms" \
  "(leases: ${LEASE_DURATION} duration, ${RENEW_DEADLINE} renew deadline, ${RETRY_PERIOD} retry)"
echo "e2e-compose: PASS"
