"""Observability proven on real servers: Debian's Prometheus scrapes a real worker and a
real notifier while the demo day (24 Nov 2025, the simulator's scenario, 5k trades) is
replayed through the embedded broker; then every recording rule, every alert expression
and every Grafana query (panels, variables, annotations) of deploy/ runs through the HTTP
API and must return data, naming what did not. Prometheus sends to a real Alertmanager
with deploy/alertmanager/alertmanager.yml, whose Slack receiver posts to a local server.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from marketflow.settings import PACKAGE_DATA
from tests.integration.harness import Worker, read_topic, unique_topics, wait_for, worker_env
from tests.integration.promstack import (
    DEPLOY,
    Alertmanager,
    FakeSlack,
    Process,
    Prometheus,
    free_port,
    http_json,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

RULES = DEPLOY / "prometheus" / "rules"
DASHBOARDS = DEPLOY / "grafana" / "dashboards"
SELECTOR = re.compile(r"\b((?:marketflow_|marketflow:)[a-z0-9_:]+|up|ALERTS)\b(\{[^}]*\})?")


@dataclass
class ObservedDay:
    prometheus: Prometheus
    alertmanager: Alertmanager
    slack: FakeSlack
    topics: dict[str, str]
    bootstrap: str
    health_url: str


def rules_of(kind: str) -> list[dict[str, Any]]:
    out = []
    for path in sorted(RULES.glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            out += [rule for rule in group["rules"] if kind in rule]
    return out


def dashboard_queries() -> list[tuple[str, str]]:
    """(what, PromQL) for every panel target, annotation and variable of every dashboard;
    variables take a real value ($window: day and 15m; $sector: all)."""
    out = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel["targets"]:
                for window in ("day", "15m") if "$window" in target["expr"] else ("",):
                    expr = target["expr"].replace("$window", window).replace("$sector", ".*")
                    what = f"{board['title']} / panel {panel['title']!r} {target['refId']}"
                    out.append((f"{what} window={window}" if window else what, expr))
        for note in board["annotations"]["list"]:
            if "expr" in note:
                out.append((f"{board['title']} / annotation {note['name']!r}", note["expr"]))
        for variable in board["templating"]["list"]:
            match = re.fullmatch(r"label_values\((\w+), (\w+)\)", variable["definition"])
            assert match, variable["definition"]
            out.append((f"{board['title']} / variable ${variable['name']}",
                        f"count by ({match[2]}) ({match[1]})"))
    return out


def has_data(result: list[dict[str, Any]]) -> bool:
    return any(item["value"][1] not in ("NaN", "+Inf", "-Inf") for item in result)


def produce_bad_records(bootstrap: str, topic: str, count: int) -> None:
    from aiokafka import AIOKafkaProducer

    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
        await producer.start()
        try:
            for n in range(count):
                await producer.send_and_wait(topic, b"{not json %d" % n, partition=0)
        finally:
            await producer.stop()

    import asyncio

    asyncio.run(send())


@pytest.fixture(scope="module")
def day(stack: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ObservedDay]:
    work = tmp_path_factory.mktemp("observed")
    topics = unique_topics(stack.bootstrap, "prom")
    app_id = f"mf-prom-{topics['ticks']}"
    slack = FakeSlack(fail_first={"/notify": 1})
    metrics_port, notify_port, health_port = free_port(), free_port(), free_port()
    env = worker_env(
        stack.bootstrap, stack.redis_url, topics, app_id,
        MARKETFLOW_UNIVERSE=str(PACKAGE_DATA / "universe.csv"),
        MARKETFLOW_INDICES=str(PACKAGE_DATA / "indices.csv"),
        MARKETFLOW_RULES=str(PACKAGE_DATA / "rules.yaml"),
        MARKETFLOW_HEALTH_PORT=str(health_port),
        MARKETFLOW_NOTIFY_METRICS_PORT=str(notify_port),
        MARKETFLOW_SLACK_WEBHOOK_URL=f"{slack.url}/notify",
    )
    started: list[Any] = [slack]
    try:
        alertmanager = Alertmanager(work, f"{slack.url}/alertmanager")
        started.append(alertmanager)
        started.append(Worker(env, work, "worker", free_port(), metrics_port))
        started.append(Process([sys.executable, "-m", "marketflow.cli", "notify", "--group",
                                f"{app_id}-notify"], work / "notify.log", work, env))
        (work / "prometheus").mkdir()
        prometheus = Prometheus(work / "prometheus", {
            "marketflow-worker": f"127.0.0.1:{metrics_port}",
            "marketflow-notify": f"127.0.0.1:{notify_port}",
        }, alertmanager.address)
        started.append(prometheus)
        observed = ObservedDay(prometheus, alertmanager, slack, topics, stack.bootstrap,
                               f"http://127.0.0.1:{health_port}")
        replay(observed, env, work)
        yield observed
    finally:
        for each in reversed(started):
            each.stop()


def replay(day: ObservedDay, env: dict[str, str], work: Path) -> None:
    """The worker joins, the day is published by `marketflow simulate`, three undecodable
    records follow; returns once Prometheus holds the day's end (bounded)."""
    prometheus = day.prometheus
    wait_for(lambda: prometheus.query('up{job="marketflow-worker"} == 1')
             and prometheus.query('marketflow_worker_ready == 1'), 90, "the worker ready")
    done = subprocess.run([sys.executable, "-m", "marketflow.cli", "simulate", "--trades",
                           "5000", "--speed", "1500"], env=env, capture_output=True, text=True,
                          timeout=120, cwd=work)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    produce_bad_records(day.bootstrap, day.topics["ticks"], 3)

    def settled() -> bool:
        return bool(
            prometheus.query('ALERTS{alertname="SouthboundNetInflowAbove8bn",'
                             'alertstate="firing"}')
            and prometheus.query('marketflow_records_rejected_total{reason="invalid_json"} == 3')
            and prometheus.query('marketflow_slack_posts_total{outcome="ok"} > 0')
            and prometheus.query("marketflow:tick_to_alert_seconds:p99_5m > 0")
            and prometheus.query("marketflow:records_rejected:rate5m > 0")
            and prometheus.query("marketflow:slack_posts:rate5m > 0"))

    wait_for(settled, 90, "the day's figures, alerts and Slack posts in Prometheus", 1.0)


