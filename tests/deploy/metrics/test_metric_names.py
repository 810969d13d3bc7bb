"""Unit tests of metric_names.py (ctest metric_names_unit_test), and of what
it reads under deploy/, against data/contract.prom: the metric families of the
metrics contract written by hand, one sample each. The ctest
deploy_metrics_test checks the same files against a running redrived. Also:
every dashboard query parses as PromQL (promtool), and README's table of
alerts shows alerts.yaml's names, expressions, `for` and severities."""

import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, HERE)

import metric_names as mn  # noqa: E402

CONTRACT = os.path.join(HERE, "data", "contract.prom")
ALERTS = os.path.join(ROOT, "deploy", "prometheus", "alerts.yaml")
DASHBOARD = os.path.join(ROOT, "deploy", "grafana", "redrive-dashboard.json")

# The contract's families (README "Metrics"), by type.
CONTRACT_FAMILIES = {
    **{"redrive_%s_total" % n: "counter" for n in (
        "deliveries", "acks", "nacks", "extends", "terminates", "lease_expiries",
        "retries_scheduled", "retries_moved", "dead_letters", "poison", "redriven",
        "dlq_evictions", "publish_requests", "redis_reconnects", "redis_primary_changes")},
    **{"redrive_%s" % n: "gauge" for n in (
        "in_flight", "connected_streams", "pending", "consumer_lag", "retry_depth",
        "dlq_depth", "dlq_oldest_age_seconds", "paused", "redis_up", "grpc_streams",
        "build_info")},
    **{"redrive_%s_seconds" % n: "histogram" for n in (
        "settle_latency", "publish_latency", "redis_rtt")},
}


def contract():
    with open(CONTRACT) as f:
        return mn.exposition_families(f.read())


def run(*args):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = mn.main(["metric_names.py", *args])
    return code, out.getvalue(), err.getvalue()


# ---------------------------------------------------------------- extractor

@pytest.mark.parametrize("expr, names", [
    ("up", {"up"}),
    ("redrive_redis_up == 0", {"redrive_redis_up"}),
    ('up{job="redrive"} == 0', {"up"}),
    # label matchers, strings holding braces, brackets and metric-like words
    ('redrive_dlq_depth{channel=~"$channel", handler!="a{b}[c]", reason=\'x"y\'}',
     {"redrive_dlq_depth"}),
    # functions, aggregations with by before and after, ranges, numbers
    ("sum by (channel, handler) (increase(redrive_dead_letters_total[10m])) > 0",
     {"redrive_dead_letters_total"}),
    ("sum(rate(redrive_acks_total[5m])) without (instance, reason) / 2.5e3",
     {"redrive_acks_total"}),
    ("histogram_quantile(0.99, sum by (le, channel) "
     "(rate(redrive_settle_latency_seconds_bucket{channel=~\"$channel\"}[$__rate_interval])))",
     {"redrive_settle_latency_seconds_bucket"}),
    # binary operators with on / ignoring / group_left label lists
    ("redrive_in_flight * on (instance) group_left (version) redrive_build_info",
     {"redrive_in_flight", "redrive_build_info"}),
    ("redrive_pending / ignoring (reason) group_right redrive_dlq_depth",
     {"redrive_pending", "redrive_dlq_depth"}),
    ("redrive_paused and redrive_consumer_lag > bool 10 unless redrive_dlq_depth or vector(1)",
     {"redrive_paused", "redrive_consumer_lag", "redrive_dlq_depth"}),
    # offset and @ modifiers, subqueries, Grafana variables of every form
    ("redrive_dlq_depth - redrive_dlq_depth offset 15m", {"redrive_dlq_depth"}),
    ("max_over_time(rate(redrive_nacks_total[${__interval}])[1h:5m]) @ 1700000000",
     {"redrive_nacks_total"}),
    ("topk($k, redrive_retry_depth{handler=\"[[handler]]\"})", {"redrive_retry_depth"}),
    ("count_values(\"v\", redrive_build_info) + quantile(0.5, redrive_pending)",
     {"redrive_build_info", "redrive_pending"}),
    ("# a comment naming not_a_metric\nabsent(up{job=\"redrive\"})", {"up"}),
    ("Inf > NaN", set()),
    ("time() - 1", set()),
    ("redrive:dead_letters:rate5m", {"redrive:dead_letters:rate5m"}),
])
def test_metric_names_of_expressions(expr, names):
    assert mn.metric_names(expr) == names


