"""Prometheus metrics end to end (R-G2): the real redrived with
--metrics-listen, driven over gRPC from Python; its /metrics checked by
`promtool check metrics` and read back through a real Prometheus server that
scrapes it on loopback (Debian's `prometheus` package).

Every wait is on a condition, bounded by WAIT."""

import json
import os
import re
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.parse
import urllib.request

import pytest

from conftest import free_port, wait_for
from test_retry import nack, policy, terminate
from test_subscribe import publish, subscribers  # noqa: F401 (fixture)

WAIT = 20.0
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
CH = "m.orders"


def start(daemon_factory, *extra):
    d = daemon_factory("--instance-id=m", "--reclaim-tick-ms=50", "--metrics-listen=127.0.0.1:0",
                       "--metrics-refresh-ms=100", *extra)
    assert d.info["metrics"].startswith("127.0.0.1:"), d.info
    return d


def get(url, method="GET"):
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def scrape(daemon):
    status, headers, body = get("http://%s/metrics" % daemon.info["metrics"])
    assert status == 200
    assert headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    return body


def samples(text):
    """{'name{labels}': value} of every sample line."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, value = line.rsplit(" ", 1)
        out[key] = float(value)
    return out


def labels(handler, **extra):
    parts = ['channel="%s"' % CH, 'handler="%s"' % handler]
    parts += ['%s="%s"' % (k, v) for k, v in extra.items()]
    return "{" + ",".join(parts) + "}"


def test_exposition_counts_exactly_and_passes_promtool(redis, daemon_factory, subscribers):
    d = start(daemon_factory)
    a = subscribers(d, channel=CH, handler_id="A",
                    retry_policy=policy(max_retries=1, initial_backoff_ms=50))
    publish(d, CH, [b'{"n":%d}' % i for i in range(5)])
    assert a.wait_deliveries(5, timeout=WAIT)
    first = a.snapshot()
    a.ack([x.delivery_id for x in first[:3]])
    a.verbs([nack(first[3].delivery_id, "try again"),
             terminate(first[4].delivery_id, "bad order")])
    # The NACKed one comes back once (attempt 2) and is NACKed again: max_retries.
    assert a.wait_deliveries(6, timeout=WAIT)
    a.verbs([nack(a.snapshot()[5].delivery_id, "still bad")])
    h = labels("A")

    def settled():
        s = samples(scrape(d))
        return s if s.get("redrive_dlq_depth" + h) == 2 else None
    s = wait_for(settled, WAIT)
    assert s, scrape(d)
    assert s["redrive_deliveries_total" + h] == 6
    assert s["redrive_acks_total" + h] == 3
    assert s["redrive_nacks_total" + h] == 2
    assert s["redrive_terminates_total" + h] == 1
    assert s["redrive_extends_total" + h] == 0
    assert s["redrive_retries_scheduled_total" + h] == 1
    assert s["redrive_retries_moved_total" + h] == 1
    assert s["redrive_dead_letters_total" + labels("A", reason="terminated")] == 1
    assert s["redrive_dead_letters_total" + labels("A", reason="max_retries")] == 1
    assert s["redrive_dead_letters_total" + labels("A", reason="poison")] == 0
    assert s["redrive_settle_latency_seconds_count" + h] == 6
    assert s['redrive_settle_latency_seconds_bucket{channel="%s",handler="A",le="+Inf"}' % CH] == 6
    assert s["redrive_in_flight" + h] == 0
    assert s["redrive_connected_streams" + h] == 1
    assert s["redrive_pending" + h] == 0
    assert s["redrive_consumer_lag" + h] == 0
    assert s["redrive_retry_depth" + h] == 0
    assert s["redrive_paused" + h] == 0
    assert s['redrive_publish_requests_total{rpc="Publish",code="OK"}'] == 5
    assert s['redrive_publish_latency_seconds_count{rpc="Publish"}'] == 5
    assert s["redrive_redis_up"] == 1
    assert s["redrive_redis_rtt_seconds_count"] >= 1
    assert s['redrive_grpc_streams{kind="subscribe"}'] == 1
    assert s['redrive_grpc_streams{kind="tail"}'] == 0
    [build] = [k for k in s if k.startswith("redrive_build_info{")]
    assert re.fullmatch(r'redrive_build_info\{version="\d+\.\d+\.\d+",revision="[^"]+"\}', build)

    text = scrape(d)
    check = subprocess.run([PROMTOOL, "check", "metrics"], input=text.encode(),
                           capture_output=True, timeout=60)
    assert check.returncode == 0, check.stdout.decode() + check.stderr.decode()
    # promtool prints lint problems even when it exits 0 for some of them.
    assert check.stdout.decode().strip() == "" and check.stderr.decode().strip() == "", (
        check.stdout.decode() + check.stderr.decode())

    # A Subscribe stream that ends leaves the gauge.
    a.close()
    assert wait_for(lambda: samples(scrape(d))['redrive_grpc_streams{kind="subscribe"}'] == 0,
                    WAIT)


def test_only_get_metrics_is_served(daemon_factory):
    d = start(daemon_factory)
    base = "http://%s" % d.info["metrics"]
    assert get(base + "/")[0] == 404
    assert get(base + "/metrics/x")[0] == 404
    assert get(base + "/metrics", method="POST")[0] == 405
    status, _, body = get(base + "/metrics", method="HEAD")
    assert status == 200 and body == ""
    assert get(base + "/metrics?x=1")[0] == 200


def test_bad_metrics_flags_refuse_to_start(redis):
    for flag, message in [
            ("--metrics-listen=unix:/tmp/x.sock", "--metrics-listen: must be host:port"),
            ("--metrics-listen=/tmp/x.sock", "--metrics-listen: '/tmp/x.sock' has no port"),
            ("--metrics-listen=127.0.0.1:99999", "--metrics-listen"),
            ("--metrics-refresh-ms=50", "--metrics-refresh-ms"),
            ("--metrics-max-handlers=0", "--metrics-max-handlers")]:
        r = subprocess.run([os.environ["REDRIVE_DAEMON_BINARY"], "--grpc-listen=127.0.0.1:0",
                            "--redis-url=redis://127.0.0.1:%d/0" % redis.port, flag],
                           capture_output=True, timeout=30)
        assert r.returncode == 2, (flag, r.returncode, r.stderr)
        assert message in r.stderr.decode(), (flag, r.stderr.decode())


def test_a_port_in_use_fails_the_start(redis, daemon_factory):
    d = start(daemon_factory)
    r = subprocess.run([os.environ["REDRIVE_DAEMON_BINARY"], "--grpc-listen=127.0.0.1:0",
                        "--redis-url=redis://127.0.0.1:%d/0" % redis.port,
                        "--metrics-listen=" + d.info["metrics"]],
                       capture_output=True, timeout=30)
    assert r.returncode != 0
    assert "--metrics-listen %s: cannot bind" % d.info["metrics"] in r.stderr.decode()


def test_handlers_over_the_bound_share_the_overflow_series(redis, daemon_factory, subscribers):
    d = start(daemon_factory, "--metrics-max-handlers=1")
    a = subscribers(d, channel=CH, handler_id="A")
    b = subscribers(d, channel=CH, handler_id="B")
    publish(d, CH, [b"1", b"2"])
    assert a.wait_deliveries(2, timeout=WAIT) and b.wait_deliveries(2, timeout=WAIT)
    s = wait_for(lambda: (lambda s: s if s.get("redrive_dlq_depth" + labels("A")) == 0 else None)(
        samples(scrape(d))), WAIT)
    assert s
    assert s["redrive_deliveries_total" + labels("A")] == 2
    assert s['redrive_deliveries_total{channel="_overflow",handler="_overflow"}'] == 2
    assert "redrive_deliveries_total" + labels("B") not in s
    assert s["redrive_metrics_overflow_registrations_total"] == 1
    # Gauges: the first handler by name only.
    assert "redrive_dlq_depth" + labels("B") not in s
    assert s["redrive_metrics_dropped_handlers"] == 1


class Prometheus:
    """A real Prometheus server on loopback scraping one target every 250 ms."""

    def __init__(self, target):
        self.dir = tempfile.mkdtemp(prefix="redrive-prometheus-")
        self.port = free_port()
        config = os.path.join(self.dir, "prometheus.yml")
        with open(config, "w") as f:
            f.write("global:\n  scrape_interval: 250ms\n  scrape_timeout: 200ms\n"
                    "scrape_configs:\n  - job_name: redrive\n"
                    "    static_configs:\n      - targets: ['%s']\n" % target)
        self.log = open(os.path.join(self.dir, "prometheus.log"), "wb")
        self.proc = subprocess.Popen(
            [PROMETHEUS, "--config.file=" + config, "--storage.tsdb.path=" + self.dir + "/data",
             "--web.listen-address=127.0.0.1:%d" % self.port],
            stdout=self.log, stderr=subprocess.STDOUT)
        assert wait_for(self._ready, 60), self.logs()

    def _ready(self):
        if self.proc.poll() is not None:
            raise AssertionError("prometheus exited: " + self.logs())
        try:
            return get("http://127.0.0.1:%d/-/ready" % self.port)[0] == 200
        except OSError:
            return False

    def logs(self):
        with open(os.path.join(self.dir, "prometheus.log")) as f:
            return f.read()

    def query(self, expr):
        """The instant vector of `expr` as {frozenset(labels): value}."""
        url = "http://127.0.0.1:%d/api/v1/query?%s" % (
            self.port, urllib.parse.urlencode({"query": expr}))
        status, _, body = get(url)
        assert status == 200, body
        reply = json.loads(body)
        assert reply["status"] == "success", reply
        return {frozenset((k, v) for k, v in r["metric"].items() if k not in ("instance", "job")):
                float(r["value"][1]) for r in reply["data"]["result"]}

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def prometheus():
    started = []

    def make(target):
        p = Prometheus(target)
        started.append(p)
        return p
    yield make
    for p in started:
        p.stop()


def test_prometheus_scrapes_the_exact_dlq_depth_and_dead_letters(
        redis, daemon_factory, subscribers, prometheus):
    d = start(daemon_factory)
    prom = prometheus(d.info["metrics"])
    a = subscribers(d, channel=CH, handler_id="A",
                    retry_policy=policy(max_retries=3, initial_backoff_ms=50))
    b = subscribers(d, channel=CH, handler_id="B")
    publish(d, CH, [b'{"order":%d}' % i for i in range(7)])
    assert a.wait_deliveries(7, timeout=WAIT) and b.wait_deliveries(7, timeout=WAIT)
    a.verbs([terminate(x.delivery_id, "invalid order") for x in a.snapshot()])
    b.ack_all()
    assert wait_for(lambda: redis.client()("XLEN", CH + ".A.dlq") == 7, WAIT)

    up = wait_for(lambda: prom.query('up{job="redrive"}') == {frozenset({("__name__", "up")}): 1.0}, WAIT)
    assert up, prom.query("up")
    want_depth = {frozenset({("__name__", "redrive_dlq_depth"), ("channel", CH),
                             ("handler", "A")}): 7.0,
                  frozenset({("__name__", "redrive_dlq_depth"), ("channel", CH),
                             ("handler", "B")}): 0.0}
    assert wait_for(lambda: prom.query("redrive_dlq_depth") == want_depth, WAIT), (
        prom.query("redrive_dlq_depth"))
    dead = 'redrive_dead_letters_total{channel="%s",handler="A",reason="terminated"}' % CH
    assert wait_for(lambda: list(prom.query(dead).values()) == [7.0], WAIT), prom.query(dead)
    assert list(prom.query('sum(redrive_dead_letters_total{handler="B"})').values()) == [0.0]
    acks = 'redrive_acks_total{channel="%s",handler="B"}' % CH
    assert wait_for(lambda: list(prom.query(acks).values()) == [7.0], WAIT), prom.query(acks)
    oldest = prom.query('redrive_dlq_oldest_age_seconds{handler="A"}')
    assert len(oldest) == 1 and 0 <= list(oldest.values())[0] < 120, oldest
