"""Frame partials between workers: their record format on the partials topic, and the
in-process hand-off to an aggregator that lives in the same worker.

The core's `FramePartial` is what a partition hands to the sector aggregator; this module
is how the live worker carries it. Every partial goes to `mf.internal.frame-partials`
(one partition, so exactly one worker aggregates; the topic is also what a successor
aggregator rebuilds from). When the aggregator lives in the worker that owns the ticks
partition, the partial is also handed over in-process, saving the round trip through
Kafka (see docs/design.md, "Latency").
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import orjson

from marketflow.core.frames import FrameGroup, FramePartial
from marketflow.core.timeutil import day_number

PARTIALS_PER_RECORD = 64  # bounds a record (a rebuild re-sends a partition's whole day)


@dataclass(slots=True, init=False)  # its own __init__: see core/frames.py
class Shipped:
    """A partial as the worker ships it: the worker that sent it (`origin`), its number
    among that worker's partials of the same source (`seq`), and the aggregator that
    already has it in-process (`applied_by`, empty if none). Never changed once made."""

    partial: FramePartial
    origin: str
    seq: int
    applied_by: str

    def __init__(self, partial: FramePartial, origin: str = "", seq: int = 0,
                 applied_by: str = "") -> None:
        self.partial = partial
        self.origin = origin
        self.seq = seq
        self.applied_by = applied_by

    def to_json(self) -> dict[str, Any]:
        """The partial as a JSON-ready dict; its groups stay `FrameGroup` dataclasses,
        which orjson writes natively as `{"day", "frame", "ticks", "stocks": {symbol:
        [last, turnover]}, "market_turnover"}` (no Python-level copy per group)."""
        partial = self.partial
        out: dict[str, Any] = {
            "source": partial.source,
            "watermark": partial.watermark,
            "groups": partial.groups,
        }
        if self.origin:
            out["origin"], out["seq"] = self.origin, self.seq
        return out

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Shipped:
        """Groups as objects (what `to_json` writes) or as the arrays
        `[day, frame, ticks, market_turnover, [[symbol, last, turnover], ...]]` that
        earlier versions wrote (still read: the topic may hold them across an upgrade)."""
        groups = tuple(_group(raw) for raw in obj["groups"])
        partial = FramePartial(int(obj["source"]), int(obj["watermark"]), groups)
        return cls(partial, str(obj.get("origin", "")), int(obj.get("seq", 0)))


def _group(raw: Any) -> FrameGroup:
    if type(raw) is dict:
        stocks = {s: (last, t) for s, (last, t) in raw["stocks"].items()}
        return FrameGroup(raw["day"], raw["frame"], raw["ticks"], stocks,
                          raw["market_turnover"])
    day, frame, ticks, market, rows = raw
    return FrameGroup(day, frame, ticks, {s: (last, t) for s, last, t in rows}, market)


def encode_partials(shipped: list[Shipped], per_record: int = PARTIALS_PER_RECORD) -> list[bytes]:
    """Records of the partials topic: consecutive partials with the same `applied_by`
    share a record (at most `per_record` of them), `{"applied_by": tag, "partials": [...]}`
    with the tag first, so the aggregator that has them already can skip the record
    without decoding it (see `applied_prefix`)."""
    out: list[bytes] = []
    i = 0
    while i < len(shipped):
        tag = shipped[i].applied_by
        j = i + 1
        while j < len(shipped) and j - i < per_record and shipped[j].applied_by == tag:
            j += 1
        out.append(orjson.dumps({"applied_by": tag,
                                 "partials": [p.to_json() for p in shipped[i:j]]}))
        i = j
    return out


def applied_prefix(tag: str) -> bytes:
    """How a record of partials all applied by aggregator `tag` begins."""
    return orjson.dumps({"applied_by": tag})[:-1] + b","


def decode_partials(value: bytes) -> list[Shipped]:
    """The partials of a partials-topic record. Raises orjson.JSONDecodeError, KeyError,
    TypeError or ValueError for a record that is not one."""
    obj = orjson.loads(value)
    return [Shipped.from_json(item) for item in obj["partials"]]


class Handoff:
    """Which partials may go to the co-located aggregator in-process, and in what order.

    A source's groups must reach the aggregator in order: a partial sent by the topic
    alone (before the aggregator was here, or while it replayed the topic) must be read
    there first. Until it is, the source's newer partials are held here and handed over
    in order when it comes (the topic has one partition: by then every earlier partial of
    that source, whoever sent it, is in too). Every partial still goes to the topic, for
    recovery and for a successor aggregator, tagged with this aggregator's token when it
    has it or will have it in-process, so that it skips its own copies.
    """

    def __init__(self) -> None:
        self.worker_id = uuid.uuid4().hex[:12]
        self.token = ""  # the aggregator of this worker, if any
        self.own_prefix = b"\x00"  # no aggregator yet: matches no record
        self._sent: dict[int, int] = {}  # source -> seq of the last partial sent
        self._must_see: dict[int, int] = {}  # source -> last seq sent by the topic only
        self._sent_day: dict[int, int] = {}  # source -> event day of the last partial sent
        self._must_see_day: dict[int, int] = {}  # ... and of the last sent by the topic only
        self._seen: dict[int, int] = {}  # source -> last own seq the aggregator read
        self._held: dict[int, list[Shipped]] = {}  # source -> waiting for the topic

    def new_aggregator(self) -> None:
        """A fresh aggregator here (it then replays the topic): everything this worker
        sent so far must come to it through the topic before the in-process path opens."""
        self.token = uuid.uuid4().hex[:16]
        self.own_prefix = applied_prefix(self.token)
        self._must_see = dict(self._sent)
        self._must_see_day = dict(self._sent_day)
        self._seen = {}
        self._held = {}  # held for a former aggregator: it gets them by the topic now

    def stamp(self, partials: list[FramePartial], in_process: bool,
              ) -> tuple[list[Shipped], list[Shipped]]:
        """(every partial stamped for the topic, those the aggregator may apply now)."""
        shipped: list[Shipped] = []
        now: list[Shipped] = []
        for partial in partials:
            source = partial.source
            seq = self._sent.get(source, 0) + 1
            self._sent[source] = seq
            self._sent_day[source] = day = event_day(partial)
            if not in_process:
                self._must_see[source] = seq
                self._must_see_day[source] = day
                shipped.append(Shipped(partial, self.worker_id, seq))
                continue
            item = Shipped(partial, self.worker_id, seq, self.token)
            shipped.append(item)
            if self._caught_up(source) and not self._held.get(source):
                now.append(item)
            else:
                self._held.setdefault(source, []).append(item)
        return shipped, now

    def read_from_topic(self, item: Shipped) -> list[Shipped]:
        """The aggregator read `item` from the topic: the held partials it releases."""
        if item.origin != self.worker_id:
            return []
        source = item.partial.source
        self._seen[source] = max(self._seen.get(source, 0), item.seq)
        if self._held.get(source) and self._caught_up(source):
            return self._held.pop(source)
        return []

    def skipped_before(self, day: int) -> None:
        """The aggregator's replay skipped the records of days before `day` (it starts at
        the current trading day, `daystart.py`): a partial of such a day it still waits
        to read may be among them. It is moot (its groups are of a day the aggregator has
        left), so the wait for it ends here instead of holding the source forever."""
        for source, seq in self._must_see.items():
            seen = self._seen.get(source, 0)
            if seen < seq and self._must_see_day.get(source, -1) < day:
                self._must_see[source] = seen

    def _caught_up(self, source: int) -> bool:
        return self._seen.get(source, 0) >= self._must_see.get(source, 0)


def event_day(partial: FramePartial) -> int:
    """The latest event day a partial speaks of (its groups', its watermark's; -1: none)."""
    days = [g.day for g in partial.groups]
    if partial.watermark >= 0:
        days.append(day_number(partial.watermark))
    return max(days, default=-1)
