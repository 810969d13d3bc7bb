#!/usr/bin/env bash
# Installs the Debian 12 packages redrive needs to build, run and test.
# Skips apt entirely when everything is already installed.
# Usage: scripts/deps.sh            (root, or sudo available)
set -euo pipefail

PACKAGES=(
  # toolchain (clang: -Wthread-safety build and libFuzzer; clang-format and
  # clang-tidy: scripts/test.sh checks)
  g++ cmake ninja-build ccache pkg-config clang libclang-rt-14-dev clang-format clang-tidy
  # libraries (see README "Dependencies")
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler grpc-proto
  libabsl-dev libhiredis-dev libevent-dev nlohmann-json3-dev libspdlog-dev libssl-dev
  libjemalloc-dev
  # tests (openssl makes the TLS tests' certificates; stunnel4 is the Redis TLS tunnel;
  # redis-sentinel: tests/e2e/sentinel)
  libgtest-dev libgmock-dev redis-server python3-grpcio python3-protobuf python3-pytest curl
  openssl stunnel4 redis-sentinel
  # promtool: deploy/prometheus alert rules (check rules, test rules) and the
  # exposition (check metrics); the server: tests/e2e/python/test_metrics.py
  prometheus
  # tests: redrivectl top on a real terminal (tests/e2e/redrivectl_top_test.cc)
  tmux
  # tests: redis-cli --cluster create (tests/testing/redis_cluster.cc; redis-server
  # pulls it in today, named here because the harness calls it)
  redis-tools
  # tests: `pip install client/python` into a fresh venv (python_client_packaging_test),
  # mypy --strict over it (python_client_typecheck_test); bench/clients/python.sh's
  # direct consumer (redis-py)
  python3-venv python3-pip python3-setuptools python3-mypy python3-redis
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js e2e test (tests/e2e/node): Debian's nodejs and npm unless a node is on PATH.
command -v node >/dev/null 2>&1 || missing+=(nodejs npm)
# deploy_manifests_test renders deploy/kustomize with `kubectl kustomize`,
# which needs kustomize v5 (kubectl >= 1.27). Debian 12's kubernetes-client
# is kubectl 1.20 (kustomize v2.0.3, which rejects the manifests), so it is
# not installed here; the project's machine image ships kubectl 1.32. Without
# a kubectl that test fails and says why.
command -v kubectl >/dev/null 2>&1 ||
  echo "deps: warning: no kubectl on PATH; deploy_manifests_test needs kubectl >= 1.27" >&2
if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
