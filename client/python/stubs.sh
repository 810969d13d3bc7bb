#!/usr/bin/env bash
# Regenerates the checked-in stubs redrive/v1/*_pb2*.py (and the *_pb2.pyi type
# stubs of the messages) from proto/redrive/v1
# with the given protoc and grpc_python_plugin, or (--check) fails with a diff
# when the checked-in files differ from freshly generated ones (ctest
# python_stubs_drift_test runs it with the build's protoc and plugin).
#   client/python/stubs.sh [--check] [PROTOC [GRPC_PYTHON_PLUGIN]]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
check=0
if [ "${1:-}" = "--check" ]; then check=1; shift; fi
protoc="${1:-$(command -v protoc)}"
plugin="${2:-$(command -v grpc_python_plugin)}"
for tool in "$protoc" "$plugin"; do
  if [ ! -x "$tool" ]; then
    echo "stubs.sh: '$tool' is not an executable; install protobuf-compiler and" \
      "protobuf-compiler-grpc (scripts/deps.sh)" >&2
    exit 1
  fi
done
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
"$protoc" -I"$root/proto" --python_out="$out" --pyi_out="$out" --grpc_out="$out" \
  --plugin=protoc-gen-grpc="$plugin" "$root"/proto/redrive/v1/*.proto
if [ "$check" -eq 1 ]; then
  fresh=$(cd "$out/redrive/v1" && ls)
  kept=$(cd "$here/redrive/v1" && ls -- *_pb2*.py *_pb2*.pyi)
  if [ "$fresh" != "$kept" ]; then
    echo "stubs drift: generated files [$fresh] but checked in [$kept]" >&2
    echo "run client/python/stubs.sh to regenerate" >&2
    exit 1
  fi
  for f in $fresh; do
    if ! diff -u "$here/redrive/v1/$f" "$out/redrive/v1/$f"; then
      echo "stubs drift: client/python/redrive/v1/$f differs from protoc's output;" \
        "run client/python/stubs.sh to regenerate" >&2
      exit 1
    fi
  done
  echo "stubs: $(echo "$fresh" | wc -w) files match protoc $("$protoc" --version)"
else
  rm -f "$here"/redrive/v1/*_pb2*.py "$here"/redrive/v1/*_pb2*.pyi
  cp "$out"/redrive/v1/*_pb2* "$here/redrive/v1/"
  echo "stubs: regenerated $(ls "$out/redrive/v1" | wc -l) files"
fi
