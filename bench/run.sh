#!/usr/bin/env bash
# Builds redrived and stream_bench in Release, starts a private redis-server
# and redrived on loopback, runs the benchmark, and stops everything.
#   bench/run.sh [--messages=200000] [--rate=10000] [--seconds=5] [--payload=100]
#   bench/run.sh reclaim [--handlers=100] [--pending=10000] [--due=100] [--seconds=10]
#   bench/run.sh redrive [--dead-letters=20000] [--rate=2000] [--rate-entries=4000]
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=Release -DREDRIVE_BUILD_TESTS=OFF \
  -DREDRIVE_BUILD_BENCH=ON >/dev/null
bench=stream_bench
if [ "${1:-}" = reclaim ]; then bench=reclaim_bench; shift; fi
if [ "${1:-}" = redrive ]; then bench=redrive_bench; shift; fi
cmake --build build-release --target redrived "$bench" >/dev/null

work=$(mktemp -d)
cleanup() {
  [ -n "${daemon_pid:-}" ] && kill "$daemon_pid" 2>/dev/null || true
  [ -n "${redis_pid:-}" ] && kill "$redis_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" \
  --logfile "$work/redis.log" &
redis_pid=$!
for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done

build-release/daemon/redrived --redis-url="redis://127.0.0.1:$port/0" --grpc-listen=127.0.0.1:0 \
  --ready-file="$work/ready.json" --log-level="${REDRIVE_BENCH_LOG_LEVEL:-warn}" \
  --admin-auth=disabled &
daemon_pid=$!
for _ in $(seq 200); do [ -s "$work/ready.json" ] && break; sleep 0.05; done
addr=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["grpc"][0])' "$work/ready.json")

build-release/bench/"$bench" --redis-port="$port" --daemon="$addr" --daemon-pid="$daemon_pid" "$@"
