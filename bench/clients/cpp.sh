#!/usr/bin/env bash
# The C++ worker benchmark: builds redrived and worker_bench in Release
# (build-release), starts a private redis-server and redrived on loopback,
# and runs worker_bench: a no-op handler through redrive::Worker against a
# direct hiredis consumer of the same N entries, and their ratio.
#   bench/clients/cpp.sh [--messages=100000] [--payload=100] [--max-in-flight=2000] [--threads=2]
# (it passes --daemon-pid, so the daemon's CPU per message is printed too)
set -euo pipefail
cd "$(dirname "$0")/../.."
cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=Release -DREDRIVE_BUILD_TESTS=OFF \
  -DREDRIVE_BUILD_BENCH=ON >/dev/null
cmake --build build-release --target redrived worker_bench >/dev/null
work=$(mktemp -d)
export REDRIVE_DAEMON_BINARY=$PWD/build-release/daemon/redrived
REDRIVE_REDIS_SERVER=$(command -v redis-server)
export REDRIVE_REDIS_SERVER
source tests/testing/daemon_env.sh
redrive_start "$work"
trap 'redrive_stop; rm -rf "$work"' EXIT
timeout 300 build-release/bench/worker_bench --redis-port="$REDIS_PORT" --daemon="$REDRIVE_TARGET" \
  --daemon-pid="$_redrive_daemon_pid" "$@"
