#!/usr/bin/env bash
# ctest's node_client_test: the redrive npm package's tests. Installs the exact
# packages of package-lock.json (dependencies and the devDependencies
# typescript and @types/node) into client/node/node_modules (git-ignored),
# type-checks test/types/usage.ts against index.d.ts (tsc --noEmit --strict),
# then runs test/*.test.mjs with Node's built-in test runner: unit tests and
# end-to-end tests against the real daemon (REDRIVE_DAEMON_BINARY) and a
# private redis-server (REDRIVE_REDIS_SERVER, default redis-server). A missing
# node or npm is a failure, never a skip: scripts/deps.sh installs them.
set -euo pipefail
cd "$(dirname "$0")/.."

source ../../tests/e2e/node/require_node.sh
require_node node_client_test

npm ci --no-audit --no-fund
echo "== tsc --noEmit --strict test/types/usage.ts (index.d.ts as a dependent project sees it)"
npx --no-install tsc -p test/types/tsconfig.json
echo "== node --test"
exec node --test test/unit.test.mjs test/worker.test.mjs test/restart.test.mjs test/connection.test.mjs
