#!/usr/bin/env bash
# One command from a fresh Debian 12 machine to a running daemon: installs the
# packages, builds (Release) redrived and redrivectl, and runs redrived through
# scripts/serve.sh:
#   - gRPC on 127.0.0.1:50051 and on the Unix socket
#     ${XDG_RUNTIME_DIR:-/tmp}/redrive/redrive.sock (unless --grpc-listen or
#     REDRIVE_GRPC_LISTEN says otherwise);
#   - an Admin bearer token in ${XDG_RUNTIME_DIR:-/tmp}/redrive/admin-token
#     (unless REDRIVE_ADMIN_TOKEN or REDRIVE_ADMIN_TOKEN_FILE is set);
#   - with no Redis configured (REDRIVE_REDIS_URL unset) a private embedded
#     redis-server.
# redrivectl is left at build-release/client/redrivectl. Extra arguments go to
# redrived, e.g. --redis-url=redis://127.0.0.1:6379/0.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=Release -DREDRIVE_BUILD_TESTS=OFF >/dev/null
cmake --build build-release --target redrived redrivectl
echo "run.sh: redrivectl is build-release/client/redrivectl (export PATH=\"$PWD/build-release/client:\$PATH\")" >&2
REDRIVED="$PWD/build-release/daemon/redrived" exec scripts/serve.sh "$@"
