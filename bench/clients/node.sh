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
export REDRIVE_DAEMON_BINARY=$PWD/build-release/daemon/redrived
REDRIVE_REDIS_SERVER=$(command -v redis-server)
export REDRIVE_REDIS_SERVER
source tests/testing/daemon_env.sh
redrive_start "$work"
trap 'redrive_stop; rm -rf "$work"' EXIT

(cd bench/clients/node && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
node bench/clients/node/bench.mjs --address="$REDRIVE_TARGET" --redis-port="$REDIS_PORT" "$@"
