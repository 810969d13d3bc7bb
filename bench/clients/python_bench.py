"""End-to-end throughput of a no-op handler through redrive.Worker and
redrive.AsyncWorker, beside a direct redis-py consumer (XREADGROUP + XACK)
on the same number of messages, in one run. Run by bench/clients/python.sh,
which starts redis-server and a Release redrived on loopback.

Each consumer starts from a backlog of --messages entries already in its
own stream (published before the clock starts) and the clock stops when the
last one is acknowledged in Redis (XPENDING 0 after every handler ran).
"""

import argparse
import asyncio
import itertools
import statistics
import sys
import threading
import time

import redis

import redrive

PAYLOAD = b"x" * 100


def wait_acked(r, stream, group, deadline):
    while time.monotonic() < deadline:
        if r.xpending(stream, group)["pending"] == 0:
            return True
        time.sleep(0.002)
    return False


def direct(r, n, batch, timeout, rnd):
    stream, group = "bench.direct.%d" % rnd, "direct"
    pipe = r.pipeline(transaction=False)
    for i in range(n):
        pipe.xadd(stream, {"__data__": PAYLOAD})
        if i % 1000 == 999:
            pipe.execute()
    pipe.execute()
    r.xgroup_create(stream, group, id="0")
    t0 = time.monotonic()
    deadline = t0 + timeout
    seen = 0
    while seen < n and time.monotonic() < deadline:
        resp = r.xreadgroup(group, "c1", {stream: ">"}, count=batch, block=1000)
        if not resp:
            continue
        ids = [entry_id for entry_id, _fields in resp[0][1]]
        seen += len(ids)
        r.xack(stream, group, *ids)
    took = time.monotonic() - t0
    assert seen == n, "direct consumer read %d of %d" % (seen, n)
    return took


def publish_backlog(target, channel, n):
    with redrive.Publisher(target) as pub:
        for i in range(0, n, 1000):
            pub.publish_batch(channel, [PAYLOAD] * min(1000, n - i))


def worker_sync(target, r, n, batch, timeout, rnd):
    channel = "bench.sync.%d" % rnd
    publish_backlog(target, channel, n)
    done = threading.Event()
    counter = itertools.count(1)

    def noop(msg):
        if next(counter) == n:
            done.set()
    w = redrive.Worker(target)
    w.handle(channel, "bench", noop, max_in_flight=batch, start="backlog")
    t0 = time.monotonic()
    w.start()
    assert done.wait(timeout), "sync worker did not finish"
    assert wait_acked(r, channel, "bench", t0 + timeout)
    took = time.monotonic() - t0
    w.stop(5)
    return took


def worker_async(target, r, n, batch, timeout, rnd):
    channel = "bench.async.%d" % rnd
    publish_backlog(target, channel, n)

    async def main():
        done = asyncio.Event()
        counter = itertools.count(1)

        async def noop(msg):
            if next(counter) == n:
                done.set()
        w = redrive.AsyncWorker(target)
        w.handle(channel, "bench", noop, max_in_flight=batch, start="backlog")
        t0 = time.monotonic()
        await w.start()
        await asyncio.wait_for(done.wait(), timeout)
        while r.xpending(channel, "bench")["pending"] and time.monotonic() < t0 + timeout:
            await asyncio.sleep(0.002)
        took = time.monotonic() - t0
        await w.stop(5)
        return took
    return asyncio.run(main())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", required=True)
    ap.add_argument("--redis-port", type=int, required=True)
    ap.add_argument("--messages", type=int, default=50_000)
    ap.add_argument("--batch", type=int, default=256,
                    help="XREADGROUP COUNT of the direct consumer and max_in_flight of the workers")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=120.0)
    args = ap.parse_args()
    r = redis.Redis(host="127.0.0.1", port=args.redis_port)
    n = args.messages
    runs = {"redis-py direct": [], "redrive.Worker": [], "redrive.AsyncWorker": []}
    # Interleaved rounds, medians: the machine is shared, its load moves.
    for rnd in range(args.rounds):
        runs["redis-py direct"].append(direct(r, n, args.batch, args.timeout, rnd))
        runs["redrive.Worker"].append(worker_sync(args.target, r, n, args.batch, args.timeout,
                                                  rnd))
        runs["redrive.AsyncWorker"].append(worker_async(args.target, r, n, args.batch,
                                                        args.timeout, rnd))
        r.flushdb()
    print("%d messages of %d bytes per run, %d rounds, batch/max_in_flight %d, python %s, "
          "grpcio %s, redis-py %s" % (n, len(PAYLOAD), args.rounds, args.batch,
                                      sys.version.split()[0], __import__("grpc").__version__,
                                      redis.__version__))
    base = n / statistics.median(runs["redis-py direct"])
    for name, took in runs.items():
        rate = n / statistics.median(took)
        print("%-20s median %8.0f msg/s (runs: %s)  ratio %.2f" % (
            name, rate, " ".join("%.0f" % (n / t) for t in took), rate / base))
    return 0


if __name__ == "__main__":
    sys.exit(main())
