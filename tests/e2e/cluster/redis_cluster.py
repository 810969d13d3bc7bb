"""A real Redis Cluster on loopback for the cluster end-to-end suite: six
`redis-server --cluster-enabled yes` (conftest.RedisServer, each in its own
temp dir, no persistence) joined by `redis-cli --cluster create
--cluster-replicas 1`, an inspection client that follows MOVED and ASK, the
topology changes the tests make (moving a slot, CLUSTER FAILOVER, SIGKILL),
and the load tools: a Publish loop at a steady rate and a health watcher.

Every wait is on a condition and bounded; nothing here sleeps a fixed time
except the pacing of the Publish loop, the 20 ms between polls and the
states a slot move is held in on purpose (move_slot's `hold`)."""

import os
import shutil
import subprocess
import threading
import time

import grpc

from redrive.v1 import broker_pb2, broker_pb2_grpc

from conftest import RedisServer, Resp, free_port, wait_for
from test_sentinel import answers, command, health, role

REDIS_CLI = os.environ.get("REDRIVE_REDIS_CLI", "") or shutil.which("redis-cli")
NODES = 6
SLOTS = 16384
POLL = 0.02  # seconds between two looks at the cluster


def slot_owners(port):
    """{slot range (first, last): (master port, [replica ports])} as `port`
    sees it in CLUSTER SLOTS; None when it does not answer."""
    reply = answers(port, "CLUSTER", "SLOTS")
    if reply is None:
        return None
    return {(r[0], r[1]): (int(r[2][1]), [int(n[1]) for n in r[3:]]) for r in reply}


