"""Intraday history in Redis: the lines of the day, so a page opened at 15:00 shows them
from the open.

Per trading date and subject, a sorted set `{prefix}history:{trading_date}:{type}:{subject}`
of points: score = the snapshot's event time (epoch ms), member = compact JSON
`{"ts": RFC 3339, <figures>}`. At most one point per subject per `interval_ms` of event time
(the latest snapshot of each interval wins, so the day's last figures are always there), at
most `max_points` per set (the oldest go first), and each set expires `ttl_s` after its last
write. Indices, sectors, the market and southbound have history; stocks do not (the page
shows only their latest figures).

`HistorySampler` is pure: it sees every snapshot the worker emits (not only the coalesced
latest ones, so a replay at full speed still leaves one point per interval) and keeps the
points not yet written; `history_points` makes their writes part of the latest sink's one
scripted write per flush (`redis_sink.py`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any, NamedTuple

import orjson

from marketflow.core.records import rfc3339_ms
from marketflow.core.timeutil import from_datetime

# The figures kept per snapshot type, in this order in each point.
HISTORY_FIELDS: dict[str, tuple[str, ...]] = {
    "index": ("level", "change_pct"),
    "sector": ("gain_pct", "eq_gain_pct", "turnover_hkd"),
    "market": ("turnover_hkd", "advancers", "decliners", "unchanged"),
    "southbound": ("buy_hkd", "sell_hkd", "net_hkd"),
}
INTERVAL_MS = 15_000  # one point per subject per 15 s of event time: ~1,700 points a day
MAX_POINTS = 2_880  # 12 hours of 15 s points
TTL_S = 3 * 86_400
MAX_PENDING = 200_000  # points kept through a Redis outage; beyond this the oldest go


class Point(NamedTuple):
    key: str  # the sorted set, without the prefix
    bucket: int  # ts_ms // interval_ms
    ts_ms: int
    member: bytes


def history_key(prefix: str, trading_date: str, kind: str, subject: str) -> str:
    return f"{prefix}history:{trading_date}:{kind}:{subject}"


def ts_ms_of(rfc3339: str) -> int:
    """Epoch ms of an RFC 3339 time as the worker writes it (`...T14:05:00.000+08:00`)."""
    value = rfc3339_ms(rfc3339)  # the decoder's cached reading; other forms below
    return value if value is not None else from_datetime(dt.datetime.fromisoformat(rfc3339))


def point_of(snapshot: dict[str, Any], interval_ms: int = INTERVAL_MS,
             ts_ms: int | None = None) -> Point | None:
    """The history point of a snapshot, or None for a type without history. `ts_ms`: its
    `ts` already read (`HistorySampler` reads each snapshot's once)."""
    fields = HISTORY_FIELDS.get(snapshot.get("type", ""))
    if fields is None:
        return None
    try:
        if ts_ms is None:
            ts_ms = ts_ms_of(snapshot["ts"])
        figures = {"ts": snapshot["ts"], **{name: snapshot[name] for name in fields}}
        key = history_key("", snapshot["trading_date"], snapshot["type"], snapshot["subject"])
    except (KeyError, TypeError, ValueError):
        return None
    return Point(key, ts_ms // interval_ms, ts_ms, orjson.dumps(figures))


class HistorySampler:
    """The points not yet written: per (set, interval) the latest snapshot's point.

    `observe` sees every snapshot the worker emits (hundreds per second of a replayed
    backlog) and keeps only the latest snapshot of each slot; its point (the JSON member)
    is made when a write asks for it, once."""

    def __init__(self, interval_ms: int = INTERVAL_MS, max_pending: int = MAX_PENDING) -> None:
        self.interval_ms = interval_ms
        self.max_pending = max_pending
        # (type, subject, trading date, interval) -> [ts_ms, snapshot, its point or None]
        self._pending: dict[tuple[Any, ...], list[Any]] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def observe(self, snapshots: Iterable[dict[str, Any]]) -> None:
        pending, interval = self._pending, self.interval_ms
        for snapshot in snapshots:
            kind = snapshot.get("type")
            if kind not in HISTORY_FIELDS:
                continue
            try:
                ts_ms = ts_ms_of(snapshot["ts"])
                slot = (kind, snapshot["subject"], snapshot["trading_date"], ts_ms // interval)
                current = pending.get(slot)
            except (KeyError, TypeError, ValueError):
                continue
            if current is None or ts_ms >= current[0]:
                pending.pop(slot, None)  # re-insert: the dict stays in arrival order
                pending[slot] = [ts_ms, snapshot, None]
        while len(pending) > self.max_pending:
            del pending[next(iter(pending))]

    def pending(self) -> list[Point]:
        points = []
        for slot, entry in list(self._pending.items()):
            # (a local, not `entry[2]` tested again after assigning it: compiled, mypyc
            # kept the narrowing of the first test and compared None with None)
            point = entry[2]
            if point is None:
                point = entry[2] = point_of(entry[1], self.interval_ms, entry[0])
                if point is None:  # a snapshot without its figures: nothing to draw
                    del self._pending[slot]
                    continue
            points.append(point)
        return points

    def written(self, points: Iterable[Point]) -> None:
        """Forget points once Redis has them (unless a later snapshot replaced one since)."""
        done = {id(point) for point in points}  # the points stay alive while this runs
        pending = self._pending
        for slot, entry in list(pending.items()):
            if id(entry[2]) in done:
                del pending[slot]


def history_points(prefix: str, points: list[Point], first_key: int,
                   interval_ms: int = INTERVAL_MS) -> tuple[list[str], list[list[str | int]]]:
    """The keys and points of the history part of `redis_sink`'s write script: per point,
    replace whatever its set holds in that interval (the script then trims every set to
    `MAX_POINTS` and refreshes its expiry). Keys are numbered from `first_key` (1-based, as
    Lua's KEYS); every other value is a string."""
    keys: dict[str, int] = {}
    out: list[list[str | int]] = []
    for point in points:
        key = prefix + point.key
        index = keys.setdefault(key, first_key + len(keys))
        start = point.bucket * interval_ms
        out.append([index, str(start), f"({start + interval_ms}", str(point.ts_ms),
                    point.member.decode()])
    return list(keys), out
