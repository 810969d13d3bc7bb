#!/usr/bin/env bash
# ctest's node_order_service_test (see order_service.test.mjs). A missing node
# or npm is a failure, never a skip: scripts/deps.sh installs them.
set -euo pipefail
cd "$(dirname "$0")"
source ../../../tests/e2e/node/require_node.sh
require_node node_order_service_test
exec node --test order_service.test.mjs
