#!/usr/bin/env bash
# ctest's deploy_manifests_test and dockerfile_lint_test: installs the exact
# packages of package-lock.json into this directory's node_modules
# (git-ignored), then runs one of
#   manifests   node --test manifests.test.mjs: renders deploy/kustomize (base
#               and every overlay) with `kubectl kustomize` and validates
#               every object (kubernetes-models)
#   dockerfile  node --test dockerfile.test.mjs: lints the Dockerfile
# A missing tool is a failure, never a skip: scripts/deps.sh installs node and
# npm; kubectl (with kustomize v5, kubectl >= 1.27) is part of this project's
# machine image (Debian 12's own kubectl 1.20 is too old, see README
# "Deploying on Kubernetes").
set -euo pipefail
cd "$(dirname "$0")"

what=${1:-}
case "$what" in
  manifests) tools=(node npm kubectl) ;;
  dockerfile) tools=(node npm) ;;
  *) echo "usage: $0 manifests|dockerfile" >&2; exit 2 ;;
esac
for tool in "${tools[@]}"; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "${what} check FAILED: '$tool' is not on PATH" >&2
    exit 1
  fi
done
major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 18 ]; then
  echo "${what} check FAILED: node $(node --version) is too old; node --test needs 18 or later" >&2
  exit 1
fi

# Both ctest entries share node_modules (npm ci replaces it): one runs at a
# time, holding the lock until node exits.
exec 9>node_modules.lock
flock 9
npm ci --no-audit --no-fund --loglevel=error
exec node --test "${what}.test.mjs"
