#!/usr/bin/env bash
# daemon_allocator_test: redrived runs on the allocator the build chose
# (REDRIVE_ALLOCATOR; sanitizer builds always use the system one). jemalloc
# announces its configuration on stderr when MALLOC_CONF asks it to, so the
# check is on the running process, not only on the link line.
#   allocator_check.sh REDRIVED_BINARY jemalloc|system
set -euo pipefail
binary=$1
expected=$2
out=$(MALLOC_CONF=confirm_conf:true "$binary" --version 2>&1)
case "$expected" in
  jemalloc)
    grep -q '^<jemalloc>: malloc_conf' <<<"$out" ||
      { echo "FAILED: $binary does not run on jemalloc; it printed:" >&2; echo "$out" >&2; exit 1; }
    # daemon/jemalloc_conf.cc's compiled-in options are in effect.
    grep -q 'global variable malloc_conf): "oversize_threshold:1048576"' <<<"$out" ||
      { echo "FAILED: $binary lacks its jemalloc options; it printed:" >&2; echo "$out" >&2; exit 1; }
    grep -q 'Set conf value: oversize_threshold:1048576' <<<"$out" ||
      { echo "FAILED: jemalloc did not apply oversize_threshold; it printed:" >&2; echo "$out" >&2; exit 1; }
    # (ldd's output in a variable: `ldd | grep -q` fails under pipefail when
    # grep exits before ldd has written everything.)
    libs=$(ldd "$binary")
    grep -q 'libjemalloc\.so' <<<"$libs" ||
      { echo "FAILED: ldd $binary shows no libjemalloc" >&2; exit 1; } ;;
  system)
    if grep -q '<jemalloc>' <<<"$out"; then
      echo "FAILED: $binary runs on jemalloc; this build asked for the system allocator" >&2
      exit 1
    fi ;;
  *) echo "usage: allocator_check.sh BINARY jemalloc|system" >&2; exit 2 ;;
esac
echo "redrived allocator: $expected"
