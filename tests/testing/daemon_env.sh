# Sourced by the shell tests and benchmarks that need a running daemon
# (client_install_test, cpp_example_test, bench/clients/*.sh): starts a
# private redis-server on a free loopback port and the real redrived on a
# Unix socket, both stopped on exit.
#   redrive_start WORK_DIR [redrived flag...]
# sets REDRIVE_TARGET (unix:WORK_DIR/redrived.sock) and REDIS_PORT. Needs
# REDRIVE_DAEMON_BINARY and REDRIVE_REDIS_SERVER (ctest sets both); a missing
# one is a failure, never a skip.
redrive_start() {
  local work=$1
  shift
  if [ -z "${REDRIVE_DAEMON_BINARY:-}" ] || [ -z "${REDRIVE_REDIS_SERVER:-}" ]; then
    echo "FAILED: REDRIVE_DAEMON_BINARY and REDRIVE_REDIS_SERVER must be set" >&2
    return 1
  fi
  REDIS_PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  mkdir -p "$work/redis"
  "$REDRIVE_REDIS_SERVER" --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$work/redis" --logfile "$work/redis.log" &
  _redrive_redis_pid=$!
  trap redrive_stop EXIT
  local i
  for i in $(seq 200); do
    redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
    sleep 0.05
  done
  "$REDRIVE_DAEMON_BINARY" --redis-url="redis://127.0.0.1:$REDIS_PORT/0" \
    --grpc-listen="unix:$work/redrived.sock" --ready-file="$work/ready.json" \
    --admin-auth=disabled --log-level=warn "$@" 2>"$work/redrived.log" &
  _redrive_daemon_pid=$!
  for i in $(seq 400); do
    [ -s "$work/ready.json" ] && break
    kill -0 "$_redrive_daemon_pid" 2>/dev/null || break
    sleep 0.05
  done
  if [ ! -s "$work/ready.json" ]; then
    echo "FAILED: redrived did not become ready:" >&2
    cat "$work/redrived.log" >&2
    return 1
  fi
  REDRIVE_TARGET="unix:$work/redrived.sock"
}

redrive_stop() {
  [ -n "${_redrive_daemon_pid:-}" ] && kill "$_redrive_daemon_pid" 2>/dev/null || true
  [ -n "${_redrive_redis_pid:-}" ] && kill "$_redrive_redis_pid" 2>/dev/null || true
  wait 2>/dev/null || true
}