# -- the rules and dashboards against the real server -------------------------------------


def test_every_recording_rule_returns_data(day: ObservedDay) -> None:
    missing = [rule["record"] for rule in rules_of("record")
               if not has_data(day.prometheus.query(rule["record"]))]
    assert not missing, f"recording rules without data: {missing}"


def test_every_alert_expression_evaluates_on_existing_series(day: ObservedDay) -> None:
    """Each alert's expression is accepted by the server, and every series it selects
    exists with the labels it asks for (an expression that is quiet because a metric or
    label is misspelt fails here, naming the alert and the selector)."""
    problems = []
    for rule in rules_of("alert"):
        day.prometheus.query(rule["expr"])  # raises on a server-side error
        for name, labels in SELECTOR.findall(rule["expr"]):
            selector = name + labels
            if name == "ALERTS":
                continue
            if not day.prometheus.query(f"count({selector})"):
                problems.append(f"{rule['alert']}: {selector}")
    assert not problems, f"alert selectors with no series: {problems}"


def test_every_dashboard_query_returns_data(day: ObservedDay) -> None:
    queries = dashboard_queries()
    assert len(queries) >= 30
    empty = [what for what, expr in queries if not has_data(day.prometheus.query(expr))]
    assert not empty, "dashboard queries without data:\n" + "\n".join(empty)


def test_market_alerts_agree_with_the_worker(day: ObservedDay) -> None:
    """Every market mirror firing in Prometheus names a (rule, subject) the worker itself
    alerted on (its value is past the threshold now, so it crossed it today)."""
    import asyncio

    firing = day.prometheus.query('ALERTS{alertstate="firing", kind="market"}')
    pairs = {(a["metric"]["rule"], a["metric"].get("index") or a["metric"].get("sector")
              or a["metric"].get("symbol") or a["metric"].get("channel") or "market")
             for a in firing}
    assert ("index-up-2pct", "HSTECH") in pairs
    assert ("southbound-net-inflow-8bn", "total") in pairs
    records = asyncio.run(read_topic(day.bootstrap, day.topics["alerts"], idle_s=0.5))
    worker = {(alert["rule_id"], alert["subject"]) for _, alert in records}
    assert pairs <= worker, pairs - worker


