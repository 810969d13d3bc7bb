#!/usr/bin/env bash
# ctest's node_order_service_test (see order_service.test.mjs). A missing node
# or npm is a failure, never a skip: scripts/deps.sh installs them.
set -euo pipefail
cd "$(dirname "$0")"
for tool in node npm; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "node_order_service_test FAILED: '$tool' is not on PATH; run scripts/deps.sh (installs nodejs npm)" >&2
    exit 1
  fi
done
if [ -z "${REDRIVE_DAEMON_BINARY:-}" ]; then
  echo "node_order_service_test FAILED: REDRIVE_DAEMON_BINARY must name the redrived binary" >&2
  exit 1
fi
exec node --test order_service.test.mjs
