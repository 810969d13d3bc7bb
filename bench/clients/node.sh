#!/usr/bin/env bash
# Throughput of a no-op handler through the redrive Node.js Worker
# (client/node) beside a direct ioredis consumer (XREADGROUP + XACK) on the
# same number of messages, in one run (bench/clients/node/bench.mjs): builds
# redrived in Release (build-release), starts a private redis-server and the
# daemon on loopback, installs bench/clients/node's locked packages (ioredis
# is a dependency of that directory only) and prints each round and the
# medians' ratio (issue 13's target: >= 0.5).
#   bench/clients/node.sh [--messages=50000] [--payload=100] [--count=100] [--max-in-flight=1000] [--rounds=3]
set -euo pipefail
cd "$(dirname "$0")/../.."
cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=Release -DREDRIVE_BUILD_TESTS=OFF >/dev/null
cmake --build build-release --target redrived >/dev/null

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
  --ready-file="$work/ready.json" --log-level=warn --admin-auth=disabled &
daemon_pid=$!
for _ in $(seq 200); do [ -s "$work/ready.json" ] && break; sleep 0.05; done
addr=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["grpc"][0])' "$work/ready.json")

(cd bench/clients/node && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
node bench/clients/node/bench.mjs --address="$addr" --redis-port="$port" "$@"
