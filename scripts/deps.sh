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
  libabsl-dev libhiredis-dev libevent-dev nlohmann-json3-dev libspdlog-dev
  # tests
  libgtest-dev libgmock-dev redis-server python3-grpcio python3-protobuf python3-pytest
  # tests: redrivectl top on a real terminal (tests/e2e/redrivectl_top_test.cc)
  tmux
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js e2e test (tests/e2e/node): Debian's nodejs and npm unless a node is on PATH.
command -v node >/dev/null 2>&1 || missing+=(nodejs npm)
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
