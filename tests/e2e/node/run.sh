#!/usr/bin/env bash
# ctest's node_e2e_test: installs the exact packages of package-lock.json into
# this directory's node_modules (git-ignored), then runs subscribe.test.mjs with
# Node's built-in test runner. Needs REDRIVE_DAEMON_BINARY (and optionally
# REDRIVE_REDIS_SERVER), as ctest sets them. A missing node or npm is a
# failure, never a skip: scripts/deps.sh installs Debian's nodejs and npm.
set -euo pipefail
cd "$(dirname "$0")"

source ./require_node.sh
require_node node_e2e_test

npm ci --no-audit --no-fund
exec node --test subscribe.test.mjs
