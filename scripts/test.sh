#!/usr/bin/env bash
# One command from a fresh Debian 12 machine to a passing test suite:
# installs the packages, builds, and runs every test (unit, integration
# against real redis-servers the harness starts on loopback, end to end
# through the real daemon from C++, Python and Node.js) with a g++ build; then
# builds the tree with clang (AddressSanitizer + UndefinedBehaviorSanitizer,
# -Wthread-safety over the daemon and client code, the libFuzzer target) and
# runs the whole suite again; finally runs clang-tidy (.clang-tidy) over the
# daemon and client sources and fuzzes the envelope decoders for a bounded
# time. Before building, every C++ source must be
# formatted as .clang-format says (clang-format --dry-run -Werror).
#
#   scripts/test.sh            everything (what CI runs)
#   scripts/test.sh --fast     format check and the plain build only: no
#                              clang sanitizer pass, no clang-tidy
set -euo pipefail
cd "$(dirname "$0")/.."
fast=0
[ "${1:-}" = "--fast" ] && fast=1

scripts/deps.sh
command -v redis-server >/dev/null || { echo "redis-server missing: integration tests cannot run" >&2; exit 1; }

echo "== clang-format --dry-run -Werror"
# Our sources only: generated code lives in the build directories.
find daemon client bench tests examples -name node_modules -prune -o \( -name '*.h' -o -name '*.cc' \) -print0 |
  sort -z | xargs -0 clang-format --dry-run -Werror

run_suite() {
  local dir=$1; shift
  # A build directory configured with another compiler (an older layout of
  # these passes) cannot be reconfigured in place.
  if [ -f "$dir/CMakeCache.txt" ] && [ -n "${CXX:-}" ] &&
      ! grep -q "^CMAKE_CXX_COMPILER:[A-Z]*=.*${CXX}\$" "$dir/CMakeCache.txt"; then
    rm -rf "$dir"
  fi
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
  # The second pass is clang's: AddressSanitizer + UndefinedBehaviorSanitizer,
  # -Wthread-safety over the daemon and client code (-Werror), and the
  # libFuzzer envelope target, all in one build. clang compiles this tree in
  # well under half of g++'s time at -O0, so one clang build replaces what
  # were a g++ ASan build and a separate clang build; the first pass keeps
  # g++ (the compiler of the release build and the container image).
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    CC=clang CXX=clang++ run_suite build-asan -DCMAKE_BUILD_TYPE=Debug -DREDRIVE_SANITIZE=ON \
    -DREDRIVE_THREAD_SAFETY=ON -DREDRIVE_FUZZ=ON
  echo "== clang-tidy (.clang-tidy) over daemon/ and client/"
  # Every .cc under daemon/ and client/ in build-asan's compile_commands.json
  # (the build above generated the headers they include). About 4 minutes on
  # 2 cores. Any finding fails the run (.clang-tidy: WarningsAsErrors); the
  # findings are listed first. A finding that is wrong in one place gets a
  # NOLINTNEXTLINE(check) with the reason (see .clang-tidy).
  tidy_start=$(date +%s)
  if ! run-clang-tidy -p build-asan -j 2 -quiet "^$PWD/(daemon|client)/.*\.cc\$" 2>&1 |
      sed 's/\x1b\[[0-9;]*m//g' >build-asan/tidy.log; then
    # A header's finding shows once per .cc including it: count each once.
    grep -E "^/.*: (warning|error): " build-asan/tidy.log | sort -u >build-asan/tidy-findings.txt || true
    cat build-asan/tidy-findings.txt
    findings=$(wc -l <build-asan/tidy-findings.txt)
    echo "clang-tidy: $findings findings above (whole log: build-asan/tidy.log)" >&2
    exit 1
  else
    echo "clang-tidy: no findings in $(( $(date +%s) - tidy_start )) s"
  fi
  echo "== envelope fuzzing (libFuzzer, 30 s)"
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
  build-asan/tests/envelope_fuzz -runs=100000 -max_total_time=30 -print_final_stats=1 "$corpus" 2>&1 | tail -4
  rm -rf "$corpus"
fi
echo "== all suites passed in $(( $(date +%s) - start )) s"
