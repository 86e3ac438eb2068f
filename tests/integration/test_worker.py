"""The live worker on a real broker equals `marketflow backtest` to the last digit:
with one worker, with two, and after a kill -9 and restart."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.harness import (
    SMALL,
    Worker,
    backtest_small,
    produce_lines,
    read_topic,
    unique_topics,
    wait_for,
    worker_env,
)
from tests.schemas import validator

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def expected() -> dict[str, Any]:
    return backtest_small()


def latest_snapshots(records: list[tuple[bytes, dict]]) -> dict[tuple[str, str], dict]:
    latest: dict[tuple[str, str], dict] = {}
    for _, snapshot in records:
        latest[(snapshot["type"], snapshot["subject"])] = snapshot
    return latest


def live_results(bootstrap: str, topics: dict[str, str]) -> tuple[list[dict], dict]:
    async def gather() -> tuple[list[Any], list[Any]]:
        alerts = await read_topic(bootstrap, topics["alerts"], idle_s=0.5)
        snapshots = []
        for name in ("indices", "stocks", "sectors", "market"):
            snapshots += await read_topic(bootstrap, topics[name], idle_s=0.5)
        return alerts, snapshots

    alerts, snapshots = asyncio.run(gather())
    return [a for _, a in alerts], latest_snapshots(snapshots)


def assert_equal_to_backtest(alerts: list[dict], latest: dict, expected: dict) -> None:
    for alert in alerts:  # every record the worker wrote validates against its schema
        assert not list(validator("alert").iter_errors(alert)), alert
    for snapshot in latest.values():
        assert not list(validator("snapshot").iter_errors(snapshot)), snapshot
    ids = [a["alert_id"] for a in alerts]
    assert len(ids) == len(set(ids)), "an alert was emitted twice"
    assert sorted(ids) == sorted(a["alert_id"] for a in expected["alerts"])
    by_id = {a["alert_id"]: a for a in expected["alerts"]}
    for alert in alerts:
        want = dict(by_id[alert["alert_id"]])
        got = {k: v for k, v in alert.items() if k != "emitted_at"}
        assert got == want
    final = expected["final"]
    for symbol, figures in final["stocks"].items():
        snapshot = latest[("stock", symbol)]
        assert {k: snapshot[k] for k in figures} == figures, symbol
    for name, figures in final["sectors"].items():
        snapshot = latest[("sector", name)]
        assert snapshot["final"] is True
        assert {k: snapshot[k] for k in figures} == figures, name
    market = latest[("market", "market")]
    assert {k: market[k] for k in final["market"]} == final["market"]
    for symbol, figures in final["indices"].items():
        snapshot = latest[("index", symbol)]
        assert {k: snapshot[k] for k in figures} == figures, symbol
    for channel, figures in final["southbound"].items():
        snapshot = latest[("southbound", channel)]
        assert {k: snapshot[k] for k in figures} == figures, channel


def produce_day(bootstrap: str, topics: dict[str, str], pause_s: float = 0.0) -> None:
    ticks = (SMALL / "ticks.jsonl").read_text().splitlines()
    updates = (SMALL / "southbound.jsonl").read_text().splitlines()

    async def both() -> None:
        await produce_lines(bootstrap, topics["southbound"], updates, "channel")
        await produce_lines(bootstrap, topics["ticks"], ticks, "symbol", partitions=8,
                            batch=20, pause_every=400 if pause_s else 0, pause_s=pause_s)

    asyncio.run(both())


def wait_until_final(bootstrap: str, topics: dict[str, str], expected: dict,
                     workers: list[Worker], timeout: float = 90) -> tuple[list[dict], dict]:
    result: dict[str, Any] = {}

    def done() -> bool:
        for worker in workers:
            if worker.proc.poll() is not None:
                raise AssertionError(f"worker exited early:\n{worker.text()[-3000:]}")
        alerts, latest = live_results(bootstrap, topics)
        result["alerts"], result["latest"] = alerts, latest
        market = latest.get(("market", "market"))
        sectors = [latest.get(("sector", name)) for name in expected["final"]["sectors"]]
        return (len(alerts) >= len(expected["alerts"]) and market is not None
                and market["final"] and market["turnover_hkd"]
                == expected["final"]["market"]["turnover_hkd"]
                and all(s is not None and s["final"] for s in sectors))

    try:
        wait_for(done, timeout, "the worker's final snapshots", interval=1.0)
    except AssertionError as error:
        alerts, latest = result.get("alerts", []), result.get("latest", {})
        market = latest.get(("market", "market")) or {}
        got = {a["alert_id"] for a in alerts}
        missing = [(a["rule_id"], a["subject"], a["ts"]) for a in expected["alerts"]
                   if a["alert_id"] not in got]
        not_final = [name for (kind, name), s in latest.items()
                     if kind == "sector" and not s["final"]]
        raise AssertionError(
            f"{error}: {len(alerts)} of {len(expected['alerts'])} alerts (missing {missing}); "
            f"market final {market.get('final')}, turnover {market.get('turnover_hkd')} of "
            f"{expected['final']['market']['turnover_hkd']}; sectors not final {not_final}"
        ) from None
    return result["alerts"], result["latest"]


def test_live_equals_backtest_in_every_sink(stack: Any, tmp_path: Path, expected: dict,
                                           redis_client: Any) -> None:
    """One worker: the topics, the Redis hashes and stream, and /metrics all agree."""
    topics = unique_topics(stack.bootstrap, "live1")
    app_id = f"mf-live-{topics['ticks']}"
    env = worker_env(stack.bootstrap, stack.redis_url, topics, app_id)
    metrics_port = free_port()
    proc = Worker(env, tmp_path, "w0", free_port(), metrics_port)
    try:
        time.sleep(4)  # let the group form (session timeout 3 s)
        produce_day(stack.bootstrap, topics)
        alerts, latest = wait_until_final(stack.bootstrap, topics, expected, [proc])
        assert_equal_to_backtest(alerts, latest, expected)
        prefix = f"{app_id}:"
        final = expected["final"]
        # Redis: each alert exactly once in the stream, the latest hashes equal backtest
        stream = redis_client.xrange(f"{prefix}alerts")
        assert sorted(e[1][b"alert_id"].decode() for e in stream) == sorted(
            a["alert_id"] for a in expected["alerts"])
        for name, figures in final["sectors"].items():
            stored = redis_client.hgetall(f"{prefix}latest:sector:{name}")
            assert float(stored[b"gain_pct"]) == figures["gain_pct"]
            for window, gain in figures["rolling"].items():
                assert float(stored[f"rolling_{window}".encode()]) == gain
        for symbol, figures in final["stocks"].items():
            stored = redis_client.hgetall(f"{prefix}latest:stock:{symbol}")
            assert float(stored[b"last"]) == figures["last"]
            assert float(stored[b"turnover_hkd"]) == figures["turnover_hkd"]
        market = redis_client.hgetall(f"{prefix}latest:market")
        assert float(market[b"turnover_hkd"]) == final["market"]["turnover_hkd"]
        southbound = redis_client.hgetall(f"{prefix}latest:southbound:total")
        assert float(southbound[b"net_hkd"]) == final["southbound"]["total"]["net_hkd"]
        # Prometheus: the worker's /metrics
        import urllib.request

        from prometheus_client.parser import text_string_to_metric_families

        body = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics").read()
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
                   for family in text_string_to_metric_families(body.decode())
                   for s in family.samples}
        ticks = {labels: v for (name, labels), v in samples.items()
                 if name == "marketflow_ticks_total"}
        assert sum(ticks.values()) == 4000
        assert {dict(labels)["partition"] for labels in ticks} <= {str(p) for p in range(8)}
        assert samples[("marketflow_market_turnover_hkd", ())] == final["market"]["turnover_hkd"]
        hsi = final["indices"]["HSI"]["change_pct"] / 100
        assert samples[("marketflow_index_change_ratio", (("index", "HSI"),))] == hsi
        fired = sum(v for (name, _), v in samples.items() if name == "marketflow_alerts_total")
        assert fired == len(expected["alerts"])
    finally:
        proc.stop()


def test_two_workers_equal_backtest(stack: Any, tmp_path: Path, expected: dict) -> None:
    topics = unique_topics(stack.bootstrap, "live2")
    env = worker_env(stack.bootstrap, None, topics, f"mf-live-{topics['ticks']}")
    procs = [Worker(env, tmp_path, f"w{i}", free_port()) for i in range(2)]
    try:
        time.sleep(4)
        produce_day(stack.bootstrap, topics)
        alerts, latest = wait_until_final(stack.bootstrap, topics, expected, procs)
        assert_equal_to_backtest(alerts, latest, expected)
        assert all("ticks " in p.text() for p in procs), "both workers processed ticks"
    finally:
        for proc in procs:
            proc.stop()


def test_kill_9_and_restart_gives_the_same_day(stack: Any, tmp_path: Path,
                                               expected: dict) -> None:
    topics = unique_topics(stack.bootstrap, "kill")
    env = worker_env(stack.bootstrap, None, topics, f"mf-kill-{topics['ticks']}")
    first = Worker(env, tmp_path, "first", free_port())
    second = None
    try:
        time.sleep(4)
        import threading

        producer = threading.Thread(target=produce_day, args=(stack.bootstrap, topics, 0.25))
        producer.start()
        time.sleep(2.5)
        first.kill()  # SIGKILL mid-stream
        second = Worker(env, tmp_path, "second", free_port())
        producer.join()
        alerts, latest = wait_until_final(stack.bootstrap, topics, expected, [second])
        assert_equal_to_backtest(alerts, latest, expected)
        assert "rebuilt from" in second.text()
    finally:
        first.stop()
        if second is not None:
            second.stop()


def test_rules_reload_without_restart(stack: Any, tmp_path: Path, expected: dict) -> None:
    """A worker started with no rules picks up the rules file when it changes (an invalid
    version is logged and ignored), and then fires exactly what backtest fires."""
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules: []\n")
    topics = unique_topics(stack.bootstrap, "reload")
    env = worker_env(stack.bootstrap, None, topics, f"mf-reload-{topics['ticks']}",
                     MARKETFLOW_RULES=str(rules))
    proc = Worker(env, tmp_path, "w0", free_port())
    try:
        time.sleep(4)
        rules.write_text("rules:\n  - {id: broken, metric: stock.change_pct, op: '>'}\n")
        wait_for(lambda: "invalid; keeping the previous rules" in proc.text(), 15,
                 "the invalid rules file to be reported")
        assert proc.proc.poll() is None, "an invalid rules file must not stop the worker"
        rules.write_text((SMALL / "rules.yaml").read_text())
        wait_for(lambda: "rules reloaded" in proc.text(), 15, "the rules to be reloaded")
        produce_day(stack.bootstrap, topics)
        alerts, latest = wait_until_final(stack.bootstrap, topics, expected, [proc])
        assert_equal_to_backtest(alerts, latest, expected)
    finally:
        proc.stop()
