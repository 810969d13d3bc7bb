"""The alert rules and the Grafana dashboard under deploy/ name only metrics
that a running redrived exports (ctest deploy_metrics_test).

A private redis-server and the real redrived with --metrics-listen on a free
loopback port (the fixtures of tests/e2e/python); one handler registered and
one of its messages dead-lettered, so that every per-handler family, the
`reason` label included, has series. Then metric_names.py reads
http://127.0.0.1:PORT/metrics and checks deploy/prometheus/alerts.yaml and
deploy/grafana/redrive-dashboard.json against it (`up` is Prometheus's own).
Every wait is on a condition, bounded by WAIT."""

import os
import re
import subprocess
import sys
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e", "python"))

from redrive.v1 import broker_pb2, common_pb2  # noqa: E402

from conftest import daemon_factory, free_port, redis, wait_for  # noqa: E402,F401 (fixtures)
from test_subscribe import publish, subscribers  # noqa: E402,F401 (fixture)
import metric_names as mn  # noqa: E402
from test_metric_names import CONTRACT_FAMILIES  # noqa: E402

WAIT = 30.0  # seconds; the bound of every wait on a condition
ALERTS = os.path.join(ROOT, "deploy", "prometheus", "alerts.yaml")
DASHBOARD = os.path.join(ROOT, "deploy", "grafana", "redrive-dashboard.json")
CHECKER = os.path.join(HERE, "metric_names.py")
CH = "deploy.orders"


def scrape(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.read().decode("utf-8")
    except (urllib.error.URLError, OSError):
        return None


def sample(text, name, **labels):
    """The value of the one series `name` with (at least) `labels`, or None."""
    values = []
    for line in (text or "").split("\n"):
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)", line)
        if not m or m.group(1) != name:
            continue
        have = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            values.append(float(m.group(3)))
    return values[0] if len(values) == 1 else None


def test_alerts_and_dashboard_name_only_metrics_redrived_exports(
        redis, daemon_factory, subscribers):  # noqa: F811
    port = free_port()
    url = "http://127.0.0.1:%d/metrics" % port
    daemon = daemon_factory("--metrics-listen=127.0.0.1:%d" % port, "--reclaim-tick-ms=100")
    sub = subscribers(daemon, channel=CH, handler_id="billing",
                      retry_policy=common_pb2.RetryPolicy(max_retries=0, initial_backoff_ms=50))
    publish(daemon, CH, [b'{"id":1}'])
    assert sub.wait_deliveries(1, timeout=WAIT)
    sub.verbs([broker_pb2.Verb(delivery_id=sub.snapshot()[0].delivery_id,
                               nack=broker_pb2.Nack(reason="declined"))])
    assert wait_for(lambda: redis.client()("XLEN", CH + ".billing.dlq") == 1, WAIT)
    [(_, fields)] = redis.client()("XRANGE", CH + ".billing.dlq", "-", "+")
    assert dict(zip(fields[::2], fields[1::2]))[b"x-redrive-reason"] == b"max_retries"

    # The exposition shows the dead letter.
    def dead_lettered():
        text = scrape(url)
        handler = {"channel": CH, "handler": "billing"}
        if (sample(text, "redrive_dead_letters_total", reason="max_retries", **handler) == 1
                and sample(text, "redrive_dlq_depth", **handler) == 1):
            return text
        return None
    text = wait_for(dead_lettered, WAIT, 0.1)
    assert text, "no dead letter in %s:\n%s" % (url, scrape(url))

    # Every family of the contract, with its type (data/contract.prom, the
    # unit tests' fixture, is the same list).
    families = mn.exposition_families(text)
    assert {f: families.get(f) for f in CONTRACT_FAMILIES} == CONTRACT_FAMILIES

    # The check itself, as CI and an operator run it: against the URL.
    run = subprocess.run([sys.executable, CHECKER, url, "--rules", ALERTS,
                          "--dashboard", DASHBOARD, "--allow", "up"],
                         capture_output=True, text=True, timeout=60)
    assert (run.returncode, run.stderr) == (0, ""), run.stdout
    assert run.stdout.startswith("ok: 43 expressions name 30 metrics, all among the "), run.stdout
    assert run.stdout.rstrip().endswith(" families of %s (allowed: up)" % url), run.stdout

    # And it fails against the same daemon for a rule naming a metric it lacks.
    with open(ALERTS) as f:
        rules = f.read()
    assert rules.count("redrive_redis_up == 0") == 1
    bad = os.path.join(daemon.dir, "alerts.yaml")
    with open(bad, "w") as f:
        f.write(rules.replace("redrive_redis_up == 0", "redrive_redis_upp == 0"))
    run = subprocess.run([sys.executable, CHECKER, url, "--rules", bad, "--allow", "up"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1, run.stdout + run.stderr
    assert run.stdout == "%s: RedriveRedisDown: redrive_redis_upp is not in %s\n" % (bad, url)