class RedisCluster:
    """3 masters + 3 replicas. `ports` lists every node started; `killed`
    those SIGKILLed since."""

    def __init__(self):
        assert REDIS_CLI, "redis-cli not found: install Debian's redis-tools (scripts/deps.sh)"
        self.nodes = {}
        self.killed = set()
        try:
            for _ in range(NODES):
                node = RedisServer(extra_args=[
                    "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                    "--cluster-node-timeout", "1000",
                    # The bus port is picked too: port + 10000 may be taken.
                    "--cluster-port", str(free_port()),
                    # A replica syncs at once and its offset moves within a
                    # second (CLUSTER SLOTS lists no replica at offset 0).
                    "--repl-diskless-sync-delay", "0", "--repl-ping-replica-period", "1"])
                self.nodes[node.port] = node
            self._create()
        except BaseException:
            self.close()
            raise

    @property
    def ports(self):
        return sorted(self.nodes)

    def live_ports(self):
        return [p for p in self.ports if p not in self.killed]

    def url(self):
        return "redis-cluster://" + ",".join("127.0.0.1:%d" % p for p in self.ports)

    def _create(self):
        argv = [REDIS_CLI, "--cluster", "create", *("127.0.0.1:%d" % p for p in self.ports),
                "--cluster-replicas", "1", "--cluster-yes"]
        done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=60, check=False)
        assert done.returncode == 0, "%s failed:\n%s" % (" ".join(argv), done.stdout.decode())

        def every_master_has_its_replica():
            views = [slot_owners(p) for p in self.ports]
            return all(v and sum(b - a + 1 for a, b in v) == SLOTS and
                       all(len(replicas) == 1 for _, replicas in v.values()) for v in views)
        self.wait_healthy()
        assert wait_for(every_master_has_its_replica, timeout=30), \
            "the replicas did not appear in CLUSTER SLOTS:\n" + self.logs()

    def wait_healthy(self, timeout=30):
        """Every live node says cluster_state:ok, covers every slot with a
        live master, and all agree on the owners."""
        def healthy():
            views = []
            for port in self.live_ports():
                info = answers(port, "CLUSTER", "INFO")
                if info is None or b"cluster_state:ok" not in info:
                    return False
                view = slot_owners(port)
                if view is None or sum(b - a + 1 for a, b in view) != SLOTS:
                    return False
                owners = {r: m for r, (m, _) in view.items()}
                if any(m in self.killed for m in owners.values()):
                    return False
                views.append(owners)
            return all(v == views[0] for v in views)
        assert wait_for(healthy, timeout=timeout), "cluster not healthy:\n" + self.logs()

    def keyslot(self, key):
        return command(self.live_ports()[0], "CLUSTER", "KEYSLOT", key)

    def masters(self):
        """The live masters' ports, sorted."""
        view = slot_owners(self.live_ports()[0])
        return sorted({m for m, _ in view.values()})

    def master_of(self, slot):
        for (first, last), (master, _) in slot_owners(self.live_ports()[0]).items():
            if first <= slot <= last:
                return master
        raise AssertionError("slot %d has no master" % slot)

    def replica_of(self, master):
        """Its replica, once CLUSTER SLOTS lists it (a demoted master is
        listed after its first sync)."""
        def listed():
            for m, replicas in (slot_owners(self.live_ports()[0]) or {}).values():
                if m == master and replicas:
                    return replicas[0]
            return None
        replica = wait_for(listed, timeout=20)
        assert replica, "127.0.0.1:%d has no replica:\n%s" % (master, self.logs())
        return replica

    def keys_by_node(self):
        """{master port: sorted keys it holds} over the live masters."""
        return {m: sorted(k.decode() for k in command(m, "KEYS", "*"))
                for m in self.masters()}

    def move_slot(self, slot, to_port, hold=0.0):
        """CLUSTER SETSLOT IMPORTING on the target, MIGRATING on the source,
        MIGRATE of every key of the slot (batches of 100), then SETSLOT NODE
        on the target, the source and the other masters. `hold` seconds are
        spent in each of the two migration states (keys still on the source,
        then keys on the target and the source answering ASK), so that the
        traffic of a test meets both."""
        source = self.master_of(slot)
        assert source != to_port, "slot %d is already on %d" % (slot, to_port)
        source_id = command(source, "CLUSTER", "MYID").decode()
        target_id = command(to_port, "CLUSTER", "MYID").decode()
        assert command(to_port, "CLUSTER", "SETSLOT", slot, "IMPORTING", source_id) == "OK"
        assert command(source, "CLUSTER", "SETSLOT", slot, "MIGRATING", target_id) == "OK"
        time.sleep(hold)
        for _ in range(1000):
            keys = command(source, "CLUSTER", "GETKEYSINSLOT", slot, 100)
            if not keys:
                break
            assert command(source, "MIGRATE", "127.0.0.1", to_port, "", 0, 5000,
                           "KEYS", *keys) == "OK"
        assert not command(source, "CLUSTER", "GETKEYSINSLOT", slot, 1), "keys left"
        time.sleep(hold)
        order = [to_port, source] + [m for m in self.masters() if m not in (to_port, source)]
        for port in order:
            assert command(port, "CLUSTER", "SETSLOT", slot, "NODE", target_id) == "OK"
        self.wait_healthy()

    def stat(self, port, section, name):
        """A counter of INFO `section` (commandstats, errorstats):
        `calls=` or `count=` of the line `name`, 0 when absent."""
        for line in command(port, "INFO", section).decode().splitlines():
            if line.startswith(name + ":"):
                return int(line.split(":", 1)[1].split(",")[0].split("=")[1])
        return 0

    def failover(self, replica):
        """CLUSTER FAILOVER on a replica: it returns at once, the switch
        follows (see wait_promoted)."""
        assert command(replica, "CLUSTER", "FAILOVER") == "OK"

    def wait_promoted(self, port, timeout=20):
        assert wait_for(lambda: role(port) == "master", timeout=timeout), \
            "127.0.0.1:%d was not promoted:\n%s" % (port, self.logs())
        self.wait_healthy()

    def kill(self, port):
        self.nodes[port].kill()
        self.killed.add(port)

    def logs(self):
        out = []
        for port, node in sorted(self.nodes.items()):
            try:
                with open(os.path.join(node.dir, "redis.log"), errors="replace") as f:
                    out.append("== 127.0.0.1:%d\n%s" % (port, f.read()[-2000:]))
            except OSError:
                pass
        return "\n".join(out)

    def close(self):
        for node in self.nodes.values():
            node.stop()


