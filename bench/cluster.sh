#!/usr/bin/env bash
# Redis Cluster scaling (issue 14): in one run, the same load through one
# redrived against (a) a 1-master cluster (one redis-server owning all 16384
# slots) and (b) a 3-master cluster (no replicas), each started fresh on
# loopback and stopped afterwards. The load is cluster_bench: --channels (30)
# channels, a no-op handler each, --messages (10000) per channel published
# with PublishBatch as fast as possible. Prints both delivered rates, the
# ratio (b)/(a) and the CPU of redrived and each redis-server.
#   bench/cluster.sh [cluster_bench flags, e.g. --channels=30 --messages=10000]
# Builds in Release (build-release). Not run in CI.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=Release -DREDRIVE_BUILD_TESTS=OFF \
  -DREDRIVE_BUILD_BENCH=ON >/dev/null
cmake --build build-release --target redrived cluster_bench >/dev/null
build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' build-release/CMakeCache.txt)

work=$(mktemp -d)
redis_pids=()
daemon_pid=
stop_all() {
  [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null || true
  for p in "${redis_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  daemon_pid=
  redis_pids=()
}
trap 'stop_all; rm -rf "$work"' EXIT

free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_cluster N: N cluster-enabled masters, the slots split among them;
# sets ports.
start_cluster() {
  local n=$1 i port dir
  ports=()
  for i in $(seq "$n"); do
    port=$(free_port)
    dir="$work/$n-$i"
    mkdir -p "$dir"
    redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" \
      --logfile "$dir/redis.log" --cluster-enabled yes --cluster-config-file nodes.conf \
      --cluster-port "$(free_port)" &
    redis_pids+=($!)
    ports+=("$port")
  done
  for port in "${ports[@]}"; do
    for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done
  done
  if [ "$n" = 1 ]; then
    redis-cli -p "${ports[0]}" cluster addslotsrange 0 16383 >/dev/null
  else
    local addrs=()
    for port in "${ports[@]}"; do addrs+=("127.0.0.1:$port"); done
    timeout 60 redis-cli --cluster create "${addrs[@]}" --cluster-replicas 0 --cluster-yes \
      >"$work/create-$n.log" 2>&1 || { cat "$work/create-$n.log" >&2; exit 1; }
  fi
  for port in "${ports[@]}"; do
    for _ in $(seq 200); do
      redis-cli -p "$port" cluster info | grep -q '^cluster_state:ok' && break
      sleep 0.05
    done
    redis-cli -p "$port" cluster info | grep -q '^cluster_state:ok' ||
      { echo "cluster.sh: 127.0.0.1:$port never reached cluster_state:ok" >&2; exit 1; }
  done
}

# run N [cluster_bench flags]: prints cluster_bench's output.
run() {
  local n=$1 url="redis-cluster://" port
  shift
  start_cluster "$n"
  for port in "${ports[@]}"; do url+="127.0.0.1:$port,"; done
  rm -f "$work/ready.json"
  build-release/daemon/redrived --redis-url="${url%,}" --grpc-listen="unix:$work/redrived.sock" \
    --ready-file="$work/ready.json" --admin-auth=disabled --log-level=warn 2>"$work/redrived.log" &
  daemon_pid=$!
  for _ in $(seq 400); do
    [ -s "$work/ready.json" ] && break
    kill -0 "$daemon_pid" 2>/dev/null || break
    sleep 0.05
  done
  [ -s "$work/ready.json" ] || { cat "$work/redrived.log" >&2; exit 1; }
  local pids
  pids=$(IFS=,; echo "${redis_pids[*]}")
  timeout 300 build-release/bench/cluster_bench --daemon="unix:$work/redrived.sock" \
    --daemon-pid="$daemon_pid" --redis-pids="$pids" "$@"
  stop_all
}

echo "== (a) 1 master ($build_type redrived) =="
# Not in $(...): a failure must reach the EXIT trap of this shell.
run 1 "$@" >"$work/one.out"
cat "$work/one.out"
echo "== (b) 3 masters =="
run 3 "$@" >"$work/three.out"
cat "$work/three.out"
rate() { sed -n 's/^delivered: \([0-9]*\) msg\/s.*/\1/p' "$1"; }
r1=$(rate "$work/one.out")
r3=$(rate "$work/three.out")
[ -n "$r1" ] && [ -n "$r3" ] || { echo "cluster.sh: no rate in the output" >&2; exit 1; }
echo "== scaling =="
awk -v a="$r1" -v b="$r3" 'BEGIN { printf "1 master %d msg/s, 3 masters %d msg/s, ratio 3/1: %.2f\n", a, b, b / a }'
