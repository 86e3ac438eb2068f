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

from marketflow.alerts.history import MAX_POINTS, TTL_S, HistorySampler, history_points

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
# about 13% of its CPU in redis-py's packing and reply parsing (docs/design.md). The data
# goes as one JSON argument (one C call to encode; Redis, another process, decodes it),
# every value a string (cjson would turn numbers into doubles). KEYS: the hashes, then the
# history sets. ARGV[1]: [[fields and values of each hash], [per point: its set's index
# in KEYS, the interval's start, "(" + its end, the score, the member]]; ARGV[2], ARGV[3]:
# the points a set keeps and its time to live.
_WRITE_LATEST = """
local data = cjson.decode(ARGV[1])
local hashes, points = data[1], data[2]
local keep, ttl = tonumber(ARGV[2]), tonumber(ARGV[3])
for i = 1, #hashes do
  redis.call('HSET', KEYS[i], unpack(hashes[i]))
end
for p = 1, #points do
  local point = points[p]
  local key = KEYS[tonumber(point[1])]
  redis.call('ZREMRANGEBYSCORE', key, point[2], point[3])
  redis.call('ZADD', key, point[4], point[5])
end
for k = #hashes + 1, #KEYS do
  redis.call('ZREMRANGEBYRANK', KEYS[k], 0, -(keep + 1))
  redis.call('EXPIRE', KEYS[k], ttl)
end
return #hashes + #points
"""

LATEST_KEYS = {"index": "latest:index:{}", "sector": "latest:sector:{}",
               "stock": "latest:stock:{}", "market": "latest:market",
               "southbound": "latest:southbound:{}"}
_SKIP = {"type", "subject", "trading_date"}


def latest_key(prefix: str, snapshot: dict[str, Any]) -> str:
    return prefix + LATEST_KEYS[snapshot["type"]].format(snapshot["subject"])


def latest_fields(snapshot: dict[str, Any]) -> dict[str, str]:
    """Flat hash fields of a snapshot: numbers as their repr, nested values as JSON."""
    items = latest_items(snapshot)
    return dict(zip(items[::2], items[1::2], strict=True))


def latest_items(snapshot: dict[str, Any]) -> list[str]:
    """`latest_fields` as HSET takes them: field, value, field, value..."""
    items: list[str] = []
    for name, value in snapshot.items():
        if name in _SKIP:
            continue
        if name == "rolling":
            for window, gain in value.items():
                items += (f"rolling_{window}", repr(gain))
        elif isinstance(value, list | dict):
            items += (name, orjson.dumps(value).decode())
        elif isinstance(value, bool):
            items += (name, "1" if value else "0")
        elif isinstance(value, float | int):
            items += (name, repr(value))
        else:
            items += (name, str(value))
    items += ("trading_date", str(snapshot.get("trading_date", "")))
    return items


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
        latest: dict[str, list[str]] = {}
        for snapshot in snapshots:  # the last one per key wins
            latest[latest_key(self.prefix, snapshot)] = latest_items(snapshot)
        history_keys, history = history_points(self.prefix, points, len(latest) + 1)
        payload = orjson.dumps([list(latest.values()), history])
        await self._write(keys=[*latest, *history_keys],
                          args=[payload, MAX_POINTS, TTL_S])
        self.history.written(points)


def connect_sinks(redis_url: str, prefix: str = "mf:", timeout_s: float = 2.0,
                  ) -> tuple[RedisAlertSink, RedisLatestSink]:
    """Sinks on one client whose every call gives up after `timeout_s` (a frozen Redis must
    not hold the worker: its writes wait in `stream/redis_writer.py` and are retried)."""
    client = aioredis.Redis.from_url(redis_url, socket_timeout=timeout_s,
                                     socket_connect_timeout=timeout_s)
    return RedisAlertSink(client, prefix), RedisLatestSink(client, prefix)
