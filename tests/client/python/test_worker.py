"""The redrive Python package end to end: Publisher, Worker and AsyncWorker
against the real redrived and a real redis-server (conftest.py). Each
worker test runs for the threaded Worker ("sync") and the AsyncWorker
("async")."""

import collections
import signal
import subprocess
import sys
import time

import grpc
import pytest

import redrive
from redrive.v1 import admin_pb2, admin_pb2_grpc

from conftest import WAIT, Daemon, free_port, wait_for

ADMIN_ARGS = ("--admin-auth=disabled",)


def publish_all(target, channel, payloads, batch=250):
    ids = []
    with redrive.Publisher(target) as pub:
        for i in range(0, len(payloads), batch):
            ids += pub.publish_batch(channel, payloads[i:i + batch])
    assert len(ids) == len(payloads)
    return ids


def pending(redis_client, stream, group):
    return redis_client("XPENDING", stream, group)[0]


def dead_letters(daemon, channel, handler_id):
    stub = admin_pb2_grpc.AdminStub(daemon.channel)
    resp = stub.ListDeadLetters(admin_pb2.ListDeadLettersRequest(
        handler=admin_pb2.HandlerRef(channel=channel, handler_id=handler_id), page_size=1000,
        preview_bytes=1024))
    return list(resp.dead_letters)


class FixedPortDaemons:
    """redrived on one loopback port over the test's Redis, killed with
    SIGKILL and started again on the same port (sweeping abandoned entries
    every 500 ms, Admin open)."""

    def __init__(self, redis):
        port = free_port()
        self.target = "127.0.0.1:%d" % port
        self._url = "redis://127.0.0.1:%d/0" % redis.port
        self._args = ("--grpc-listen=" + self.target, "--sweep-interval-ms=500", *ADMIN_ARGS)
        self._all = []

    def start(self):
        self._all.append(Daemon(self._url, self._args))
        return self._all[-1]

    def kill_and_restart(self):
        self._all[-1].proc.send_signal(signal.SIGKILL)
        self._all[-1].proc.wait()
        return self.start()

    def stop(self):
        for d in self._all:
            d.stop()


def test_publisher_fields_reach_the_handler_and_errors_carry_the_code(daemon, harnesses):
    h = harnesses("sync", daemon.address)
    seen = []
    h.handle("py.client.fields", "fields", lambda m: seen.append(m) and 0)
    h.start()
    tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    with redrive.Publisher(daemon.address) as pub:
        entry = pub.publish("py.client.fields", b'{"id":7}', headers={"tenant": "acme"},
                            content_type="application/json", correlation_id="corr-7",
                            traceparent=tp, tracestate="k=v")
        batch = pub.publish_batch("py.client.fields", [
            redrive.Outgoing(b"b1", headers=[("a", "1"), ("a", "2")]), "b2"])
        with pytest.raises(redrive.RedriveError) as err:
            pub.publish("bad channel!", b"x")
        assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert wait_for(lambda: len(seen) == 3, WAIT)
    by_payload = {m.payload: m for m in seen}
    m = by_payload[b'{"id":7}']
    assert (m.entry_id, m.original_entry_id, m.attempt, m.previous_error) == (entry, entry, 1, "")
    assert m.headers == [("tenant", "acme")] and m.header("tenant") == "acme"
    assert (m.content_type, m.correlation_id, m.trace) == ("application/json", "corr-7",
                                                          (tp, "k=v"))
    assert m.max_attempts == 6  # the default policy: 5 retries
    assert by_payload[b"b1"].headers == [("a", "1"), ("a", "2")]
    assert [by_payload[b"b1"].entry_id, by_payload[b"b2"].entry_id] == batch


