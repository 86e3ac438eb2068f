"""Where a rebuild starts: the first offset of the current trading day (no I/O here).

A worker that takes over a partition rebuilds its state by replaying what was processed
before (`app.py`, `MarketflowApp.rebuild`). The processors reset at a day change, so only
the current day's records matter: the replay starts at the first offset of the day of the
last record processed (offset `until - 1`), by that record's Kafka timestamp and its Hong
Kong date. Kafka timestamps, not event times, because they are what the broker indexes and
because a replay of an old day (the demo, a backfill) is stamped with the day it is
produced: everything produced since the day began is replayed, whatever its event time.

The start is found, in this order, by (`find_start`):
1. the broker's time index (ListOffsets by timestamp, `offsets_for_times`): right on Apache
   Kafka; the embedded tansu broker answers the partition's first offset whatever the time,
   which the checks below refuse;
2. a checkpoint: the first offset of each day, recorded by the worker as it reads
   (`DayWatch`) in the `mf.internal.checkpoints` topic (`replay.py`, `CheckpointBook`);
3. the partition's earliest offset, with the reasons the others were refused.

Every candidate is checked against the records around it (`start_refused`): stamped at or
after the day's start, the record before it stamped before (an answer too late would skip
records, one too early only replays more), and none of the records before it of the event
day being rebuilt (the day of the last records processed). The last check keeps a replay of
an old day that was produced across midnight whole: the start then steps back a day at a
time until nothing of the current event day lies before it.

`DAY_START_MARGIN_MS`: the day's records are taken from 10 minutes before Hong Kong
midnight, so a record of the new day stamped a little early (a producer's clock behind)
is still replayed. Replaying a little of the previous day is harmless (the processors
reset at the day change; its alerts are not emitted again, see `Start.partial_through`);
skipping a record of the current day is not.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from marketflow.core.records import RecordError, parse_southbound
from marketflow.core.timeutil import day_bounds, day_number, from_datetime, trading_date
from marketflow.ingest.batches import split_ticks
from marketflow.stream.partials import decode_partials, event_day

DAY_START_MARGIN_MS = 10 * 60_000
GUARD_RECORDS = 16  # records read before a candidate start (and before `until`) for event days
MAX_DAYS_BACK = 8  # a week's retention, and a day more

Record = tuple[int, bytes, int]  # offset, value, Kafka timestamp (ms)
EventDay = Callable[[bytes], int | None]


def day_start_ms(day: int, margin_ms: int = DAY_START_MARGIN_MS) -> int:
    """The Kafka timestamp from which the records of day `day` (a `day_number`) are
    replayed: Hong Kong midnight, less the margin."""
    return day_bounds(day)[0] - margin_ms


def replay_day(ts_ms: int, margin_ms: int = DAY_START_MARGIN_MS) -> int:
    """The day whose replay starts with a record stamped `ts_ms`: its Hong Kong date, the
    last `margin_ms` before midnight counting as the next day (`day_start_ms`'s inverse)."""
    return day_number(ts_ms + margin_ms)


def date_day(date: str) -> int:
    """The `day_number` of a Hong Kong date written YYYY-MM-DD."""
    return day_number(from_datetime(dt.datetime.fromisoformat(date)))  # naive: Hong Kong


def day_date(day: int) -> str:
    return trading_date(day_bounds(day)[0])


# -- the event day of a record, per topic (None: no event time in it) ----------------------

def ticks_day(value: bytes) -> int | None:
    """The latest Hong Kong date among the ticks of an `md.ticks` record."""
    try:
        ticks, _ = split_ticks(orjson.loads(value))
    except orjson.JSONDecodeError:
        return None
    return day_number(max(t.ts for t in ticks)) if ticks else None


def southbound_day(value: bytes) -> int | None:
    try:
        return day_number(parse_southbound(orjson.loads(value)).ts)
    except (orjson.JSONDecodeError, RecordError):
        return None


def partials_day(value: bytes) -> int | None:
    """The latest day among a partials record's groups and watermarks."""
    try:
        items = decode_partials(value)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None
    day = max((event_day(item.partial) for item in items), default=-1)
    return None if day < 0 else day


def latest_day(records: Iterable[Record], event_day: EventDay) -> int | None:
    days = [d for d in (event_day(value) for _, value, _ in records) if d is not None]
    return max(days, default=None)


# -- checkpoints ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Checkpoint:
    """`first_offset` is the first offset of `topic[partition]` stamped at or after the
    start of `day` (`day_start_ms`): what the time index would answer."""

    topic: str
    partition: int
    day: int
    first_offset: int

    def key(self) -> bytes:
        return f"{self.topic}|{self.partition}|{day_date(self.day)}".encode()

    def to_json(self) -> bytes:
        return orjson.dumps({"topic": self.topic, "partition": self.partition,
                             "trading_date": day_date(self.day),
                             "first_offset": self.first_offset})

    @classmethod
    def from_json(cls, value: bytes) -> Checkpoint:
        """Raises ValueError, KeyError or TypeError for a record that is not one."""
        obj = orjson.loads(value)
        return cls(str(obj["topic"]), int(obj["partition"]), date_day(obj["trading_date"]),
                   int(obj["first_offset"]))


class DayWatch:
    """Which days of each partition have their first offset recorded, and the checkpoints
    to write as the records of a new day come in.

    Every record of a partition must pass through `observe` in offset order from the offset
    its rebuild started at (`start`); a day's first record is then the first one seen
    stamped at or after its start (timestamps need not be in order: the latest day seen so
    far is what counts)."""

    def __init__(self, margin_ms: int = DAY_START_MARGIN_MS) -> None:
        self.margin_ms = margin_ms
        self.latest: dict[tuple[str, int], int | None] = {}

    def start(self, topic: str, partition: int, recorded_day: int | None) -> None:
        """Reading resumes at a start offset; `recorded_day` is the latest day whose first
        offset is known to lie at or before it (None: none, e.g. the earliest offset)."""
        self.latest[(topic, partition)] = recorded_day

    def forget(self, topic: str, partition: int) -> None:
        self.latest.pop((topic, partition), None)

    def observe(self, topic: str, partition: int, records: Sequence[tuple[int, Any, int]],
                ) -> list[Checkpoint]:
        """(offset, value, Kafka timestamp) records, consecutive: the checkpoints of the
        days they begin."""
        key = (topic, partition)
        if key not in self.latest or not records:
            return []  # not rebuilt here (yet): its rebuild starts the watch
        latest = self.latest[key]
        margin = self.margin_ms
        newest = max((r[2] for r in records if r[2] is not None), default=-1)
        if newest < 0 or (latest is not None and replay_day(newest, margin) <= latest):
            return []  # the usual case: nothing new
        out = []
        for offset, _, ts in records:
            if ts is None or ts < 0:
                continue
            day = replay_day(ts, margin)
            if latest is None or day > latest:
                latest = day
                out.append(Checkpoint(topic, partition, day, offset))
        self.latest[key] = latest
        return out


# -- choosing the start -----------------------------------------------------------------------

class PartitionView(Protocol):
    """What `find_start` asks of one partition of the broker."""

    async def earliest(self) -> int: ...

    async def offset_for_time(self, ts_ms: int) -> int | None:
        """The broker's answer to ListOffsets by timestamp (None: no answer)."""
        ...

    async def records(self, start: int, stop: int) -> list[Record]:
        """The records of offsets [start, stop) (fewer if some cannot be read)."""
        ...


@dataclass(frozen=True, slots=True)
class Around:
    """The partition around a candidate start offset."""

    ts: int | None  # Kafka timestamp of the record at the candidate (None: none read)
    prev_ts: int | None  # of the record just before (None: none read)
    prev_day: int | None  # latest event day among the GUARD_RECORDS records before


def start_refused(offset: int, target_ms: int, earliest: int, until: int,
                  last_day: int | None, around: Around) -> str | None:
    """Why a replay of the day beginning at `target_ms` must not start at `offset` (None:
    it may). `last_day` is the latest event day among the last records processed."""
    if offset >= until:
        return "it lies after the last record processed"
    if around.ts is None:
        return "its record cannot be read"
    if around.ts < target_ms:
        return "its record is stamped before the day's start"
    if offset == earliest:
        return None  # nothing before it to skip
    if around.prev_ts is None:
        return "the record before it cannot be read"
    if around.prev_ts >= target_ms:
        return "the record before it is stamped after the day's start"
    if last_day is None:
        return "no event time in the last records processed"
    if around.prev_day is None:
        return "no event time in the records before it"
    if around.prev_day >= last_day:
        return f"the records before it are of {day_date(around.prev_day)} already"
    return None


@dataclass(slots=True)
class Start:
    """Where a rebuild replays from, how it was found, and what it skips."""

    offset: int
    earliest: int
    via: str  # "time index", "checkpoint", "partition start" (the partition begins on the
    # day: nothing to skip), "earliest" (no day start found) or "nothing" (to replay)
    day: int | None = None  # the day (Kafka timestamps) it starts
    partial_day: int | None = None  # latest event day before the start: replayed in part
    refused: list[str] = field(default_factory=list)

    @property
    def recorded_day(self) -> int | None:
        """The latest day whose first offset is recorded at or before the start."""
        return self.day if self.via == "checkpoint" else None

    @property
    def partial_through(self) -> str | None:
        """Alerts of this date and earlier are not emitted by the replay: their days are
        replayed in part (their state is incomplete), and every alert of them was emitted
        when their records were first processed, before the current day began."""
        return None if self.partial_day is None else day_date(self.partial_day)

    def describe(self) -> str:
        if self.via == "nothing":
            return "nothing processed before"
        why = "; ".join(self.refused[:4])
        if len(self.refused) > 4:
            why += f"; {len(self.refused) - 4} more"
        if self.via == "earliest":
            return "from the earliest offset: " + (why or "no day start")
        date = day_date(self.day) if self.day is not None else "?"
        return f"{date} starts there by the {self.via}" + (f" ({why})" if why else "")


async def find_start(view: PartitionView, until: int, event_day: EventDay,
                     checkpoints: Mapping[int, int],
                     margin_ms: int = DAY_START_MARGIN_MS) -> Start:
    """The first offset of the trading day of the record at `until - 1` (see the module
    docstring). `checkpoints` maps a day to its recorded first offset in this partition."""
    earliest = await view.earliest()
    if until <= earliest:
        return Start(until, earliest, "nothing")
    tail = await view.records(max(earliest, until - GUARD_RECORDS), until)
    if not tail or tail[-1][0] != until - 1 or tail[-1][2] is None or tail[-1][2] < 0:
        return Start(earliest, earliest, "earliest",
                     refused=["the last record processed has no timestamp to go by"])
    first = await view.records(earliest, earliest + 1)
    first_ts = first[0][2] if first else None
    last_day = latest_day(tail, event_day)
    probes: dict[int, Around] = {}

    async def around(offset: int) -> Around:
        if offset not in probes:
            records = await view.records(max(earliest, offset - GUARD_RECORDS), offset + 1)
            by_offset = {r[0]: r for r in records}
            at, prev = by_offset.get(offset), by_offset.get(offset - 1)
            probes[offset] = Around(
                at[2] if at else None, prev[2] if prev else None,
                latest_day((r for r in records if r[0] < offset), event_day))
        return probes[offset]

    refused: list[str] = []
    day = day_number(tail[-1][2])
    for _ in range(MAX_DAYS_BACK):
        target = day_start_ms(day, margin_ms)
        if first_ts is not None and first_ts >= target:  # the partition begins that day
            via = "earliest" if refused else "partition start"  # fell back, or had to
            return Start(earliest, earliest, via, day, refused=refused)
        candidates = (("time index", await view.offset_for_time(target)),
                      ("checkpoint", checkpoints.get(day)))
        for via, candidate in candidates:
            if candidate is None:
                refused.append(f"no {via} answer for {day_date(day)}")
                continue
            offset = max(candidate, earliest)
            found = await around(offset)
            why = start_refused(offset, target, earliest, until, last_day, found)
            if why is None:
                return Start(offset, earliest, via, day,
                             None if offset == earliest else found.prev_day, refused)
            refused.append(f"{via} for {day_date(day)} says {offset}, but {why}")
        day -= 1
    return Start(earliest, earliest, "earliest", refused=refused)
