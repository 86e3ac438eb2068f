"""The board's API against a real Redis filled by a real replay: a worker on the real broker
replays the demo day (3,000 trades); every record served validates against `schemas/` and
equals `marketflow backtest` over the same records; `/events` streams what Redis publishes;
`marketflow web` starts, serves the page and stops cleanly."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer

from marketflow.alerts.redis_sink import RedisAlertSink, RedisLatestSink
from marketflow.web.context import WebConfig
from marketflow.web.server import create_app
from tests.integration.harness import (
    Worker,
    backtest_records,
    demo_day,
    demo_env,
    publish_records,
    redis_day_closed,
    unique_topics,
    wait_for,
)
from tests.schemas import validator

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

RULES = ({"rule_id": "southbound-net-inflow-8bn", "metric": "southbound.net_inflow_hkd",
          "window": "day", "op": ">=", "threshold": 8e9, "severity": "critical",
          "subjects": ["total"]},)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Replayed:
    redis_url: str
    prefix: str
    expected: dict[str, Any]
    bootstrap: str
    topics: dict[str, str]


@pytest.fixture(scope="module")
def replayed(stack: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replayed]:
    tmp = tmp_path_factory.mktemp("web")
    records = demo_day()
    expected = backtest_records(records, tmp)
    topics = unique_topics(stack.bootstrap, "web")
    app_id = f"web-{uuid.uuid4().hex[:8]}"
    worker = Worker(demo_env(stack.bootstrap, stack.redis_url, topics, app_id), tmp, "worker",
                    free_port())
    try:
        time.sleep(4)  # let the group form (session timeout 3 s)
        publish_records(stack.bootstrap, topics, records)
        final = expected["final"]["market"]["turnover_hkd"]
        wait_for(lambda: worker.proc.poll() is None and redis_day_closed(
            stack.redis_url, f"{app_id}:", final, len(expected["alerts"])), 90,
            "the day's final snapshots in Redis")
        yield Replayed(stack.redis_url, f"{app_id}:", expected, stack.bootstrap, topics)
    finally:
        worker.stop()


@pytest_asyncio.fixture(loop_scope="function")  # the test's loop, not the session's
async def client(replayed: Replayed) -> AsyncIterator[TestClient]:
    app = create_app(replayed.redis_url, WebConfig(prefix=replayed.prefix, rules=RULES,
                                                   poll_s=0.2))
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def get(client: TestClient, path: str, status: int = 200) -> Any:
    response = await client.get(path)
    assert response.status == status, await response.text()
    return await response.json()


def valid(record: dict[str, Any], schema: str) -> None:
    assert not list(validator(schema).iter_errors(record)), record


async def test_board_equals_the_backtest(client: TestClient, replayed: Replayed) -> None:
    board = await get(client, "/api/board?alerts=500")
    final = replayed.expected["final"]
    for kind in ("indices", "sectors", "stocks", "southbound"):
        for record in board[kind]:
            valid(record, "snapshot")
    valid(board["market"], "market-snapshot")
    for alert in board["alerts"]:
        valid(alert, "alert")
    assert {r["subject"]: (r["level"], r["change_pct"]) for r in board["indices"]} == {
        symbol: (f["level"], f["change_pct"]) for symbol, f in final["indices"].items()}
    assert {r["subject"]: r["gain_pct"] for r in board["sectors"]} == {
        name: f["gain_pct"] for name, f in final["sectors"].items()}
    assert {r["subject"]: r["last"] for r in board["stocks"]} == {
        symbol: f["last"] for symbol, f in final["stocks"].items()}
    assert board["market"]["turnover_hkd"] == final["market"]["turnover_hkd"]
    assert board["market"]["final"] is True
    assert {r["subject"]: r["net_hkd"] for r in board["southbound"]} == {
        channel: f["net_hkd"] for channel, f in final["southbound"].items()}
    assert sorted(a["alert_id"] for a in board["alerts"]) == sorted(
        a["alert_id"] for a in replayed.expected["alerts"])
    emitted = [a["emitted_at"] for a in board["alerts"]]  # newest first, as the stream has them
    assert emitted == sorted(emitted, reverse=True)
    status = board["status"]
    assert status["trading_date"] == "2025-11-24" and status["live"] is False
    assert status["data_ts"] >= "2025-11-24T16:00"
    assert board["config"]["windows"] == ["day", "1m", "5m", "15m", "60m"]
    assert board["config"]["rules"][0]["threshold"] == 8e9


async def test_sectors_per_window_and_weighting(client: TestClient) -> None:
    day = await get(client, "/api/sectors")
    assert (day["window"], day["weight"]) == ("day", "float")
    assert day["ranking"][0]["subject"] == "AI"
    gains = [row["value"] for row in day["ranking"]]
    assert gains == sorted(gains, reverse=True)
    assert [s["subject"] for s in day["sectors"]] == [row["subject"] for row in day["ranking"]]
    for record in day["sectors"]:
        valid(record, "sector-snapshot")
    rolling = await get(client, "/api/sectors?window=15m")
    assert [row["value"] for row in rolling["ranking"]] == [
        s["rolling"]["15m"] for s in rolling["sectors"]]
    equal = await get(client, "/api/sectors?weight=equal")
    assert [row["value"] for row in equal["ranking"]] == [s["eq_gain_pct"]
                                                          for s in equal["sectors"]]
    for bad in ("window=2m", "weight=cap", "window=15m&weight=equal"):
        assert "error" in await get(client, f"/api/sectors?{bad}", 400)
    assert (await get(client, "/api/sectors/AI"))["subject"] == "AI"
    await get(client, "/api/sectors/Nope", 404)


async def test_stocks_market_southbound_alerts(client: TestClient, replayed: Replayed) -> None:
    final = replayed.expected["final"]
    gainers = await get(client, "/api/stocks?order=gainers&limit=3")
    best = max(final["stocks"].items(), key=lambda kv: kv[1]["change_pct"])
    assert len(gainers) == 3 and gainers[0]["subject"] == best[0]
    stock = await get(client, f"/api/stocks/{best[0]}")
    valid(stock, "stock-snapshot")
    await get(client, "/api/stocks?order=nonsense", 400)
    await get(client, "/api/stocks?limit=0", 400)
    market = await get(client, "/api/market")
    assert market["advancers"] == final["market"]["advancers"]
    flows = {r["subject"]: r for r in await get(client, "/api/southbound")}
    assert flows["total"]["net_hkd"] == final["southbound"]["total"]["net_hkd"] > 8e9
    indices = await get(client, "/api/indices")
    assert {i["subject"] for i in indices} == {"HSI", "HSTECH"}
    hstech = await get(client, "/api/indices/HSTECH")
    assert hstech["change_pct"] > 2
    index_alerts = await get(client, "/api/alerts?rule=index-up-2pct")
    assert [(a["subject"], a["rule_id"]) for a in index_alerts] == [("HSTECH", "index-up-2pct")]
    critical = await get(client, "/api/alerts?severity=critical")
    assert [a["rule_id"] for a in critical] == ["southbound-net-inflow-8bn"]
    both = await get(client, "/api/alerts?subject=HSTECH,total&severity=warning&severity=critical")
    assert {a["subject"] for a in both} == {"HSTECH", "total"}
    assert len(await get(client, "/api/alerts?limit=2")) == 2
    await get(client, "/api/alerts?limit=many", 400)


async def test_history_lines(client: TestClient, replayed: Replayed) -> None:
    history = await get(client, "/api/history")
    assert history["trading_date"] == "2025-11-24" and history["interval_s"] == 15
    series = history["series"]
    assert {"index:HSI", "index:HSTECH", "market:market", "southbound:SH", "southbound:SZ",
            "southbound:total", "sector:AI"} <= set(series)
    hstech = series["index:HSTECH"]
    times = [p["ts"] for p in hstech]
    # flat out, the worker snapshots an index once per record it reads (50 ticks of a
    # partition): one point per record at least, from the first minutes to the close
    assert times == sorted(times) and times[0] < "2025-11-24T09:35" and times[-1] > "2025-11-24T16"
    buckets = [(int(p["ts"][11:13]) * 3600 + int(p["ts"][14:16]) * 60 + int(p["ts"][17:19]))
               // 15 for p in hstech]
    assert len(buckets) == len(set(buckets)), "at most one point per 15 s"
    assert len(hstech) > 100, "the morning and the afternoon"
    final = replayed.expected["final"]
    assert hstech[-1]["level"] == final["indices"]["HSTECH"]["level"]
    total = series["southbound:total"]
    assert total[-1]["net_hkd"] == final["southbound"]["total"]["net_hkd"]
    assert total[0]["net_hkd"] < 8e9 < total[-1]["net_hkd"]
    only = await get(client, "/api/history?series=index:HSI&date=2025-11-24")
    assert list(only["series"]) == ["index:HSI"]
    since = hstech[-3]["ts"]
    from marketflow.alerts.history import ts_ms_of

    later = await get(client, f"/api/history?series=index:HSTECH&since={ts_ms_of(since)}")
    assert [p["ts"] for p in later["series"]["index:HSTECH"]] == times[-2:]
    await get(client, "/api/history?date=24-11-2025", 400)
    assert (await get(client, "/api/history?date=2001-01-01"))["series"] == {}


async def read_events(response: Any, wanted: set[str], timeout: float) -> dict[str, Any]:
    """Server-sent events until every `wanted` event name has arrived."""
    got: dict[str, Any] = {}
    event = None
    deadline = asyncio.get_running_loop().time() + timeout
    while not wanted <= set(got):
        remaining = deadline - asyncio.get_running_loop().time()
        assert remaining > 0, f"only {sorted(got)} of {sorted(wanted)} arrived"
        line = (await asyncio.wait_for(response.content.readline(), remaining)).decode()
        if line.startswith("event: "):
            event = line[7:].strip()
        elif line.startswith("data: ") and event is not None:
            got.setdefault(event, []).append(orjson.loads(line[6:]))
    return got


async def test_events_stream_what_redis_publishes(client: TestClient,
                                                  replayed: Replayed) -> None:
    response = await client.get("/events")
    assert response.headers["Content-Type"].startswith("text/event-stream")
    first = await read_events(response, {"hello", "status"}, 10)
    hello = first["hello"][0]
    assert hello["market"]["final"] is True
    assert len(hello["alerts"]) == len(replayed.expected["alerts"])
    # a new alert on the channel and a changed snapshot reach the open stream
    redis = aioredis.Redis.from_url(replayed.redis_url)
    tag = uuid.uuid4().hex[:16]
    alert = {**replayed.expected["alerts"][0], "alert_id": tag, "emitted_at":
             "2025-11-24T16:30:00.000+08:00"}
    await RedisAlertSink(redis, replayed.prefix).publish_many([alert])
    market = {**hello["market"], "ts": "2025-11-24T16:30:00.000+08:00", "final": False,
              "turnover_hkd": hello["market"]["turnover_hkd"] + 1}
    await RedisLatestSink(redis, replayed.prefix).write_many([market])
    try:
        live = await read_events(response, {"alert", "snapshots"}, 10)
        assert live["alert"][0]["alert_id"] == tag
        changed = [r for batch in live["snapshots"] for r in batch]
        assert market in changed
    finally:  # leave the replayed day as it was for the other tests
        await RedisLatestSink(redis, replayed.prefix).write_many([hello["market"]])
        await redis.xdel(f"{replayed.prefix}alerts",
                         *[entry_id for entry_id, fields in await redis.xrange(
                             f"{replayed.prefix}alerts") if fields[b"alert_id"] == tag.encode()])
        await redis.aclose()
        response.close()


async def test_redis_down_is_503() -> None:
    app = create_app(f"redis://127.0.0.1:{free_port()}/0", WebConfig())
    async with TestClient(TestServer(app)) as client:
        assert "Redis unavailable" in (await get(client, "/api/board", 503))["error"]
        assert (await get(client, "/healthz", 503))["redis"] == "down"
        response = await client.get("/events")
        assert b'"redis":"down"' in await asyncio.wait_for(response.content.read(), 10)


def test_web_command_serves_the_page(replayed: Replayed, tmp_path: Path) -> None:
    """`marketflow web`: the page and its assets (no CDN), the API; SIGTERM stops it with
    exit 0; a busy port or an unreachable Redis is exit 1 (no password printed); no Redis
    configured is exit 2."""
    import urllib.request

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARKETFLOW_")}
    env.update(MARKETFLOW_REDIS_URL=replayed.redis_url, MARKETFLOW_REDIS_PREFIX=replayed.prefix,
               MARKETFLOW_WEB_PORT=str(port), MARKETFLOW_STATE_DIR=str(tmp_path))
    command = [sys.executable, "-m", "marketflow.cli", "web"]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"

        def answers() -> bool:
            try:
                return urllib.request.urlopen(f"{base}/healthz", timeout=1).status == 200
            except OSError:
                return False

        wait_for(answers, 20, "marketflow web to answer", interval=0.2)
        page = urllib.request.urlopen(f"{base}/").read().decode()
        assert "HK market board" in page and "http" not in page.replace(
            'name="viewport"', "")  # every asset is local
        for asset in ("/static/board.js", "/static/format.js", "/static/board.css",
                      "/static/vendor/uplot/uPlot.iife.min.js",
                      "/static/vendor/uplot/uPlot.min.css"):
            assert urllib.request.urlopen(base + asset).status == 200, asset
        board = orjson.loads(urllib.request.urlopen(f"{base}/api/board").read())
        assert board["market"]["final"] is True
        busy = subprocess.run(command, env=env, capture_output=True, text=True, timeout=30)
        assert busy.returncode == 1 and f"cannot listen on 127.0.0.1:{port}" in busy.stderr
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert f"market board: http://127.0.0.1:{port}/" in err.decode()
    # Redis unreachable: exit 1, and its password is never printed
    env["MARKETFLOW_REDIS_URL"] = f"redis://:hunter22secret@127.0.0.1:{free_port()}/0"
    down = subprocess.run(command, env=env, capture_output=True, text=True, timeout=30)
    assert down.returncode == 1 and "cannot reach Redis" in down.stderr
    assert "hunter22secret" not in down.stdout + down.stderr
    del env["MARKETFLOW_REDIS_URL"]  # and no stack running in the state dir: exit 2
    none = subprocess.run(command, env=env, capture_output=True, text=True, timeout=30)
    assert none.returncode == 2 and "MARKETFLOW_REDIS_URL" in none.stderr


def test_tail_follows_the_workers_alerts(replayed: Replayed) -> None:
    """What a script does: `marketflow tail mf.alerts --json` (here from the start of the
    day) gives every alert the worker emitted, one JSON object per line."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARKETFLOW_")}
    env.update(MARKETFLOW_KAFKA_BOOTSTRAP=replayed.bootstrap,
               MARKETFLOW_TOPIC_ALERTS=replayed.topics["alerts"])
    done = subprocess.run([sys.executable, "-m", "marketflow.cli", "tail", "alerts", "--from",
                           "today", "--json", "--idle", "2"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    alerts = [orjson.loads(line) for line in done.stdout.splitlines()]
    for alert in alerts:
        valid(alert, "alert")
    assert sorted(a["alert_id"] for a in alerts) == sorted(
        a["alert_id"] for a in replayed.expected["alerts"])
