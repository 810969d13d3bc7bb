#!/usr/bin/env bash
# client_install_test: installs the client component of the build tree $1
# into a fresh prefix, checks what was installed, then configures, builds and
# runs tests/install_consumer against that prefix only (find_package(redrive
# CONFIG)). Works in $2 (inside the build tree, so that ccache sees the same
# paths every run); further arguments go to the consumer's cmake configure
# (the compiler and sanitizer flags of the build under test). The consumer
# then publishes and handles messages through a real redrived and
# redis-server (REDRIVE_DAEMON_BINARY, REDRIVE_REDIS_SERVER; ctest sets them).
#   run.sh BUILD_DIR WORK_DIR [CMAKE_ARG...]
set -euo pipefail
build=$1
work=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
rm -rf "$work"
mkdir -p "$work"
prefix=$work/prefix

cmake --install "$build" --prefix "$prefix" --component client >/dev/null
for f in include/redrive/client.h include/redrive/publisher.h include/redrive/worker.h \
  include/redrive/v1/broker.grpc.pb.h \
  include/redrive/v1/admin.grpc.pb.h include/redrive/v1/common.pb.h \
  lib/libredrive_client.a lib/libredrive_proto.a lib/libredrive_proto_messages.a \
  lib/cmake/redrive/redriveConfig.cmake lib/cmake/redrive/redriveConfigVersion.cmake \
  lib/cmake/redrive/redriveTargets.cmake; do
  [ -f "$prefix/$f" ] || { echo "not installed: $f" >&2; exit 1; }
done
# The package must stand alone: nothing in it may point back into the build
# or source tree.
source_dir=$(cd "$here/../.." && pwd)
if grep -rlF -e "$source_dir" -e "$(cd "$build" && pwd)" "$prefix/lib/cmake"; then
  echo "the installed package refers to the build or source tree" >&2
  exit 1
fi

launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S "$here" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Debug \
  -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF "${launcher[@]}" "$@" >/dev/null
cmake --build "$work/build"
source "$here/../testing/daemon_env.sh"
redrive_start "$work/daemon"
"$work/build/consumer" "$REDRIVE_TARGET"