def test_thousand_messages_are_delivered_exactly_once(kind, redis, daemon, harnesses):
    channel = "py.client.once." + kind
    h = harnesses(kind, daemon.address)
    h.handle(channel, "once", max_in_flight=64)
    h.start()
    payloads = [b"m-%04d" % i for i in range(1000)]
    publish_all(daemon.address, channel, payloads)
    assert wait_for(lambda: h.calls.done_count() >= 1000, WAIT), h.calls.done_count()
    names = h.registered(channel, "once").names
    r = redis.client()
    assert wait_for(lambda: pending(r, names.stream, names.group) == 0, WAIT)
    time.sleep(0.3)  # a late duplicate would show up here
    counts = collections.Counter(h.calls.done)
    assert set(counts) == set(payloads)
    assert sorted(counts.values()) == [1] * 1000
    assert h.calls.count() == 1000
    assert r("XLEN", names.dlq_stream) == 0
    r.close()


def test_failing_handler_dead_letters_with_its_error_text(kind, redis, daemon_factory,
                                                         harnesses):
    d = daemon_factory(*ADMIN_ARGS)
    channel = "py.client.fail." + kind
    h = harnesses(kind, d.address)

    def body(msg):
        if msg.payload.startswith(b"bad"):
            raise ValueError("order %s rejected on attempt %d" % (msg.payload.decode(),
                                                                 msg.attempt))
        if msg.payload == b"term":
            raise redrive.Terminate("not worth retrying", error_code="E_TERM")
        return 0
    h.handle(channel, "fail", body, policy=redrive.RetryPolicy(
        max_retries=2, initial_backoff_ms=20, max_backoff_ms=40, jitter=0.0))
    h.start()
    publish_all(d.address, channel, [b"bad-1", b"good", b"bad-2", b"term"])
    assert wait_for(lambda: len(dead_letters(d, channel, "fail")) == 3, WAIT)
    letters = {dl.payload: dl for dl in dead_letters(d, channel, "fail")}
    assert set(letters) == {b"bad-1", b"bad-2", b"term"}
    for p in (b"bad-1", b"bad-2"):
        dl = letters[p]
        assert (dl.reason, dl.attempts, dl.last_error, dl.last_error_code) == (
            "max_retries", 3, "order %s rejected on attempt 3" % p.decode(), "ValueError")
        assert [a.error for a in dl.history] == [
            "order %s rejected on attempt %d" % (p.decode(), n) for n in (1, 2, 3)]
    assert (letters[b"term"].attempts, letters[b"term"].last_error,
            letters[b"term"].last_error_code) == (1, "not worth retrying", "E_TERM")
    # The handler saw the attempt number, the limit and the previous error.
    bad1 = sorted(c for c in h.calls.calls if c[0] == b"bad-1")
    assert bad1 == [(b"bad-1", 1, 3, ""),
                    (b"bad-1", 2, 3, "order bad-1 rejected on attempt 1"),
                    (b"bad-1", 3, 3, "order bad-1 rejected on attempt 2")]
    assert h.calls.done == [b"good"]


def test_retry_exception_sets_the_delay(redis, daemon, harnesses):
    channel = "py.client.delay"
    h = harnesses("sync", daemon.address)
    times = []

    def body(msg):
        times.append(time.monotonic())
        if msg.attempt == 1:
            raise redrive.Retry("later", delay_ms=700)
        return 0
    h.handle(channel, "retry", body, policy=redrive.RetryPolicy(
        max_retries=3, initial_backoff_ms=0, jitter=0.0))
    h.start()
    publish_all(daemon.address, channel, [b"r"])
    assert wait_for(lambda: h.calls.done == [b"r"], 5), h.calls.calls
    assert [c[1:] for c in h.calls.calls] == [(1, 4, ""), (2, 4, "later")]
    assert times[1] - times[0] >= 0.7


@pytest.mark.parametrize("limit", [4, 32])
def test_concurrency_limit_holds_and_is_reached(kind, limit, daemon, harnesses):
    channel = "py.client.limit.%s.%d" % (kind, limit)
    h = harnesses(kind, daemon.address)
    h.handle(channel, "limit", lambda m: 0.15, max_in_flight=limit)
    h.start()
    publish_all(daemon.address, channel, [b"c%d" % i for i in range(3 * limit)])
    assert wait_for(lambda: h.calls.done_count() == 3 * limit, WAIT)
    assert h.calls.max_running == limit


