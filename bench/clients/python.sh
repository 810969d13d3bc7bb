#!/usr/bin/env bash
# Throughput of a no-op handler through the Python Worker and AsyncWorker
# (client/python) beside a direct redis-py consumer, in one run, against a
# Release redrived (build-release) and a private redis-server on loopback.
# Needs Debian's python3-redis (scripts/deps.sh). Not run in CI.
#   bench/clients/python.sh [--messages=50000] [--batch=256] [--rounds=3]
# Prints each consumer's median rate and its ratio to redis-py's (issue 13
# target: 0.5 or more for both workers).
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! /usr/bin/python3 -c 'import redis' 2>/dev/null; then
  echo "bench/clients/python.sh: redis-py is missing: apt-get install python3-redis" >&2
  exit 1
fi
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
build-release/daemon/redrived --redis-url="redis://127.0.0.1:$port/0" \
  --grpc-listen="unix:$work/redrive.sock" --ready-file="$work/ready.json" \
  >"$work/redrived.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 200); do [ -s "$work/ready.json" ] && break; sleep 0.05; done
[ -s "$work/ready.json" ] || { cat "$work/redrived.log" >&2; exit 1; }
PYTHONPATH="$PWD/client/python" timeout 600 /usr/bin/python3 bench/clients/python_bench.py \
  --target="unix:$work/redrive.sock" --redis-port="$port" "$@"
