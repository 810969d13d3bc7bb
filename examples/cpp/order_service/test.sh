#!/usr/bin/env bash
# ctest's cpp_example_test: runs the order service binary $1 against a
# test-started redis-server + redrived, and checks what it printed and what
# reached the dead-letter queue.
set -euo pipefail
binary=$1
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
source "$here/../../../tests/testing/daemon_env.sh"
redrive_start "$work"
out=$("$binary" --target="$REDRIVE_TARGET" --orders=10)
echo "$out"
fail() { echo "cpp_example_test FAILED: $*" >&2; exit 1; }
grep -qx "published 10 orders to 'orders'" <<<"$out" || fail "no publish line"
grep -qx "summary: 6 shipped, 4 dead-lettered (see: redrivectl dlq list orders order-service)" \
  <<<"$out" || fail "wrong summary"
for id in 0 1 2 5 6 8; do grep -qx "order $id: shipped" <<<"$out" || fail "order $id not shipped"; done
grep -qx "order 3: dead-lettered (terminated: quantity 0)" <<<"$out" || fail "order 3"
grep -qx "order 4: dead-lettered after 3 attempts (unknown SKU NOPE-0)" <<<"$out" || fail "order 4"
cli() { redis-cli -p "$REDIS_PORT" --raw "$@"; }
[ "$(cli XLEN orders.order-service.dlq)" = 4 ] || fail "DLQ length $(cli XLEN orders.order-service.dlq)"
errors=$(cli XRANGE orders.order-service.dlq - + | grep -a -A1 -x x-redrive-last-error | grep -a -v -x -e x-redrive-last-error -e -- | sort)
expected=$(printf '%s\n' "order 3: quantity 0" "order 7: quantity 0" \
  "payment: unknown SKU NOPE-0" "payment: unknown SKU NOPE-0" | sort)
[ "$errors" = "$expected" ] || fail "DLQ errors: $errors"
[ "$(cli XPENDING orders order-service | head -1)" = 0 ] || fail "entries still pending"
rm -rf "$work"
echo "cpp_example_test: ok"
