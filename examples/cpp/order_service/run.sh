#!/usr/bin/env bash
# One command: builds the C++ order service (Release, in build-release, as
# scripts/run.sh does) and runs it against the daemon scripts/run.sh serves
# (unix:${XDG_RUNTIME_DIR:-/tmp}/redrive/redrive.sock). Arguments go to
# order_service, e.g. --target=127.0.0.1:50051 --orders=20.
set -euo pipefail
cd "$(dirname "$0")/../../.."
cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=Release -DREDRIVE_BUILD_TESTS=OFF >/dev/null
cmake --build build-release --target order_service >/dev/null
exec build-release/examples/cpp/order_service/order_service "$@"
