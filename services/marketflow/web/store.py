"""What the board reads from Redis: latest snapshots, recent alerts, intraday history.

Read-only; every key is the worker's (docs/contracts.md#redis). One `BoardStore` per
server, on one `redis.asyncio` client whose calls time out (a frozen Redis makes a request
fail with 503, it never hangs the page).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from marketflow.alerts.history import HISTORY_FIELDS
from marketflow.core.timeutil import HKT
from marketflow.web.records import parse_latest_key, snapshot_from_hash
from marketflow.web.session import board_status

REDIS_ERRORS = (RedisError, OSError, TimeoutError)  # what a Redis call raises when it fails
SNAPSHOT_TYPES = ("index", "sector", "stock", "market", "southbound")


def glob_escape(text: str) -> str:
    """`text` matched literally in a Redis SCAN MATCH pattern."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


class BoardStore:
    def __init__(self, client: aioredis.Redis, prefix: str = "mf:") -> None:
        self.client = client
        self.prefix = prefix

    async def _scan(self, pattern: str) -> list[str]:
        keys = [key.decode() if isinstance(key, bytes) else key
                async for key in self.client.scan_iter(match=pattern, count=1000)]
        return sorted(keys)

    async def latest(self) -> dict[str, list[dict[str, Any]]]:
        """Every latest snapshot, by type, each list sorted by subject."""
        keys = await self._scan(glob_escape(self.prefix) + "latest:*")
        parsed = [(key, parse_latest_key(self.prefix, key)) for key in keys]
        wanted = [(key, kind_subject) for key, kind_subject in parsed if kind_subject]
        async with self.client.pipeline(transaction=False) as pipe:
            for key, _ in wanted:
                pipe.hgetall(key)
            hashes = await pipe.execute()
        out: dict[str, list[dict[str, Any]]] = {kind: [] for kind in SNAPSHOT_TYPES}
        for (_, (kind, subject)), raw in zip(wanted, hashes, strict=True):
            fields = {_text(k): _text(v) for k, v in raw.items()}
            record = snapshot_from_hash(kind, subject, fields)
            if record is not None:
                out[kind].append(record)
        return out

    async def alerts(self, limit: int = 50) -> list[dict[str, Any]]:
        """The newest `limit` alerts of the stream, newest first."""
        entries: Any = await self.client.xrevrange(f"{self.prefix}alerts", count=limit)
        alerts = []
        for _, fields in entries or ():
            raw = fields.get(b"json", fields.get("json"))
            if raw is not None:
                alerts.append(orjson.loads(raw))
        return alerts

    async def history_series(self, trading_date: str) -> list[str]:
        """Series names (`{type}:{subject}`) that have history on a date."""
        head = f"{self.prefix}history:{trading_date}:"
        return [key[len(head):] for key in await self._scan(glob_escape(head) + "*")]

    async def history(self, trading_date: str, series: list[str] | None = None,
                      since_ms: int | None = None) -> dict[str, list[dict[str, Any]]]:
        """Points per series (all of the date's when `series` is None), in time order,
        optionally only those after `since_ms`."""
        if series is None:
            series = await self.history_series(trading_date)
        series = [name for name in series if name.partition(":")[0] in HISTORY_FIELDS]
        low = "-inf" if since_ms is None else f"({since_ms}"
        async with self.client.pipeline(transaction=False) as pipe:
            for name in series:
                pipe.zrange(f"{self.prefix}history:{trading_date}:{name}", low, "+inf",
                            byscore=True)
            results = await pipe.execute()
        return {name: [orjson.loads(member) for member in members]
                for name, members in zip(series, results, strict=True)}

    async def board(self, alerts_limit: int = 50,
                    now: dt.datetime | None = None) -> dict[str, Any]:
        """Everything the page draws, in one read: status, snapshots, recent alerts."""
        latest = await self.latest()
        alerts = await self.alerts(alerts_limit)
        market = latest["market"][0] if latest["market"] else None
        return {"status": status_of(latest, now), **{_plural(k): v for k, v in latest.items()
                                                      if k != "market"},
                "market": market, "alerts": alerts}


def status_of(latest: dict[str, list[dict[str, Any]]],
              now: dt.datetime | None = None) -> dict[str, Any]:
    """The board's status from its snapshots: the newest trading date and event time."""
    newest: tuple[str, str] | None = None
    for kind in ("index", "market", "southbound", "sector"):
        for record in latest.get(kind, []):
            candidate = (record["trading_date"], record["ts"])
            if newest is None or candidate > newest:
                newest = candidate
    trading_date, data_ts = newest if newest else (None, None)
    return board_status(now or dt.datetime.now(HKT), data_ts, trading_date)


def _plural(kind: str) -> str:
    return {"index": "indices", "sector": "sectors", "stock": "stocks",
            "southbound": "southbound"}[kind]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
