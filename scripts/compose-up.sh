#!/usr/bin/env bash
# Runs kubelite with docker-compose: builds the static binaries and the
# FROM-scratch image, then brings the cluster up and waits until every node
# is Ready. Usage: scripts/compose-up.sh [ha]   (ha: deploy/docker-compose.ha.yml)
# Stop it with: docker-compose -p kubelite -f deploy/docker-compose.yml down -v
set -euo pipefail
cd "$(dirname "$0")/.."
file=deploy/docker-compose.yml
project=${COMPOSE_PROJECT_NAME:-kubelite}
nodes=2
if [ "${1:-}" = "ha" ]; then
  file=deploy/docker-compose.ha.yml
  project=${COMPOSE_PROJECT_NAME:-kubelite-ha}
  nodes=3
fi
command -v docker >/dev/null && docker info >/dev/null 2>&1 || { echo "compose-up: no Docker engine answers (docker info failed)" >&2; exit 2; }
CGO_ENABLED=0 scripts/build.sh
for b in apiserver scheduler controller-manager kubelet kubelet-shim kubectl-lite etcdctl-lite kubelite-app; do
  [ -x "bin/$b" ] || { echo "compose-up: bin/$b is missing; build it with scripts/build.sh" >&2; exit 2; }
done
docker build -q -f deploy/Dockerfile -t kubelite:dev bin/ >/dev/null
echo "compose-up: image kubelite:dev $(docker image inspect kubelite:dev --format '{{.Size}}' | awk '{printf "%.1f MB", $1/1e6}')"
start=$(date +%s%N)
docker-compose -p "$project" -f "$file" up -d
server=127.0.0.1:${KUBELITE_API_PORT:-6443}
inner=apiserver:6443
[ "$nodes" = 3 ] && inner=apiserver-1:6443,apiserver-2:6443,apiserver-3:6443
[ "$nodes" = 3 ] && server=127.0.0.1:${KUBELITE_API_PORT:-6443},127.0.0.1:${KUBELITE_API_PORT2:-6444},127.0.0.1:${KUBELITE_API_PORT3:-6445}
for i in $(seq 1 240); do
  ready=$(bin/kubectl-lite --server "$server" get nodes --no-headers 2>/dev/null | grep -c ' Ready' || true)
  [ "$ready" -ge "$nodes" ] && break
  [ "$i" = 240 ] && { echo "compose-up: only $ready of $nodes nodes Ready after 120s; see docker-compose -p $project -f $file logs" >&2; exit 1; }
  sleep 0.5
done
end=$(date +%s%N)
echo "compose-up: $nodes nodes Ready $(( (end - start) / 1000000 )) ms after docker-compose up"
cat <<MSG

  bin/kubectl-lite --server $server get nodes
  bin/kubectl-lite --server $server apply -f deploy/examples/compose-pod.yaml
  bin/etcdctl-lite --endpoints 127.0.0.1:${KUBELITE_ETCD_PORT:-2379} get --prefix --keys-only /registry
  docker-compose -p $project -f $file exec -T node-1 /bin/kubectl-lite --server $inner get pods -o wide
  docker-compose -p $project -f $file down -v      # stop and remove everything
MSG
