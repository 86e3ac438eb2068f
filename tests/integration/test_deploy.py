"""Deploy files checked by real Prometheus tooling (promtool), and the Grafana dashboard
checked against the metrics the code defines."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from marketflow.observe.metrics import MarketflowMetrics

DEPLOY = Path(__file__).parents[2] / "deploy"
pytestmark = pytest.mark.integration


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    assert binary, "promtool is required (Debian package prometheus; .ci/run installs it)"
    return subprocess.run([binary, *args], capture_output=True, text=True, cwd=DEPLOY,
                          timeout=60, env=dict(os.environ))


@pytest.mark.parametrize("args", [
    ("check", "config", "prometheus/prometheus.yml"),
    ("check", "rules", "prometheus/rules/marketflow.rules.yml"),
    ("test", "rules", "prometheus/tests/marketflow.test.yml"),
])
def test_promtool(args: tuple[str, ...]) -> None:
    done = promtool(*args)
    assert done.returncode == 0, done.stdout + done.stderr


def defined_metrics() -> set[str]:
    registry = CollectorRegistry()
    MarketflowMetrics(registry)
    names = set()
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
    for family in registry.collect():
        names.update(family.name + suffix for suffix in suffixes.get(family.type, ("",)))
    return names


def test_dashboard_and_rules_use_only_defined_metrics() -> None:
    names = defined_metrics()
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "marketflow.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    exprs += re.findall(r"expr: (.+)", (DEPLOY / "prometheus" / "rules" /
                                        "marketflow.rules.yml").read_text())
    used = {name for expr in exprs for name in re.findall(r"\bmarketflow_[a-z_]+", expr)}
    assert used, "no marketflow metric referenced"
    assert used <= names, used - names
