"""redrived on a Sentinel-managed Redis (--redis-url=redis-sentinel://...):
1 primary, 1 replica and 3 sentinels (Debian's redis-sentinel) on loopback,
started and stopped here. A SIGKILL of the primary under Publish/Subscribe
load (health NOT_SERVING then SERVING, no acknowledged Publish lost; lost,
duplicates and time to recover printed), and a manual SENTINEL FAILOVER
(the daemon follows +switch-master to the new primary).

Run by ctest as `sentinel_e2e_test`; conftest.py and the stubs come from
tests/e2e/python and the build (PYTHONPATH)."""

import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request

import grpc
import pytest

import health_pb2
import health_pb2_grpc
from redrive.v1 import broker_pb2, broker_pb2_grpc

from conftest import REDIS_SERVER, Daemon, Resp, free_port, wait_for

SENTINEL = os.environ.get("REDRIVE_REDIS_SENTINEL", "")
if not os.path.isfile(SENTINEL):
    SENTINEL = shutil.which("redis-sentinel")
MASTER = "mymaster"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def command(port, *args):
    c = Resp(port)
    try:
        return c(*args)
    finally:
        c.close()


def answers(port, *args):
    try:
        return command(port, *args)
    except (OSError, RuntimeError):
        return None


def role(port):
    reply = answers(port, "ROLE")
    return reply[0].decode() if reply else None