@pytest.mark.parametrize("expr", [
    '{__name__=~"redrive_.*"}',        # cannot be checked
    'redrive_dlq_depth{channel="x"',   # unbalanced
    "redrive_dlq_depth[5m",
])
def test_unreadable_expressions_are_errors(expr):
    with pytest.raises(mn.ParseError):
        mn.metric_names(expr)


# ---------------------------------------------------------------- families

def test_the_fixture_has_exactly_the_contracts_families():
    assert contract() == CONTRACT_FAMILIES


@pytest.mark.parametrize("name, ok", [
    ("redrive_acks_total", True),
    ("redrive_settle_latency_seconds_bucket", True),
    ("redrive_settle_latency_seconds_sum", True),
    ("redrive_settle_latency_seconds_count", True),
    ("redrive_settle_latency_seconds", True),
    ("redrive_dlq_depth_bucket", False),      # a gauge has no buckets
    ("redrive_acks_total_count", False),
    ("redrive_ack_total", False),             # misspelt
    ("redrive_dlq_depth_total", False),       # not a counter
    ("up", False),
])
def test_exists_maps_series_names_to_families(name, ok):
    assert mn.exists(name, contract()) is ok


def test_counter_families_without_total_accept_the_total_series():
    # OpenMetrics names the counter family without _total.
    assert mn.exists("redrive_acks_total", {"redrive_acks": "counter"})
    assert not mn.exists("redrive_acks_total", {"redrive_acks": "gauge"})


def test_summary_has_sum_and_count_but_no_buckets():
    fams = {"rpc_seconds": "summary"}
    assert mn.exists("rpc_seconds_sum", fams) and mn.exists("rpc_seconds_count", fams)
    assert not mn.exists("rpc_seconds_bucket", fams)


# ---------------------------------------------------------------- rule files

RULES = """\
groups:
  - name: g
    rules:
      - alert: Plain
        expr: redrive_dlq_depth > 1 # a comment
        for: 1m
      - alert: "Block"
        expr: |
          sum by (channel) (
            rate(redrive_acks_total[5m])
          ) > 0
        labels:
          severity: warning
      - record: job:folded
        expr: >-
          redrive_pending
          + redrive_retry_depth
      - alert: DoubleQuoted
        expr: "up{job=\\"redrive\\"} == 0"
      - alert: SingleQuoted
        expr: 'up{job=''redrive''} == 0'
      - labels: {a: b}
        alert: KeyOrder
        expr: redrive_paused
"""


def test_rule_expressions_reads_every_scalar_form():
    assert mn.rule_expressions(RULES) == [
        ("Plain", "redrive_dlq_depth > 1"),
        ("Block", "sum by (channel) (\nrate(redrive_acks_total[5m])\n) > 0"),
        ("job:folded", "redrive_pending\n+ redrive_retry_depth"),
        ("DoubleQuoted", 'up{job="redrive"} == 0'),
        ("SingleQuoted", "up{job='redrive'} == 0"),
        ("KeyOrder", "redrive_paused"),
    ]


@pytest.mark.parametrize("text", [
    "groups: []\n",                                                    # no rules
    "groups:\n- rules:\n  - alert: A\n    for: 1m\n",                  # a rule without expr
    "groups:\n- rules:\n  - expr: up\n",                             # a rule without name
    "groups:\n- rules:\n  - alert: A\n    expr: up\n    expr: up\n",  # two exprs
    "groups:\n- rules:\n  - alert: A\n    expr: \"x\n      y\"\n",     # multi-line quoted
    "groups:\n- rules:\n  - alert: A\n    expr: |2-x\n      up\n",       # bad block header
])
def test_rule_files_it_cannot_read_are_errors(text):
    with pytest.raises(mn.ParseError):
        mn.rule_expressions(text)


