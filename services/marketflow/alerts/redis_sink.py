"""Redis sinks: the alerts stream and channel (exactly once per alert id), latest hashes.

Keys (prefix `mf:` by default): stream and channel `{prefix}alerts`; hashes
`{prefix}latest:index:{symbol}`, `latest:sector:{name}`, `latest:stock:{symbol}`,
`latest:market`, `latest:southbound:{SH|SZ|total}` with the backtest's fields (rolling
gains flattened as `rolling_{window}`) plus `ts`; the intraday history sorted sets
`{prefix}history:{trading_date}:{type}:{subject}` (see `alerts/history.py`), written in the
same round trip as the hashes.
"""

from __future__ import annotations

from typing import Any

import orjson
import redis.asyncio as aioredis

from marketflow.alerts.history import HistorySampler, history_args

# Atomic: mark the id seen, and only if it was new append to the stream and publish.
_PUBLISH_ONCE = """
local fresh = 0
for i = 3, #ARGV, 4 do
  local seen = KEYS[2] .. ARGV[i]
  if redis.call('SET', seen, '1', 'NX', 'EX', tonumber(ARGV[2])) then
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', tonumber(ARGV[1]), '*',
               'alert_id', ARGV[i], 'rule_id', ARGV[i + 1], 'subject', ARGV[i + 2],
               'json', ARGV[i + 3])
    redis.call('PUBLISH', KEYS[1], ARGV[i + 3])
    fresh = fresh + 1
  end
end
return fresh
"""

# Every latest hash and history write of a flush in one command: on a backlog nearly every
# subject changes between two flushes (every 100 ms), and a command per key cost the worker
# about 13% of its CPU in redis-py's packing and reply parsing (docs/design.md). KEYS: the
# hashes, then the history sets. ARGV: the hash count, per hash the number of field and
# value arguments and then them; the point count, max points, ttl, per point its set's
# index in KEYS, the interval's start, "(" + its end, the score and the member.
_WRITE_LATEST = """
local a = 1
local hashes = tonumber(ARGV[a])
a = a + 1
for i = 1, hashes do
  local n = tonumber(ARGV[a])
  redis.call('HSET', KEYS[i], unpack(ARGV, a + 1, a + n))
  a = a + n + 1
end
local points, keep, ttl = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
a = a + 3
for p = 1, points do
  local key = KEYS[tonumber(ARGV[a])]
  redis.call('ZREMRANGEBYSCORE', key, ARGV[a + 1], ARGV[a + 2])
  redis.call('ZADD', key, ARGV[a + 3], ARGV[a + 4])
  a = a + 5
end
for k = hashes + 1, #KEYS do
  redis.call('ZREMRANGEBYRANK', KEYS[k], 0, -(keep + 1))
  redis.call('EXPIRE', KEYS[k], ttl)
end
return hashes + points
"""

LATEST_KEYS = {"index": "latest:index:{}", "sector": "latest:sector:{}",
               "stock": "latest:stock:{}", "market": "latest:market",
               "southbound": "latest:southbound:{}"}
_SKIP = {"type", "subject", "trading_date"}


def latest_key(prefix: str, snapshot: dict[str, Any]) -> str:
    return prefix + LATEST_KEYS[snapshot["type"]].format(snapshot["subject"])


def latest_fields(snapshot: dict[str, Any]) -> dict[str, str]:
    """Flat hash fields of a snapshot: numbers as their repr, nested values as JSON."""
    fields: dict[str, str] = {}
    for name, value in snapshot.items():
        if name in _SKIP:
            continue
        if name == "rolling":
            for window, gain in value.items():
                fields[f"rolling_{window}"] = repr(gain)
        elif isinstance(value, list | dict):
            fields[name] = orjson.dumps(value).decode()
        elif isinstance(value, bool):
            fields[name] = "1" if value else "0"
        elif isinstance(value, float | int):
            fields[name] = repr(value)
        else:
            fields[name] = str(value)
    fields["trading_date"] = str(snapshot.get("trading_date", ""))
    return fields


class RedisAlertSink:
    def __init__(self, client: aioredis.Redis, prefix: str = "mf:", maxlen: int = 100_000,
                 ttl_s: int = 3 * 86_400) -> None:
        self.client = client
        self.prefix = prefix
        self.maxlen = maxlen
        self.ttl_s = ttl_s
        self._script = client.register_script(_PUBLISH_ONCE)

    async def publish_many(self, alerts: list[dict[str, Any]]) -> int:
        """Append each alert once (by alert_id); returns how many were new."""
        if not alerts:
            return 0
        args: list[str] = [str(self.maxlen), str(self.ttl_s)]
        for alert in alerts:
            args += [alert["alert_id"], alert["rule_id"], alert["subject"],
                     orjson.dumps(alert).decode()]
        keys = [f"{self.prefix}alerts", f"{self.prefix}alerts:seen:"]
        return int(await self._script(keys=keys, args=args))


class RedisLatestSink:
    def __init__(self, client: aioredis.Redis, prefix: str = "mf:",
                 history: HistorySampler | None = None) -> None:
        self.client = client
        self.prefix = prefix
        self.history = history if history is not None else HistorySampler()
        self._write = client.register_script(_WRITE_LATEST)

    def observe_history(self, snapshots: list[dict[str, Any]]) -> None:
        """Every snapshot emitted (before coalescing): its history point waits for the next
        `write_many`, and through a Redis outage."""
        self.history.observe(snapshots)

    async def write_many(self, snapshots: list[dict[str, Any]]) -> None:
        points = self.history.pending()
        if not snapshots and not points:
            return
        latest: dict[str, dict[str, str]] = {}
        for snapshot in snapshots:  # the last one per key wins
            latest[latest_key(self.prefix, snapshot)] = latest_fields(snapshot)
        args: list[str | int] = [len(latest)]
        for fields in latest.values():
            args.append(2 * len(fields))
            for item in fields.items():
                args += item
        history_keys, history = history_args(self.prefix, points, len(latest) + 1)
        await self._write(keys=[*latest, *history_keys], args=args + history)
        self.history.written(points)


def connect_sinks(redis_url: str, prefix: str = "mf:", timeout_s: float = 2.0,
                  ) -> tuple[RedisAlertSink, RedisLatestSink]:
    """Sinks on one client whose every call gives up after `timeout_s` (a frozen Redis must
    not hold the worker: its writes wait in `stream/redis_writer.py` and are retried)."""
    client = aioredis.Redis.from_url(redis_url, socket_timeout=timeout_s,
                                     socket_connect_timeout=timeout_s)
    return RedisAlertSink(client, prefix), RedisLatestSink(client, prefix)