class ClusterClient:
    """Inspection client: a keyed command goes to the node that owned its
    slot last time (any master at first) and follows MOVED (the owner is
    remembered) and ASK (ASKING, then the command, on the target); TRYAGAIN
    and CLUSTERDOWN are sent again after 50 ms. Bounded: 5 redirects, 40
    retries. One connection per node."""

    def __init__(self, cluster):
        self.cluster = cluster
        self.conns = {}
        self.owner = {}  # slot -> port, learnt from MOVED

    def _conn(self, port):
        if port not in self.conns:
            self.conns[port] = Resp(port)
        return self.conns[port]

    def _drop(self, port):
        conn = self.conns.pop(port, None)
        if conn is not None:
            conn.close()

    def __call__(self, *args):
        cmd = str(args[0]).upper()
        key = args[2] if cmd in ("XINFO", "XGROUP", "OBJECT") else args[1]
        slot = self.cluster.keyslot(key)
        port = self.owner.get(slot) or self.cluster.masters()[0]
        asking = False
        redirects = retries = 0
        while True:
            try:
                conn = self._conn(port)
                if asking:
                    assert conn("ASKING") == "OK"
                return conn(*args)
            except OSError:
                self._drop(port)
                error = "connection to 127.0.0.1:%d failed" % port
                port, asking = self.cluster.master_of(slot), False
                retries += 1
            except RuntimeError as err:
                error = str(err)
                kind = error.split(" ", 1)[0]
                if kind not in ("MOVED", "ASK", "TRYAGAIN", "CLUSTERDOWN"):
                    raise
                asking = kind == "ASK"
                if kind in ("MOVED", "ASK"):
                    redirects += 1
                    port = int(error.rsplit(":", 1)[1])
                    if kind == "MOVED":
                        self.owner[slot] = port
                else:
                    retries += 1
            if redirects > 5 or retries > 40:
                raise RuntimeError("%r: gave up after %d redirects, %d retries: %s" %
                                   (args, redirects, retries, error))
            if not error.startswith(("MOVED", "ASK")):
                time.sleep(0.05)

    def close(self):
        for port in list(self.conns):
            self._drop(port)


class HealthWatch:
    """Polls the daemon's `readiness` health every 20 ms from its own thread
    and records every change: [(monotonic time, status)]."""

    def __init__(self, daemon):
        self.changes = []
        self._daemon = daemon
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        last = object()
        while not self._stop.is_set():
            status = health(self._daemon)
            if status != last:
                self.changes.append((time.monotonic(), status))
                last = status
            self._stop.wait(POLL)

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=5)

    def since(self, t0):
        """The changes at or after t0, as (seconds after t0, status)."""
        return [(t - t0, s) for t, s in self.changes if t >= t0]


class SteadyPublisher:
    """Publishes `payloads` to `channel` one after the other at `rate` per
    second. A Publish that fails is sent again (so a message whose reply was
    lost may be stored twice) until `deadline`. `event(i)`, when given, runs
    before payload i is published. Records what was acknowledged, the
    failed attempts, and each message's latency (first attempt to OK)."""

    def __init__(self, daemon, channel, rate, deadline):
        self.stub = broker_pb2_grpc.BrokerStub(daemon.channel)
        self.daemon = daemon
        self.channel = channel
        self.rate = rate
        self.deadline = deadline
        self.acknowledged = []
        self.failed_attempts = 0
        self.latencies = []  # (monotonic time of the first attempt, seconds to OK)

    def run(self, payloads, event=None):
        start = time.monotonic()
        for i, payload in enumerate(payloads):
            pause = start + i / self.rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            if event is not None:
                event(i)
            first = time.monotonic()
            request = broker_pb2.PublishRequest(
                channel=self.channel, message=broker_pb2.OutgoingMessage(payload=payload))
            while True:
                assert time.monotonic() < self.deadline, (
                    "Publish did not recover (message %d): %s" %
                    (i, open(self.daemon.log_path).read()[-4000:]))
                try:
                    self.stub.Publish(request, timeout=2)
                    break
                except grpc.RpcError:
                    self.failed_attempts += 1
                    time.sleep(POLL)
            self.acknowledged.append(payload)
            self.latencies.append((first, time.monotonic() - first))

    def longest_stall(self, after):
        """The longest time one message took to be acknowledged, among those
        first sent at or after `after` (seconds)."""
        return max((d for t, d in self.latencies if t >= after), default=0.0)