def test_the_alert_rules_read_as_seven_expressions():
    with open(ALERTS) as f:
        rules = mn.rule_expressions(f.read())
    assert [name for name, _ in rules] == [
        "RedriveDeadLettersGrowing", "RedriveDeadLetterOlderThan24h", "RedriveConsumerLagHigh",
        "RedriveRedisDown", "RedriveDown", "RedriveMetricsAbsent", "RedrivePoisonMessages"]
    assert dict(rules)["RedriveDown"] == 'up{job="redrive"} == 0'
    assert set().union(*(mn.metric_names(e) for _, e in rules)) == {
        "redrive_dead_letters_total", "redrive_dlq_oldest_age_seconds", "redrive_consumer_lag",
        "redrive_redis_up", "up", "redrive_poison_total"}


# ---------------------------------------------------------------- dashboards

def test_dashboard_expressions_cover_targets_rows_and_variables():
    dash = {
        "panels": [
            {"title": "a", "targets": [{"refId": "A", "expr": "redrive_in_flight"}]},
            {"type": "row", "title": "r", "panels": [
                {"title": "b", "targets": [{"refId": "A", "expr": "redrive_pending"},
                                           {"refId": "B", "expr": ""}]}]},
        ],
        "templating": {"list": [
            {"type": "datasource", "name": "datasource", "query": "prometheus"},
            {"type": "query", "name": "channel",
             "query": {"query": "label_values(redrive_dlq_depth, channel)"}},
            {"type": "query", "name": "handler",
             "query": 'label_values(redrive_dlq_depth{channel=~"$channel"}, handler)'},
            {"type": "query", "name": "job", "query": "label_values(job)"},
            {"type": "query", "name": "q", "query": "query_result(topk(3, redrive_retry_depth))"},
            {"type": "custom", "name": "c", "query": "a,b"},
        ]},
    }
    assert mn.dashboard_expressions(dash) == [
        ("panel 'a' A", "redrive_in_flight"),
        ("panel 'b' A", "redrive_pending"),
        ("variable 'channel'", "redrive_dlq_depth"),
        ("variable 'handler'", 'redrive_dlq_depth{channel=~"$channel"}'),
        ("variable 'q'", "topk(3, redrive_retry_depth)"),
    ]


def load_dashboard():
    with open(DASHBOARD) as f:
        return json.load(f)


def test_the_dashboard_shows_every_family_of_the_contract():
    used = set().union(*(mn.metric_names(e) for _, e in mn.dashboard_expressions(load_dashboard())))
    families = contract()
    shown = {f for f in families if any(
        n == f or (n.startswith(f + "_") and mn.exists(n, {f: families[f]})) for n in used)}
    assert sorted(set(families) - shown) == []
    assert "up" in used


def test_the_dashboard_has_its_variables_and_no_overlapping_panels():
    dash = load_dashboard()
    assert dash["schemaVersion"] == 38
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert list(variables) == ["datasource", "instance", "channel", "handler"]
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["channel"]["query"]["query"] == "label_values(redrive_dlq_depth, channel)"
    assert variables["handler"]["query"]["query"] == \
        'label_values(redrive_dlq_depth{channel=~"$channel"}, handler)'
    cells = set()
    ids = []
    for p in dash["panels"]:
        ids.append(p["id"])
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, "%s overlaps another panel" % p["title"]
                cells.add((x, y))
        if p["type"] != "row":
            assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            for t in p["targets"]:
                assert t["datasource"] == p["datasource"]
                if '"$' not in t["expr"] and "channel" in t["expr"]:
                    pytest.fail("%s: per-handler query without the variables" % p["title"])
    assert len(ids) == len(set(ids))


# ---------------------------------------------------------------- the command

def test_alerts_and_dashboard_use_only_contract_metrics_and_up():
    code, out, err = run(CONTRACT, "--rules", ALERTS, "--dashboard", DASHBOARD, "--allow", "up")
    assert (code, err) == (0, ""), out
    assert out.startswith("ok: 43 expressions name 30 metrics, all among the 29 families of ")


