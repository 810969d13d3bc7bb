#!/usr/bin/env bash
# One command from a fresh Debian 12 machine to a passing test suite:
# installs the packages, builds, and runs every test (unit, integration
# against real redis-servers the harness starts on loopback, end to end
# through the real daemon from C++ and Python); then builds and runs the
# whole suite again under AddressSanitizer + UndefinedBehaviorSanitizer.
#
#   scripts/test.sh            everything (what CI runs)
#   scripts/test.sh --fast     the plain build only, no sanitizer pass
set -euo pipefail
cd "$(dirname "$0")/.."
fast=0
[ "${1:-}" = "--fast" ] && fast=1

scripts/deps.sh
command -v redis-server >/dev/null || { echo "redis-server missing: integration tests cannot run" >&2; exit 1; }

run_suite() {
  local dir=$1; shift
  echo "== configure $dir ($*)"
  cmake -S . -B "$dir" -G Ninja "$@" >/dev/null
  echo "== build $dir"
  cmake --build "$dir"
  echo "== test $dir"
  (cd "$dir" && ctest --output-on-failure --no-tests=error -j2 --timeout 600)
}

start=$(date +%s)
run_suite build -DCMAKE_BUILD_TYPE=Debug
if [ "$fast" -eq 0 ]; then
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    run_suite build-asan -DCMAKE_BUILD_TYPE=Debug -DREDRIVE_SANITIZE=ON
fi
echo "== all suites passed in $(( $(date +%s) - start )) s"