def test_alerts_reach_slack_through_alertmanager(day: ObservedDay) -> None:
    """Prometheus -> Alertmanager (the repository's routes) -> the Slack receiver: the
    market mirrors arrive in #market-flow with their summaries."""

    def market_posts() -> list[Any]:
        return [p for p in day.slack.received("/alertmanager")
                if p.get("channel") == "#market-flow"]

    # the summaries carry the value when Alertmanager sent them (the day is replayed paced,
    # so that is the value at the crossing, not the close): the HSTECH +2% alert with a
    # value past 2%, and the southbound one past HK$8bn
    expected = (r"HSTECH 2\.\d+% on the day",
                r"Southbound net inflow HK\$8\.\d+G passed HK\$8bn")

    def arrived() -> bool:
        text = json.dumps(market_posts())
        return all(re.search(summary, text) for summary in expected)

    try:
        wait_for(arrived, 45, f"{expected} in #market-flow")
    except AssertionError as error:
        firing = day.prometheus.query('ALERTS{alertstate="firing"}')
        raise AssertionError(
            f"{error}\nposts: {json.dumps(day.slack.received('/alertmanager'))[:3000]}\n"
            f"firing in Prometheus: {[a['metric']['alertname'] for a in firing]}\n"
            f"alertmanager: {day.alertmanager.alerts()}\n"
            f"alertmanager log: {day.alertmanager.process.text()}") from None
    titles = {attachment["title"] for post in market_posts()
              for attachment in post["attachments"]}
    assert {"IndexUp2Pct", "SouthboundNetInflowAbove8bn"} <= titles
    ops = [p for p in day.slack.received("/alertmanager") if p.get("channel") != "#market-flow"]
    assert not any("MarketflowNoTicks" in json.dumps(p) for p in ops)


def test_market_closed_inhibits_data_gap_alerts(day: ObservedDay) -> None:
    """Alertmanager's inhibition, on the real server: with HongKongMarketClosed firing, a
    data-gap alert is suppressed; an availability alert is not."""
    now = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 5))
    until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 300))
    day.alertmanager.push([
        {"labels": {"alertname": "HongKongMarketClosed", "phase": "lunch", "severity": "none",
                    "kind": "market-state", "test": "inhibition"},
         "startsAt": stamp, "endsAt": until},
        {"labels": {"alertname": "MarketflowNoTicks", "severity": "critical",
                    "kind": "data-gap", "test": "inhibition"},
         "annotations": {"summary": "No ticks"}, "startsAt": stamp, "endsAt": until},
        {"labels": {"alertname": "MarketflowNotifierDown", "severity": "critical",
                    "kind": "availability", "test": "inhibition"},
         "startsAt": stamp, "endsAt": until},
    ])

    def states() -> dict[str, dict[str, Any]]:
        return {a["labels"]["alertname"]: a["status"] for a in day.alertmanager.alerts()
                if a["labels"].get("test") == "inhibition"}

    wait_for(lambda: states().get("MarketflowNoTicks", {}).get("state") == "suppressed", 20,
             "MarketflowNoTicks suppressed")
    status = states()
    assert status["MarketflowNoTicks"]["inhibitedBy"]
    assert status["MarketflowNotifierDown"]["state"] == "active"


def test_worker_health_endpoints(day: ObservedDay) -> None:
    ready = http_json(f"{day.health_url}/readyz")
    assert ready["ready"] is True and ready["joined"] is True and ready["assigned"] >= 10
    assert http_json(f"{day.health_url}/healthz")["live"] is True


def test_notifier_counted_a_failed_and_the_delivered_posts(day: ObservedDay) -> None:
    """The fake Slack failed the first post (500, retried): Prometheus's counts of the
    notifier's posts match what the webhook received, once the notifier is idle."""
    counts: dict[str, float] = {}

    def agree() -> bool:
        result = day.prometheus.query("sum by (outcome) (marketflow_slack_posts_total)")
        counts.clear()
        counts.update({r["metric"]["outcome"]: float(r["value"][1]) for r in result})
        return sum(counts.values()) == len(day.slack.received("/notify"))

    wait_for(agree, 15, "the notifier's post counts to match the webhook's")
    assert counts["server_error"] == 1 and counts["ok"] >= 1
    assert counts["timeout"] == counts["rejected"] == counts["rate_limited"] == 0