def test_up_must_be_allowed_explicitly():
    code, out, _ = run(CONTRACT, "--rules", ALERTS)
    assert code == 1
    assert out.splitlines() == [
        "%s: RedriveDown: up is not in %s" % (ALERTS, CONTRACT),
        "%s: RedriveMetricsAbsent: up is not in %s" % (ALERTS, CONTRACT),
    ]


def test_a_misspelt_metric_fails_the_check(tmp_path):
    # The real alert rules with one metric name misspelt.
    with open(ALERTS) as f:
        text = f.read()
    assert text.count("redrive_consumer_lag)") == 1
    bad = tmp_path / "alerts.yaml"
    bad.write_text(text.replace("redrive_consumer_lag)", "redrive_consumer_lagg)"))
    code, out, _ = run(CONTRACT, "--rules", str(bad), "--allow", "up")
    assert code == 1
    assert out == "%s: RedriveConsumerLagHigh: redrive_consumer_lagg is not in %s\n" % (bad, CONTRACT)

    # A dashboard panel using a histogram's buckets of a gauge.
    dash = load_dashboard()
    dash["panels"][1]["targets"][0]["expr"] = \
        "histogram_quantile(0.5, rate(redrive_dlq_depth_bucket[5m]))"
    bad_dash = tmp_path / "dash.json"
    bad_dash.write_text(json.dumps(dash))
    code, out, _ = run(CONTRACT, "--dashboard", str(bad_dash), "--allow", "up")
    assert code == 1
    assert out == "%s: panel %r A: redrive_dlq_depth_bucket is not in %s\n" % (
        bad_dash, dash["panels"][1]["title"], CONTRACT)


def test_inputs_it_cannot_read_exit_2(tmp_path):
    empty = tmp_path / "empty.prom"
    empty.write_text("# HELP x y\nx 1\n")
    assert run(str(empty), "--rules", ALERTS)[0] == 2          # no # TYPE lines
    assert run(str(tmp_path / "missing.prom"), "--rules", ALERTS)[0] == 2
    assert run(CONTRACT)[0] == 2                               # nothing to check
    assert run(CONTRACT, "--rules")[0] == 2


# ---------------------------------------------------------------- PromQL syntax, README

def test_every_dashboard_query_is_valid_promql(tmp_path):
    """promtool parses each query, Grafana's variables replaced by values."""
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: scripts/deps.sh installs Debian's prometheus"
    exprs = [e for _, e in mn.dashboard_expressions(load_dashboard())]
    rules = ["groups:", "  - name: dashboard", "    rules:"]
    for i, e in enumerate(exprs):
        e = e.replace("$__rate_interval", "5m").replace("$channel", ".*") \
             .replace("$handler", ".*").replace("$instance", ".*")
        assert "$" not in e, e
        rules += ["      - record: dashboard:query%d" % i, "        expr: %s" % json.dumps(e)]
    path = tmp_path / "dashboard-rules.yaml"
    path.write_text("\n".join(rules) + "\n")
    run = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SUCCESS: %d rules found" % len(exprs) in run.stdout + run.stderr


def test_the_readme_table_shows_the_rules_as_they_are():
    with open(ALERTS) as f:
        text = f.read()
    fors = {}
    for block in text.split("- alert: ")[1:]:
        name = block.split("\n", 1)[0].strip()
        m = re.search(r"^\s+for: (\S+)$", block, re.M)
        sev = re.search(r"^\s+severity: (\S+)$", block, re.M).group(1)
        fors[name] = (m.group(1) if m else "—", sev)
    with open(os.path.join(ROOT, "README.md")) as f:
        rows = re.findall(r"^\| `(Redrive\w+)` \| `(.*)` \| (\S+) \| (\w+) \|$", f.read(), re.M)
    assert [(n, e, f, s) for n, e, f, s in rows] == [
        (n, e) + fors[n] for n, e in mn.rule_expressions(text)]
