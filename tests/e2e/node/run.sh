#!/usr/bin/env bash
# ctest's node_e2e_test: installs the exact packages of package-lock.json into
# this directory's node_modules (git-ignored), then runs subscribe.test.mjs with
# Node's built-in test runner. Needs REDRIVE_DAEMON_BINARY (and optionally
# REDRIVE_REDIS_SERVER), as ctest sets them. A missing node or npm is a
# failure, never a skip: scripts/deps.sh installs Debian's nodejs and npm.
set -euo pipefail
cd "$(dirname "$0")"

for tool in node npm; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "node_e2e_test FAILED: '$tool' is not on PATH; run scripts/deps.sh (installs nodejs npm)" >&2
    exit 1
  fi
done
major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 18 ]; then
  echo "node_e2e_test FAILED: node $(node --version) is too old; node --test needs 18 or later" >&2
  exit 1
fi
if [ -z "${REDRIVE_DAEMON_BINARY:-}" ]; then
  echo "node_e2e_test FAILED: REDRIVE_DAEMON_BINARY must name the redrived binary" >&2
  exit 1
fi

npm ci --no-audit --no-fund
exec node --test subscribe.test.mjs
