#!/usr/bin/env bash
# The order service in one command, against the daemon scripts/run.sh started
# (its socket and Admin token under ${XDG_RUNTIME_DIR:-/tmp}/redrive; set
# REDRIVE_ADDRESS / REDRIVE_ADMIN_TOKEN_FILE for another one):
#   examples/node/order_service/run.sh
# Installs package-lock.json's packages first (the redrive package from
# client/node, copied in: .npmrc sets install-links).
set -euo pipefail
cd "$(dirname "$0")"
for tool in node npm; do
  command -v "$tool" >/dev/null 2>&1 || { echo "run.sh: '$tool' is not on PATH (scripts/deps.sh installs nodejs npm)" >&2; exit 1; }
done
npm ci --no-audit --no-fund --loglevel=error >&2
exec node main.mjs
