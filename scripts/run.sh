#!/usr/bin/env bash
# One command from a fresh Debian 12 machine to a running daemon:
# installs the packages, builds (Release), and runs redrived. With no Redis
# configured (REDRIVE_REDIS_URL unset) redrived starts a private embedded
# redis-server. Extra arguments go to redrived, e.g. --grpc-listen=...
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=Release -DREDRIVE_BUILD_TESTS=OFF >/dev/null
cmake --build build-release --target redrived
exec build-release/daemon/redrived "$@"
