"""Deploy files checked by the real tools: promtool (config, rules, rule unit tests with
lunch-break and holiday cases), amtool (config and routing), and the dashboards'
generator (the JSON in the repository is what `make dashboards` writes)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from pathlib import Path

import pytest

DEPLOY = Path(__file__).parents[2] / "deploy"
pytestmark = pytest.mark.integration


def tool(name: str, *args: str, cwd: Path = DEPLOY) -> subprocess.CompletedProcess[str]:
    binary = shutil.which(name)
    assert binary, (f"{name} is required (Debian packages prometheus and "
                    "prometheus-alertmanager; .ci/run installs them)")
    return subprocess.run([binary, *args], capture_output=True, text=True, cwd=cwd,
                          timeout=60, env=dict(os.environ))


RULE_FILES = sorted(p.relative_to(DEPLOY).as_posix()
                    for p in (DEPLOY / "prometheus" / "rules").glob("*.yml"))
RULE_TESTS = sorted(p.relative_to(DEPLOY).as_posix()
                    for p in (DEPLOY / "prometheus" / "tests").glob("*.yml"))


@pytest.mark.parametrize("args", [
    ("check", "config", "prometheus/prometheus.yml"),
    ("check", "config", "prometheus/prometheus-compose.yml"),
    *[("check", "rules", path) for path in RULE_FILES],
    *[("test", "rules", path) for path in RULE_TESTS],
], ids=lambda args: " ".join(args))
def test_promtool(args: tuple[str, ...]) -> None:
    done = tool("promtool", *args)
    assert done.returncode == 0, done.stdout + done.stderr


def test_rule_files_are_all_loaded_and_tested() -> None:
    assert len(RULE_FILES) == 3 and len(RULE_TESTS) >= 2
    config = (DEPLOY / "prometheus" / "prometheus.yml").read_text()
    for path in RULE_FILES:
        assert path.removeprefix("prometheus/") in config, f"{path} not in prometheus.yml"
    tested = "".join((DEPLOY / path).read_text() for path in RULE_TESTS)
    import yaml

    for path in RULE_FILES:
        for group in yaml.safe_load((DEPLOY / path).read_text())["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    assert f"alertname: {rule['alert']}" in tested, (
                        f"alert {rule['alert']} has no promtool test")


def test_amtool_check_config() -> None:
    done = tool("amtool", "check-config", "alertmanager/alertmanager.yml")
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(("labels", "receivers"), [
    (["alertname=HongKongMarketClosed", "severity=none", "kind=market-state"], "null"),
    (["alertname=IndexUp2Pct", "severity=warning", "kind=market"], "slack-market"),
    (["alertname=SouthboundNetInflowAbove8bn", "severity=critical", "kind=market"],
     "slack-market"),
    (["alertname=MarketflowNoTicks", "severity=critical", "kind=data-gap"],
     "slack-oncall,slack-ops"),
    (["alertname=MarketflowFrameWaitingTooLong", "severity=warning", "kind=latency"],
     "slack-ops"),
])
def test_alertmanager_routes(labels: list[str], receivers: str) -> None:
    done = tool("amtool", "config", "routes", "test",
                "--config.file=alertmanager/alertmanager.yml", *labels)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == receivers


def test_dashboards_are_generated() -> None:
    spec = importlib.util.spec_from_file_location("dashboards",
                                                  DEPLOY / "grafana" / "dashboards.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name, text in module.render().items():
        path = DEPLOY / "grafana" / "dashboards" / name
        assert path.exists() and path.read_text() == text, (
            f"{path} is stale: run `make dashboards`")
    on_disk = {p.name for p in (DEPLOY / "grafana" / "dashboards").glob("*.json")}
    assert on_disk == set(module.render()), "a dashboard JSON without its generator"
