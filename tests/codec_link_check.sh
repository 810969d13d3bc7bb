#!/usr/bin/env bash
# codec_link_test: the codec unit tests (redrive_test(... CODEC) in
# CMakeLists.txt, linking redrive_codec only) load neither gRPC, hiredis nor
# libevent. Reads the shared libraries of each binary with ldd. The control
# binary (redrived) must show all three, so that the check cannot pass
# because ldd printed something else than expected.
#   codec_link_check.sh CONTROL_BINARY CODEC_TEST_BINARY...
set -euo pipefail
forbidden='lib(grpc|gpr|hiredis|event)'
control=$1
shift
[ "$#" -gt 0 ] || { echo "no codec test binaries given" >&2; exit 1; }

control_libs=$(ldd "$control")
for lib in libgrpc libhiredis libevent; do
  if ! grep -q "$lib" <<<"$control_libs"; then
    echo "control $control shows no $lib in ldd: the check is broken" >&2
    exit 1
  fi
done

status=0
for bin in "$@"; do
  libs=$(ldd "$bin")
  if grep -E "$forbidden" <<<"$libs"; then
    echo "FAIL $(basename "$bin") loads the libraries above" >&2
    status=1
  else
    echo "ok   $(basename "$bin"): $(wc -l <<<"$libs") shared libraries, none of gRPC/hiredis/libevent"
  fi
done
exit "$status"
