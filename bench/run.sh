#!/usr/bin/env bash
# Builds redrived and stream_bench in Release, starts a private redis-server
# and redrived on loopback, runs the benchmark, and stops everything.
#   bench/run.sh [--messages=200000] [--rate=10000] [--seconds=5] [--payload=100]
#   bench/run.sh reclaim [--handlers=100] [--pending=10000] [--due=100] [--seconds=10]
#   bench/run.sh redrive [--dead-letters=20000] [--rate=2000] [--rate-entries=4000]
#   bench/run.sh metrics [--rounds=3] [stream_bench flags]
#     the daemon's CPU per message with --metrics-listen off and on (scraped
#     every second, as Prometheus would), alternating, in one run; prints
#     both medians and their ratio (issue 12: on within 10 % of off).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=Release -DREDRIVE_BUILD_TESTS=OFF \
  -DREDRIVE_BUILD_BENCH=ON >/dev/null
bench=stream_bench
mode=plain
rounds=3
if [ "${1:-}" = metrics ]; then
  mode=metrics; shift
  case "${1:-}" in --rounds=*) rounds=${1#--rounds=}; shift ;; esac
fi
if [ "${1:-}" = reclaim ]; then bench=reclaim_bench; shift; fi
if [ "${1:-}" = redrive ]; then bench=redrive_bench; shift; fi
cmake --build build-release --target redrived "$bench" >/dev/null

work=$(mktemp -d)
cleanup() {
  [ -n "${daemon_pid:-}" ] && kill "$daemon_pid" 2>/dev/null || true
  [ -n "${redis_pid:-}" ] && kill "$redis_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" \
  --logfile "$work/redis.log" &
redis_pid=$!
for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done

start_daemon() {  # extra redrived flags
  rm -f "$work/ready.json"
  build-release/daemon/redrived --redis-url="redis://127.0.0.1:$port/0" --grpc-listen=127.0.0.1:0 \
    --ready-file="$work/ready.json" --log-level="${REDRIVE_BENCH_LOG_LEVEL:-warn}" \
    --admin-auth=disabled "$@" &
  daemon_pid=$!
  for _ in $(seq 200); do [ -s "$work/ready.json" ] && break; sleep 0.05; done
  addr=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["grpc"][0])' "$work/ready.json")
  metrics_addr=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["metrics"])' "$work/ready.json")
}
stop_daemon() {
  kill "$daemon_pid" 2>/dev/null || true
  wait "$daemon_pid" 2>/dev/null || true
  daemon_pid=
}

if [ "$mode" = plain ]; then
  start_daemon
  build-release/bench/"$bench" --redis-port="$port" --daemon="$addr" --daemon-pid="$daemon_pid" "$@"
  exit 0
fi

# metrics: off, on, off, on, ... each on a fresh daemon and an empty Redis.
# --idle-handlers=0 skips phase (d); later flags win.
declare -a off_us on_us
for round in $(seq "$rounds"); do
  for metrics in off on; do
    redis-cli -p "$port" flushall >/dev/null
    scraper=
    if [ "$metrics" = on ]; then
      start_daemon --metrics-listen=127.0.0.1:0 --metrics-refresh-ms=1000
      # A scrape a second, as Prometheus would; bounded by 600 s.
      ( for _ in $(seq 600); do
          curl -sf -o /dev/null "http://$metrics_addr/metrics" || true; sleep 1
        done ) &
      scraper=$!
    else
      start_daemon
    fi
    out=$(build-release/bench/stream_bench --redis-port="$port" --daemon="$addr" \
      --daemon-pid="$daemon_pid" --idle-handlers=0 --seconds=2 "$@")
    [ -n "$scraper" ] && { kill "$scraper" 2>/dev/null || true; wait "$scraper" 2>/dev/null || true; }
    if [ "$metrics" = on ]; then
      scraped=$(curl -sf "http://$metrics_addr/metrics" | grep -c '^redrive_' || true)
      [ "$scraped" -gt 0 ] || { echo "metrics: /metrics served nothing" >&2; exit 1; }
    fi
    stop_daemon
    us=$(printf '%s\n' "$out" | sed -n 's/.*daemon CPU per message *: *\([0-9.]*\) us.*/\1/p')
    [ -n "$us" ] || { printf '%s\n' "$out"; echo "metrics: no CPU figure" >&2; exit 1; }
    echo "round $round, metrics $metrics: daemon CPU per message $us us"
    if [ "$metrics" = on ]; then on_us+=("$us"); else off_us+=("$us"); fi
  done
done
/usr/bin/python3 - "${off_us[*]}" "${on_us[*]}" <<'PY'
import statistics, sys
off = [float(x) for x in sys.argv[1].split()]
on = [float(x) for x in sys.argv[2].split()]
m_off, m_on = statistics.median(off), statistics.median(on)
print("== metrics overhead (median of %d rounds) ==" % len(off))
print("daemon CPU per message, metrics off : %6.2f us  %s" % (m_off, off))
print("daemon CPU per message, metrics on  : %6.2f us  %s" % (m_on, on))
print("ratio on/off                        : %6.3f   (target <= 1.10)" % (m_on / m_off))
PY