def test_handler_running_three_leases_is_extended_not_redelivered(redis, daemon, harnesses):
    # Both workers at once (the test waits 3 leases once).
    hs = {}
    for kind in ("sync", "async"):
        hs[kind] = harnesses(kind, daemon.address)
        hs[kind].handle("py.client.lease." + kind, "lease", lambda m: 3.0, lease_ms=1000)
        hs[kind].start()
    for kind in hs:
        publish_all(daemon.address, "py.client.lease." + kind, [b"slow-1", b"slow-2"])
    for kind, h in hs.items():
        assert wait_for(lambda: h.calls.done_count() == 2, WAIT), kind
    time.sleep(1.2)  # past one more lease: a redelivery would show
    r = redis.client()
    for kind, h in hs.items():
        assert sorted(c[:2] for c in h.calls.calls) == [(b"slow-1", 1), (b"slow-2", 1)], kind
        names = h.registered("py.client.lease." + kind, "lease").names
        assert wait_for(lambda: pending(r, names.stream, names.group) == 0, WAIT), kind
        assert r("XLEN", names.retry_stream) == 0, kind
    r.close()


def test_daemon_kill9_and_restart_reconnects_and_settles_everything(kind, redis, harnesses):
    daemons = FixedPortDaemons(redis)
    d1 = daemons.start()
    try:
        channel = "py.client.kill." + kind
        h = harnesses(kind, daemons.target, reconnect_initial_ms=50, reconnect_max_ms=500)
        h.handle(channel, "kill", lambda m: 0.002, max_in_flight=16, lease_ms=1000)
        h.start()
        payloads = [b"k-%03d" % i for i in range(300)]
        publish_all(d1.address, channel, payloads)
        assert wait_for(lambda: h.calls.done_count() >= 60, WAIT)
        d2 = daemons.kill_and_restart()
        t_ready = time.monotonic()
        assert wait_for(lambda: h.stats()["%s/kill" % channel] >= 2, WAIT), h.stats()
        print("reconnected %.2fs after the new daemon was ready" % (time.monotonic() - t_ready))
        r = redis.client()

        def settled():
            done = set(h.calls.done)
            dead = {dl.payload for dl in dead_letters(d2, channel, "kill")}
            return done | dead == set(payloads) and not done & dead
        assert wait_for(settled, WAIT)
        names = h.registered(channel, "kill").names
        assert wait_for(lambda: pending(r, names.stream, names.group) == 0, WAIT)
        assert wait_for(lambda: pending(r, names.retry_stream, names.retry_group) == 0, WAIT)
        r.close()
        counts = collections.Counter(h.calls.done)
        dups = sum(c - 1 for c in counts.values())
        print("kill -9 (%s): %d messages, %d handled twice (in flight at the kill), "
              "%d dead-lettered, %d registrations" % (
                  kind, len(payloads), dups, len(dead_letters(d2, channel, "kill")),
                  h.stats()["%s/kill" % channel]))
    finally:
        daemons.stop()


def test_graceful_stop_finishes_in_flight_work(kind, redis, daemon, harnesses):
    channel = "py.client.stop." + kind
    h = harnesses(kind, daemon.address)
    h.handle(channel, "stop", lambda m: 1.0, max_in_flight=4)
    h.start()
    publish_all(daemon.address, channel, [b"s%d" % i for i in range(8)])
    assert wait_for(lambda: h.calls.count() == 4, WAIT)
    names = h.registered(channel, "stop").names
    t0 = time.monotonic()
    h.stop(grace=10.0)
    took = time.monotonic() - t0
    assert h.calls.done_count() == 4 and h.calls.count() == 4  # no new work taken
    assert took < 5.0
    # Their ACKs were sent: the daemon XACKs them (in a batch, soon), where
    # unsettled deliveries of a closed stream move to the retry stream.
    r = redis.client()
    assert wait_for(lambda: pending(r, names.stream, names.group) == 0, WAIT)
    assert r("XLEN", names.retry_stream) == 0
    r.close()


