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
    ldd "$binary" | grep -q 'libjemalloc\.so' ||
      { echo "FAILED: ldd $binary shows no libjemalloc" >&2; exit 1; } ;;
  system)
    if grep -q '<jemalloc>' <<<"$out"; then
      echo "FAILED: $binary runs on jemalloc; this build asked for the system allocator" >&2
      exit 1
    fi ;;
  *) echo "usage: allocator_check.sh BINARY jemalloc|system" >&2; exit 2 ;;
esac
echo "redrived allocator: $expected"
