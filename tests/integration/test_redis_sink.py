"""Redis sinks against a real redis-server: each alert once in the stream and channel."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis

from marketflow.alerts.history import MAX_POINTS
from marketflow.alerts.redis_sink import RedisAlertSink, RedisLatestSink

pytestmark = pytest.mark.integration


def alert(n: int) -> dict[str, Any]:
    return {"alert_id": f"{n:016x}", "rule_id": "hstech-up-2pct", "subject": "HSTECH",
            "metric": "index.change_pct", "value": 2.01, "message": "HSTECH +2.01%"}


def test_alert_published_once_per_id(stack: Any, redis_client: Any) -> None:
    async def run() -> tuple[int, int, list[bytes]]:
        client = aioredis.Redis.from_url(stack.redis_url)
        pubsub = client.pubsub()
        await pubsub.subscribe("t:alerts")
        await pubsub.get_message(timeout=1.0)  # subscribe confirmation
        sink = RedisAlertSink(client, "t:")
        first = await sink.publish_many([alert(1), alert(2)])
        again = await sink.publish_many([alert(1), alert(2), alert(3)])
        messages = []
        for _ in range(10):
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.3)
            if message:
                messages.append(message["data"])
        await pubsub.aclose()
        await client.aclose()
        return first, again, messages

    first, again, messages = asyncio.run(run())
    assert (first, again) == (2, 1)
    entries = redis_client.xrange("t:alerts")
    assert [e[1][b"alert_id"] for e in entries] == [b"0000000000000001", b"0000000000000002",
                                                   b"0000000000000003"]
    assert orjson.loads(entries[0][1][b"json"])["subject"] == "HSTECH"
    assert len(messages) == 3


def test_latest_hashes(stack: Any, redis_client: Any) -> None:
    snapshots = [
        {"type": "sector", "subject": "AI", "trading_date": "2025-11-24",
         "ts": "2025-11-24T16:08:00.000+08:00", "final": False, "gain_pct": 3.1,
         "rolling": {"15m": 0.4, "1m": 0.1}, "top_contributors": [{"symbol": "09988"}]},
        {"type": "sector", "subject": "AI", "trading_date": "2025-11-24",
         "ts": "2025-11-24T16:09:00.000+08:00", "final": True, "gain_pct": 3.25,
         "rolling": {"15m": 0.5, "1m": 0.2}, "top_contributors": []},
        {"type": "southbound", "subject": "total", "trading_date": "2025-11-24",
         "ts": "2025-11-24T16:00:00.000+08:00", "final": True, "net_hkd": 8571340000.0},
        {"type": "market", "subject": "market", "trading_date": "2025-11-24",
         "ts": "2025-11-24T16:09:00.000+08:00", "final": True, "turnover_hkd": 3.026e11},
    ]

    async def run() -> None:
        client = aioredis.Redis.from_url(stack.redis_url)
        await RedisLatestSink(client, "t:").write_many(snapshots)
        await client.aclose()

    asyncio.run(run())
    sector = redis_client.hgetall("t:latest:sector:AI")
    assert float(sector[b"gain_pct"]) == 3.25 and float(sector[b"rolling_15m"]) == 0.5
    assert sector[b"ts"] == b"2025-11-24T16:09:00.000+08:00"
    assert float(redis_client.hget("t:latest:southbound:total", "net_hkd")) == 8571340000.0
    assert float(redis_client.hget("t:latest:market", "turnover_hkd")) == 3.026e11


def test_history_points(stack: Any, redis_client: Any) -> None:
    """One point per subject per 15 s of event time, the interval's latest, in time order;
    the set expires within 3 days."""
    def index(ts: str, level: float) -> dict[str, Any]:
        return {"type": "index", "subject": "HSI", "trading_date": "2025-11-24", "ts": ts,
                "final": False, "name": "Hang Seng", "prev_close": 25220.02, "level": level,
                "change_pct": 0.0}

    first = [index("2025-11-24T09:30:01.000+08:00", 1.0),
             index("2025-11-24T09:30:14.000+08:00", 2.0),
             index("2025-11-24T09:30:16.000+08:00", 3.0)]

    async def run() -> None:
        client = aioredis.Redis.from_url(stack.redis_url)
        sink = RedisLatestSink(client, "t:")
        sink.observe_history(first)
        await sink.write_many(first[-1:])
        # a later snapshot in the second interval replaces its point
        later = [index("2025-11-24T09:30:29.000+08:00", 4.0)]
        sink.observe_history(later)
        await sink.write_many(later)
        await client.aclose()

    asyncio.run(run())
    key = "t:history:2025-11-24:index:HSI"
    points = [orjson.loads(m) for m in redis_client.zrange(key, 0, -1)]
    assert [(p["ts"][11:19], p["level"]) for p in points] == [("09:30:14", 2.0),
                                                            ("09:30:29", 4.0)]
    assert 0 < redis_client.ttl(key) <= 3 * 86_400
    assert float(redis_client.hget("t:latest:index:HSI", "level")) == 4.0


def test_one_write_holds_many_hashes_and_sets(stack: Any, redis_client: Any) -> None:
    """A flush's whole write is one scripted command: every hash with all its fields, every
    history set trimmed to its newest `MAX_POINTS` points and given its expiry."""
    key = "u:history:2025-11-24:sector:AI"
    redis_client.zadd(key, {f"old{n}": n for n in range(MAX_POINTS + 5)})
    sectors = [{"type": "sector", "subject": f"S{n}", "trading_date": "2025-11-24",
                "ts": "2025-11-24T10:00:00.000+08:00", "final": False, "gain_pct": n / 10,
                "eq_gain_pct": 0.5, "turnover_hkd": 1e9 + n, "advancers": n,
                "rolling": {"1m": 0.1, "15m": 0.2}} for n in range(150)]
    sectors[0]["subject"] = "AI"

    async def run() -> None:
        client = aioredis.Redis.from_url(stack.redis_url)
        sink = RedisLatestSink(client, "u:")
        sink.observe_history(sectors)
        await sink.write_many(sectors)
        assert not sink.history.pending()  # written, so forgotten
        await client.aclose()

    asyncio.run(run())
    for n in (0, 1, 149):
        stored = redis_client.hgetall(f"u:latest:sector:{sectors[n]['subject']}")
        assert float(stored[b"gain_pct"]) == n / 10 and int(stored[b"advancers"]) == n
        assert set(stored) == {b"ts", b"final", b"gain_pct", b"eq_gain_pct", b"turnover_hkd",
                               b"advancers", b"rolling_1m", b"rolling_15m", b"trading_date"}
    assert redis_client.zcard(key) == MAX_POINTS  # the oldest went
    newest = orjson.loads(redis_client.zrange(key, -1, -1)[0])
    assert newest["gain_pct"] == 0.0 and newest["ts"].startswith("2025-11-24T10:00:00")
    assert 0 < redis_client.ttl(key) <= 3 * 86_400
    assert redis_client.zcard("u:history:2025-11-24:sector:S149") == 1


def test_any_text_and_number_reach_the_hash_as_written(stack: Any, redis_client: Any) -> None:
    """The write goes to Redis as one JSON document: names with quotes, backslashes,
    control characters and non-ASCII text, and numbers past a double's integers, come
    back byte for byte as `latest_fields` wrote them."""
    from marketflow.alerts.redis_sink import latest_fields

    stock = {"type": "stock", "subject": "00700", "trading_date": "2025-11-24",
             "ts": "2025-11-24T10:00:00.000+08:00", "final": False,
             "name": '騰訊控股 "Tencent"\\ \t\n\x00\x7f\u2028 🐉', "last": 612.345,
             "change_pct": -0.1 / 3, "turnover_hkd": 1e13 - 0.01, "volume": 2**63 - 1,
             "trades": 0}
    empty = {"type": "market", "subject": "market", "trading_date": "", "ts": ""}

    async def run() -> None:
        client = aioredis.Redis.from_url(stack.redis_url)
        await RedisLatestSink(client, "v:").write_many([stock, empty])
        await client.aclose()

    asyncio.run(run())
    stored = redis_client.hgetall("v:latest:stock:00700")
    assert {k.decode(): v.decode() for k, v in stored.items()} == latest_fields(stock)
    assert stored[b"name"].decode() == stock["name"]
    assert int(stored[b"volume"]) == 2**63 - 1
    assert redis_client.hget("v:latest:market", "ts") == b""
