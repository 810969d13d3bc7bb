"""deploy/prometheus/prometheus-rule.yaml (a PrometheusRule for the Prometheus
Operator) holds exactly the rules of deploy/prometheus/alerts.yaml, which
promtool checks and unit-tests (ctest prometheus_rule_sync_test)."""

import os

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
ALERTS = os.path.join(ROOT, "deploy", "prometheus", "alerts.yaml")
RULE = os.path.join(ROOT, "deploy", "prometheus", "prometheus-rule.yaml")


def spec_of(rule_text):
    """The lines under the manifest's top-level `spec:`, dedented by two."""
    lines = rule_text.split("\n")
    start = lines.index("spec:") + 1
    out = []
    for line in lines[start:]:
        assert not line.strip() or line.startswith("  "), "not under spec: %r" % line
        out.append(line[2:])
    return out


def groups_of(alerts_text):
    """alerts.yaml from its `groups:` line on (the comments above it dropped)."""
    lines = alerts_text.split("\n")
    return lines[lines.index("groups:"):]


def test_the_prometheus_rule_is_alerts_yaml_under_spec():
    with open(RULE) as f:
        rule = f.read()
    with open(ALERTS) as f:
        alerts = f.read()
    head = [ln for ln in rule.split("\n")[:rule.split("\n").index("spec:")]
            if ln and not ln.startswith("#")]
    assert head == ["apiVersion: monitoring.coreos.com/v1", "kind: PrometheusRule",
                    "metadata:", "  name: redrive", "  labels:",
                    "    app.kubernetes.io/part-of: redrive"]
    assert spec_of(rule) == groups_of(alerts)
    assert sum(ln.lstrip().startswith("- alert: ") for ln in groups_of(alerts)) == 7
