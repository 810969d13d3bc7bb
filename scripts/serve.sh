#!/usr/bin/env bash
# Runs a built redrived the way scripts/run.sh does, without installing or
# building (run.sh = deps + build + this). The README's commands assume what
# it sets up:
#   - a private run directory ${XDG_RUNTIME_DIR:-/tmp}/redrive (mode 0700,
#     refused when another user owns it);
#   - gRPC on 127.0.0.1:50051 and unix:<run dir>/redrive.sock, unless
#     --grpc-listen is passed or REDRIVE_GRPC_LISTEN is set;
#   - Prometheus metrics at http://127.0.0.1:9464/metrics, unless
#     --metrics-listen is passed or REDRIVE_METRICS_LISTEN is set;
#   - unless REDRIVE_ADMIN_TOKEN or REDRIVE_ADMIN_TOKEN_FILE is set (or
#     --admin-token-file / --admin-auth is passed), a fresh random Admin
#     bearer token in <run dir>/admin-token, exported to redrived as
#     REDRIVE_ADMIN_TOKEN_FILE.
# REDRIVED names the binary (default build-release/daemon/redrived); extra
# arguments go to redrived.
set -euo pipefail
cd "$(dirname "$0")/.."
daemon="${REDRIVED:-build-release/daemon/redrived}"
run_dir="${XDG_RUNTIME_DIR:-/tmp}/redrive"

mkdir -p "$run_dir"
if [ ! -O "$run_dir" ] || [ -L "$run_dir" ]; then
  echo "run.sh: $run_dir is not a directory of this user; set XDG_RUNTIME_DIR" >&2
  exit 1
fi
chmod 700 "$run_dir"

listen_given=0
token_given=0
metrics_given=0
[ -n "${REDRIVE_GRPC_LISTEN:-}" ] && listen_given=1
[ -n "${REDRIVE_METRICS_LISTEN:-}" ] && metrics_given=1
{ [ -n "${REDRIVE_ADMIN_TOKEN:-}" ] || [ -n "${REDRIVE_ADMIN_TOKEN_FILE:-}" ]; } && token_given=1
for arg in "$@"; do
  case "$arg" in
    --grpc-listen|--grpc-listen=*) listen_given=1 ;;
    --metrics-listen|--metrics-listen=*) metrics_given=1 ;;
    --admin-token-file|--admin-token-file=*|--admin-auth|--admin-auth=*) token_given=1 ;;
  esac
done

args=()
if [ "$listen_given" -eq 0 ]; then
  socket="$run_dir/redrive.sock"
  args+=("--grpc-listen=127.0.0.1:50051,unix:$socket")
  echo "run.sh: gRPC on 127.0.0.1:50051 and unix:$socket" >&2
fi
if [ "$metrics_given" -eq 0 ]; then
  args+=("--metrics-listen=127.0.0.1:9464")
  echo "run.sh: Prometheus metrics at http://127.0.0.1:9464/metrics" >&2
fi
if [ "$token_given" -eq 0 ]; then
  token_file="$run_dir/admin-token"
  (umask 077 && od -An -tx1 -N24 /dev/urandom | tr -d ' \n' > "$token_file")
  export REDRIVE_ADMIN_TOKEN_FILE="$token_file"
  echo "run.sh: Admin bearer token in $token_file; in your shell:" >&2
  echo "  export REDRIVE_ADMIN_TOKEN_FILE=$token_file" >&2
fi
exec "$daemon" "${args[@]}" "$@"