class Topology:
    """redis-server primary + replica, three redis-sentinel (quorum 2)."""

    def __init__(self):
        assert SENTINEL, ("redis-sentinel not found: install Debian's redis-sentinel "
                          "(scripts/deps.sh)")
        self.dir = tempfile.mkdtemp(prefix="redrive-sentinel-")
        self.procs = {}
        self.primary = free_port()
        self.replica = free_port()
        self.sentinels = [free_port() for _ in range(3)]
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _redis(self, port, *extra):
        self.procs[port] = subprocess.Popen(
            [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--dir", self.dir,
             "--dbfilename", "dump-%d.rdb" % port, "--save", "", "--appendonly", "no",
             "--repl-diskless-sync-delay", "0",
             "--logfile", os.path.join(self.dir, "redis-%d.log" % port), *extra])

    @staticmethod
    def _sentinel_id(port):
        return "%040x" % port

    def _sentinel(self, port):
        # The replica and the other sentinels are declared (known-replica,
        # known-sentinel, fixed ids) rather than discovered, which takes
        # several 2 s hello rounds.
        lines = ["port %d" % port, "bind 127.0.0.1", "dir " + self.dir,
                 "logfile " + os.path.join(self.dir, "sentinel-%d.log" % port),
                 "sentinel myid " + self._sentinel_id(port),
                 "sentinel monitor %s 127.0.0.1 %d 2" % (MASTER, self.primary),
                 "sentinel down-after-milliseconds %s 1000" % MASTER,
                 "sentinel failover-timeout %s 5000" % MASTER,
                 "sentinel parallel-syncs %s 1" % MASTER,
                 "sentinel known-replica %s 127.0.0.1 %d" % (MASTER, self.replica)]
        lines += ["sentinel known-sentinel %s 127.0.0.1 %d %s" % (MASTER, other,
                                                                  self._sentinel_id(other))
                  for other in self.sentinels if other != port]
        conf = os.path.join(self.dir, "sentinel-%d.conf" % port)
        with open(conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.procs[port] = subprocess.Popen([SENTINEL, conf])

    def _start(self):
        self._redis(self.primary)
        assert wait_for(lambda: answers(self.primary, "PING") == "PONG"), "primary down"
        self._redis(self.replica, "--replicaof", "127.0.0.1", str(self.primary))
        assert wait_for(lambda: b"master_link_status:up" in (
            answers(self.replica, "INFO", "replication") or b"")), "replica never synced"
        for port in self.sentinels:
            self._sentinel(port)
        # A failover needs each sentinel to know the replica and the other two
        # (they meet through the primary's hello channel, every 2 s).

        def converged():
            for port in self.sentinels:
                replicas = answers(port, "SENTINEL", "REPLICAS", MASTER)
                others = answers(port, "SENTINEL", "SENTINELS", MASTER)
                if not replicas or others is None or len(others) != 2:
                    return False
            return True
        assert wait_for(converged, timeout=20), "sentinels did not converge: " + self.logs()

    def url(self):
        return "redis-sentinel://%s/%s" % (
            ",".join("127.0.0.1:%d" % p for p in self.sentinels), MASTER)

    def kill(self, port):
        self.procs[port].kill()
        self.procs[port].wait()

    def logs(self):
        out = []
        for name in sorted(os.listdir(self.dir)):
            if name.endswith(".log"):
                with open(os.path.join(self.dir, name), errors="replace") as f:
                    out.append("== %s\n%s" % (name, f.read()[-3000:]))
        return "\n".join(out)

    def stop(self):
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def topology():
    t = Topology()
    yield t
    t.stop()


@pytest.fixture
def daemon_on(topology):
    daemons = []

    def make(*extra):
        d = Daemon(topology.url(), extra)
        daemons.append(d)
        return d
    yield make
    for d in daemons:
        d.stop()


def health(daemon):
    try:
        return health_pb2_grpc.HealthStub(daemon.channel).Check(
            health_pb2.HealthCheckRequest(service="readiness"), timeout=1).status
    except grpc.RpcError:
        return None


def metric(daemon, name):
    with urllib.request.urlopen("http://%s/metrics" % daemon.info["metrics"], timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return None


class AckingConsumer:
    """Subscribes and ACKs every delivery at once; subscribes again when the
    stream ends (bounded by `deadline`). Records every payload delivered."""

    def __init__(self, channel, register, deadline):
        self._channel = channel
        self._register = register
        self._deadline = deadline
        self.lock = threading.Lock()
        self.payloads = []  # every delivery, duplicates included
        self.streams = 0
        self._stop = threading.Event()
        self._call = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        stub = broker_pb2_grpc.BrokerStub(self._channel)
        while not self._stop.is_set() and time.monotonic() < self._deadline:
            requests = queue.Queue()
            requests.put(broker_pb2.SubscribeRequest(register=self._register))

            def iterate():
                while True:
                    item = requests.get()
                    if item is None:
                        return
                    yield item
            self._call = stub.Subscribe(iterate())
            self.streams += 1
            try:
                for resp in self._call:
                    if resp.WhichOneof("kind") != "deliveries":
                        continue
                    batch = resp.deliveries.deliveries
                    with self.lock:
                        self.payloads.extend(d.payload for d in batch)
                    requests.put(broker_pb2.SubscribeRequest(verbs=broker_pb2.Verbs(verbs=[
                        broker_pb2.Verb(delivery_id=d.delivery_id, ack=broker_pb2.Ack())
                        for d in batch])))
            except grpc.RpcError:
                pass
            requests.put(None)
            self._stop.wait(0.1)  # the stream ended: subscribe again

    def delivered(self):
        with self.lock:
            return list(self.payloads)

    def stop(self):
        self._stop.set()
        if self._call is not None:
            self._call.cancel()
        self._thread.join(timeout=10)


def test_primary_sigkill_under_load_loses_no_acknowledged_publish(topology, daemon_on):
    total, rate, kill_after = 3000, 500.0, 1000
    daemon = daemon_on("--redis-pool-size=2")
    assert wait_for(lambda: health(daemon) == SERVING)
    deadline = time.monotonic() + 40
    consumer = AckingConsumer(daemon.channel, broker_pb2.Register(
        channel="orders", handler_id="billing", lease_ms=2000,
        start=broker_pb2.StartPosition(kind=broker_pb2.StartPosition.START_BACKLOG)), deadline)
    try:
        # Health, polled every 20 ms from its own thread: (time, status).
        transitions = []
        polling = threading.Event()

        def poll_health():
            last = None
            while not polling.is_set():
                status = health(daemon)
                if status != last:
                    transitions.append((time.monotonic(), status))
                    last = status
                time.sleep(0.02)
        poller = threading.Thread(target=poll_health, daemon=True)
        poller.start()

        stub = broker_pb2_grpc.BrokerStub(daemon.channel)
        acknowledged = set()
        failed_attempts = 0
        killed_at = first_ok_after_kill = None
        start = time.monotonic()
        for i in range(total):
            # A steady rate; a message that failed is published again (so a
            # Publish whose reply was lost may be stored twice).
            pause = start + i / rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            if i == kill_after:
                topology.kill(topology.primary)
                killed_at = time.monotonic()
            payload = b"m-%05d" % i
            while True:
                assert time.monotonic() < deadline, "publishing did not recover: " + \
                    open(daemon.log_path).read()[-4000:] + topology.logs()
                try:
                    stub.Publish(broker_pb2.PublishRequest(
                        channel="orders", message=broker_pb2.OutgoingMessage(payload=payload)),
                        timeout=2)
                    break
                except grpc.RpcError:
                    failed_attempts += 1
                    time.sleep(0.02)
            acknowledged.add(payload)
            if killed_at is not None and first_ok_after_kill is None:
                first_ok_after_kill = time.monotonic()
        assert len(acknowledged) == total

        def all_delivered():
            return acknowledged <= set(consumer.delivered())
        all_in = wait_for(all_delivered, timeout=max(1.0, deadline - time.monotonic()))
        polling.set()
        poller.join(timeout=5)
        delivered = consumer.delivered()
        lost = len(acknowledged - set(delivered))
        duplicates = len(delivered) - len(set(delivered))
        after_kill = [(t - killed_at, s) for t, s in transitions if t >= killed_at]
        not_serving_at = next((t for t, s in after_kill if s == NOT_SERVING), None)
        serving_again_at = next(
            (t for t, s in after_kill if s == SERVING and not_serving_at is not None
             and t > not_serving_at), None)
        publish_recovery = first_ok_after_kill - killed_at
        print("\nsentinel SIGKILL: published %d (acknowledged %d, %d failed attempts), "
              "delivered %d, lost %d, duplicates %d; after the kill: NOT_SERVING at %s s, "
              "SERVING again at %s s, first acknowledged Publish at %.2f s; "
              "Subscribe streams opened %d"
              % (total, len(acknowledged), failed_attempts, len(delivered), lost, duplicates,
                 None if not_serving_at is None else "%.2f" % not_serving_at,
                 None if serving_again_at is None else "%.2f" % serving_again_at,
                 publish_recovery, consumer.streams))
        assert all_in and lost == 0, "lost %d acknowledged messages" % lost
        assert not_serving_at is not None, "health never went NOT_SERVING: %r" % after_kill
        assert serving_again_at is not None, "health never came back: %r" % after_kill
        assert serving_again_at < 30 and publish_recovery < 30
        assert role(topology.replica) == "master"
        assert daemon.proc.poll() is None, "redrived exited"
        assert health(daemon) == SERVING
    finally:
        consumer.stop()


def test_manual_failover_follows_switch_master(topology, daemon_on):
    # One pooled connection: the Publish after the failover uses the very
    # connection the one before did.
    daemon = daemon_on("--metrics-listen=127.0.0.1:0", "--redis-pool-size=1")
    assert wait_for(lambda: health(daemon) == SERVING)
    stub = broker_pb2_grpc.BrokerStub(daemon.channel)

    def publish(payload):
        return stub.Publish(broker_pb2.PublishRequest(
            channel="orders", message=broker_pb2.OutgoingMessage(payload=payload)), timeout=2)
    before = publish(b"before")
    assert metric(daemon, "redrive_redis_primary_changes_total") == 0
    assert command(topology.sentinels[0], "SENTINEL", "FAILOVER", MASTER) == "OK"
    assert wait_for(lambda: role(topology.replica) == "master", timeout=20), topology.logs()
    # The old primary answers as a master until Sentinel turns it into a
    # replica (up to 10 s later): the daemon must not wait for that.
    assert wait_for(lambda: metric(daemon, "redrive_redis_primary_changes_total") == 1)

    def publish_after():
        try:
            return publish(b"after")
        except grpc.RpcError:
            return None
    after = wait_for(publish_after, timeout=20)
    assert after, open(daemon.log_path).read()[-4000:]
    # Written on the new primary (the old one is a replica now, read-only).
    entries = command(topology.replica, "XRANGE", "orders", after.entry_id, after.entry_id)
    assert len(entries) == 1 and entries[0][0].decode() == after.entry_id
    assert [int(x) for x in after.entry_id.split("-")] > [
        int(x) for x in before.entry_id.split("-")]
    assert b"role:master" in command(topology.replica, "INFO", "replication")
    assert wait_for(lambda: health(daemon) == SERVING)
    assert daemon.proc.poll() is None
    assert daemon.terminate() == 0, open(daemon.log_path).read()[-4000:]
