"""What the core emits: alerts, snapshots and frame partials, drained by the adapter."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson


@dataclass(slots=True, frozen=True)
class FrameGroup:
    """Absolute state, at the end of one event-time frame, of what one partition changed.

    `stocks` maps a universe symbol to (last price in thousandths, turnover in cents);
    `market_turnover` is the partition's cumulative turnover of the day (every trade,
    universe or not). Absolute values make re-delivery harmless: applying a group twice
    changes nothing.
    """

    day: int
    frame: int
    ticks: int
    stocks: dict[str, tuple[int, int]]
    market_turnover: int


@dataclass(slots=True, frozen=True)
class FramePartial:
    """One partition's closed frame groups plus its watermark (largest event time seen)."""

    source: int
    watermark: int
    groups: tuple[FrameGroup, ...]
    # set by the live adapter: the worker that sent it, its number among that worker's
    # partials of this source, and the aggregator that already has it (got it in-process)
    origin: str = ""
    seq: int = 0
    applied_by: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "source": self.source,
            "watermark": self.watermark,
            "groups": [
                [g.day, g.frame, g.ticks, g.market_turnover,
                 [[symbol, last, turnover] for symbol, (last, turnover) in g.stocks.items()]]
                for g in self.groups
            ],
        }
        if self.origin:
            out["origin"], out["seq"] = self.origin, self.seq
        return out

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> FramePartial:
        groups = tuple(
            FrameGroup(day, frame, ticks, {s: (last, t) for s, last, t in stocks}, market)
            for day, frame, ticks, market, stocks in obj["groups"]
        )
        return cls(int(obj["source"]), int(obj["watermark"]), groups,
                   str(obj.get("origin", "")), int(obj.get("seq", 0)))


PARTIALS_PER_RECORD = 64  # bounds a record (a rebuild re-sends a partition's whole day)


def encode_partials(partials: list[FramePartial],
                    per_record: int = PARTIALS_PER_RECORD) -> list[bytes]:
    """Records of the partials topic: consecutive partials with the same `applied_by`
    share a record (at most `per_record` of them), `{"applied_by": tag, "partials": [...]}`
    with the tag first, so the aggregator that has them already can skip the record
    without decoding it (see `applied_prefix`)."""
    out: list[bytes] = []
    i = 0
    while i < len(partials):
        tag = partials[i].applied_by
        j = i + 1
        while j < len(partials) and j - i < per_record and partials[j].applied_by == tag:
            j += 1
        out.append(orjson.dumps({"applied_by": tag,
                                 "partials": [p.to_json() for p in partials[i:j]]}))
        i = j
    return out


def applied_prefix(tag: str) -> bytes:
    """How a record of partials all applied by aggregator `tag` begins."""
    return orjson.dumps({"applied_by": tag})[:-1] + b","


def decode_partials(value: bytes) -> tuple[str, list[dict[str, Any]]]:
    """(applied_by, partials as JSON objects) of a partials-topic record."""
    obj = orjson.loads(value)
    return str(obj["applied_by"]), list(obj["partials"])


@dataclass(slots=True)
class Outbox:
    alerts: list[dict[str, Any]] = field(default_factory=list)
    snapshots: list[dict[str, Any]] = field(default_factory=list)
    partials: list[FramePartial] = field(default_factory=list)

    def drain(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[FramePartial]]:
        out = (self.alerts, self.snapshots, self.partials)
        self.alerts, self.snapshots, self.partials = [], [], []
        return out
