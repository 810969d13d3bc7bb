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
# Admin RPCs need a bearer token: without one configured, make one for this
# run and say where it is (export REDRIVE_ADMIN_TOKEN to choose your own).
if [ -z "${REDRIVE_ADMIN_TOKEN:-}" ] && [ -z "${REDRIVE_ADMIN_TOKEN_FILE:-}" ]; then
  token_file="${XDG_RUNTIME_DIR:-/tmp}/redrive-admin-token"
  (umask 077 && od -An -tx1 -N24 /dev/urandom | tr -d ' \n' > "$token_file")
  export REDRIVE_ADMIN_TOKEN_FILE="$token_file"
  echo "run.sh: Admin bearer token in $token_file (redrivectl --token-file=$token_file)" >&2
fi
exec build-release/daemon/redrived "$@"
