#!/usr/bin/env bash
# One command from a fresh Debian 12 machine to a passing test suite:
# installs the packages, builds, and runs every test (unit, integration
# against real redis-servers the harness starts on loopback, end to end
# through the real daemon from C++, Python and Node.js); then builds and runs the
# whole suite again under AddressSanitizer + UndefinedBehaviorSanitizer;
# finally compiles the daemon with clang -Wthread-safety and fuzzes the
# envelope decoders for a bounded time.
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
if [ "$fast" -eq 0 ]; then
  echo "== clang -Wthread-safety build and envelope fuzzing"
  CC=clang CXX=clang++ cmake -S . -B build-clang -G Ninja -DCMAKE_BUILD_TYPE=Debug \
    -DREDRIVE_THREAD_SAFETY=ON -DREDRIVE_FUZZ=ON >/dev/null
  cmake --build build-clang --target redrive_daemon redrive_client envelope_fuzz
  corpus=$(mktemp -d)
  /usr/bin/python3 - "$corpus" <<'PY'
import json, sys
vectors = json.load(open("tests/data/vectors/faststream-binary-v1.json"))["vectors"]
for v in vectors:
    for key in ("faststream_encoded_hex", "constructed_hex", "input_hex", "entry_value_hex",
                "byte_length_correct_hex"):
        if v.get(key):
            open("%s/%s_%s" % (sys.argv[1], v["name"], key), "wb").write(bytes.fromhex(v[key]))
PY
  build-clang/tests/envelope_fuzz -runs=100000 -max_total_time=30 -print_final_stats=1 "$corpus" 2>&1 | tail -4
  rm -rf "$corpus"
fi
echo "== all suites passed in $(( $(date +%s) - start )) s"
