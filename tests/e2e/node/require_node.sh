# Sourced by the scripts ctest runs for Node.js (tests/e2e/node/run.sh,
# client/node/test/run.sh, examples/node/order_service/test.sh):
#   require_node TEST_NAME
# fails (exit 1, with a message naming TEST_NAME) — never skips — when node or
# npm is not on PATH (scripts/deps.sh installs Debian's nodejs and npm), node
# is older than 18, or REDRIVE_DAEMON_BINARY does not name the daemon.
require_node() {
  local name=$1 tool major
  for tool in node npm; do
    if ! command -v "$tool" >/dev/null 2>&1; then
      echo "$name FAILED: '$tool' is not on PATH; run scripts/deps.sh (installs nodejs npm)" >&2
      exit 1
    fi
  done
  major=$(node -p 'process.versions.node.split(".")[0]')
  if [ "$major" -lt 18 ]; then
    echo "$name FAILED: node $(node --version) is too old; 18 or later is needed (node --test)" >&2
    exit 1
  fi
  if [ -z "${REDRIVE_DAEMON_BINARY:-}" ]; then
    echo "$name FAILED: REDRIVE_DAEMON_BINARY must name the redrived binary" >&2
    exit 1
  fi
}
