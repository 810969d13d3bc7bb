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
export REDRIVE_DAEMON_BINARY=$PWD/build-release/daemon/redrived
REDRIVE_REDIS_SERVER=$(command -v redis-server)
export REDRIVE_REDIS_SERVER
source tests/testing/daemon_env.sh
redrive_start "$work"
trap 'redrive_stop; rm -rf "$work"' EXIT
PYTHONPATH="$PWD/client/python" timeout 600 /usr/bin/python3 bench/clients/python_bench.py \
  --target="$REDRIVE_TARGET" --redis-port="$REDIS_PORT" "$@"