def test_daemon_drain_lets_running_handlers_finish(kind, redis, daemon_factory, harnesses):
    d = daemon_factory("--shutdown-grace-ms=5000")
    channel = "py.client.drain." + kind
    h = harnesses(kind, d.address)
    h.handle(channel, "drain", lambda m: 1.0, max_in_flight=2)
    h.start()
    publish_all(d.address, channel, [b"d1", b"d2"])
    assert wait_for(lambda: h.calls.count() == 2, WAIT)
    names = h.registered(channel, "drain").names
    assert d.terminate() == 0  # SIGTERM: drain, then exit once the streams closed
    assert h.calls.done_count() == 2
    r = redis.client()
    assert wait_for(lambda: pending(r, names.stream, names.group) == 0, WAIT)
    assert r("XLEN", names.retry_stream) == 0
    r.close()


def test_late_verbs_of_a_dead_stream_are_dropped_not_sent_on_the_new_one(kind, redis,
                                                                        harnesses):
    # Four slow "old" handlers are running when the daemon is killed; the new
    # daemon numbers its deliveries from 1 again and hands out four failing
    # "new" messages first. Had the old handlers' ACKs (ids 1..4 of the dead
    # daemon) gone out on the new stream, they would have ACKed the new
    # messages, which then never reach the DLQ.
    daemons = FixedPortDaemons(redis)
    d1 = daemons.start()
    try:
        channel = "py.client.late." + kind
        h = harnesses(kind, daemons.target, reconnect_initial_ms=50, reconnect_max_ms=200)

        def body(msg):
            if msg.payload.startswith(b"new"):
                raise ValueError("new fails")
            return 1.5
        h.handle(channel, "late", body, max_in_flight=4, lease_ms=1000,
                 policy=redrive.RetryPolicy(max_retries=1, initial_backoff_ms=50, jitter=0.0))
        h.start()
        publish_all(d1.address, channel, [b"old-%d" % i for i in range(4)])
        assert wait_for(lambda: h.calls.count() == 4, WAIT)
        d2 = daemons.kill_and_restart()
        assert wait_for(lambda: h.stats()["%s/late" % channel] >= 2, WAIT), h.stats()
        publish_all(d2.address, channel, [b"new-%d" % i for i in range(4)])
        assert wait_for(lambda: len(dead_letters(d2, channel, "late")) == 4, WAIT)
        letters = dead_letters(d2, channel, "late")
        assert sorted((dl.payload, dl.attempts, dl.last_error) for dl in letters) == [
            (b"new-%d" % i, 2, "new fails") for i in range(4)]
        # The old ones were handed out again by the new daemon and ACKed.
        assert wait_for(lambda: sorted(set(h.calls.done)) == [b"old-%d" % i for i in range(4)],
                        WAIT)
    finally:
        daemons.stop()


SIGTERM_SCRIPT = r"""
import asyncio, sys, time
import redrive
kind, target, channel = sys.argv[1:4]
if kind == "sync":
    worker = redrive.Worker(target)
    def slow(msg):
        print("started", msg.payload.decode(), flush=True)
        time.sleep(1.0)
        print("finished", msg.payload.decode(), flush=True)
    worker.handle(channel, "sig", slow, start="backlog")
    worker.run(grace=10)
else:
    async def main():
        worker = redrive.AsyncWorker(target)
        async def slow(msg):
            print("started", msg.payload.decode(), flush=True)
            await asyncio.sleep(1.0)
            print("finished", msg.payload.decode(), flush=True)
        worker.handle(channel, "sig", slow, start="backlog")
        worker.add_signal_handlers(grace=10)
        await worker.run()
    asyncio.run(main())
print("stopped", flush=True)
"""


def test_sigterm_stops_the_worker_gracefully(kind, redis, daemon):
    channel = "py.client.sigterm." + kind
    publish_all(daemon.address, channel, [b"one"])
    proc = subprocess.Popen([sys.executable, "-c", SIGTERM_SCRIPT, kind, daemon.address, channel],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout.readline() == b"started one\n"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert (proc.returncode, out) == (0, b"finished one\nstopped\n"), err.decode()
    r = redis.client()
    assert wait_for(lambda: pending(r, channel, "sig") == 0, WAIT)
    assert r("XLEN", channel + ".sig.retry") == 0
    r.close()
