"""Where a rebuild starts (`stream/daystart.py`), without a broker: the day of a timestamp,
the event day of a record, the checkpoints a partition's records produce, why a candidate
start is refused, and the whole choice against an in-memory partition whose time index
answers like Apache Kafka, like tansu (the first offset whatever the time) or not at all."""

from __future__ import annotations

from dataclasses import dataclass

import orjson
import pytest

from marketflow.core.frames import FrameGroup, FramePartial
from marketflow.core.timeutil import from_datetime
from marketflow.stream.daystart import (
    DAY_START_MARGIN_MS,
    Around,
    Checkpoint,
    DayWatch,
    Record,
    date_day,
    day_date,
    day_start_ms,
    find_start,
    partials_day,
    replay_day,
    southbound_day,
    start_refused,
    ticks_day,
)
from marketflow.stream.partials import Shipped, encode_partials

MIN = 60_000
FRI, MON = date_day("2025-11-21"), date_day("2025-11-24")


def hkt(text: str) -> int:
    """Epoch ms of a Hong Kong wall-clock time, `2025-11-24 09:30`."""
    import datetime as dt

    return from_datetime(dt.datetime.fromisoformat(text))


# -- days ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("stamp", "day"), [
    ("2025-11-24 09:30", "2025-11-24"),
    ("2025-11-24 00:00", "2025-11-24"),
    ("2025-11-23 23:49:59.999", "2025-11-23"),
    ("2025-11-23 23:50", "2025-11-24"),  # within the margin: already the next day's
    ("2025-11-24 23:59:59.999", "2025-11-25"),
    ("2025-11-24 07:59", "2025-11-24"),  # 23:59 UTC the day before: Hong Kong's date counts
])
def test_replay_day(stamp: str, day: str) -> None:
    assert day_date(replay_day(hkt(stamp))) == day


def test_day_start_is_midnight_less_the_margin() -> None:
    assert DAY_START_MARGIN_MS == 10 * MIN
    assert day_start_ms(MON) == hkt("2025-11-23 23:50")
    assert day_start_ms(MON, 0) == hkt("2025-11-24 00:00")
    for day in (FRI, MON, date_day("2000-01-01"), date_day("2099-12-31")):
        assert replay_day(day_start_ms(day)) == day
        assert replay_day(day_start_ms(day) - 1) == day - 1
        assert date_day(day_date(day)) == day


TICK = {"symbol": "00700", "ts": hkt("2025-11-24 09:30"), "price": 600, "qty": 100}


@pytest.mark.parametrize(("value", "day"), [
    (orjson.dumps(TICK), MON),
    (orjson.dumps([TICK, {**TICK, "ts": hkt("2025-11-21 15:00")}]), MON),  # the latest
    (orjson.dumps([{**TICK, "price": -1}, {**TICK, "ts": hkt("2025-11-21 15:00")}]), FRI),
    (orjson.dumps([{**TICK, "price": -1}]), None),
    (orjson.dumps({**TICK, "ts": "2025-11-21T10:00:00+08:00"}), FRI),
    (b"not json", None),
    (b"[]", None),
])
def test_ticks_day(value: bytes, day: int | None) -> None:
    assert ticks_day(value) == day


@pytest.mark.parametrize(("value", "day"), [
    (orjson.dumps({"channel": "SH", "ts": hkt("2025-11-24 10:00"), "buy_hkd": 1,
                   "sell_hkd": 2}), MON),
    (orjson.dumps({"channel": "XX", "ts": hkt("2025-11-24 10:00"), "buy_hkd": 1,
                   "sell_hkd": 2}), None),
    (b"{", None),
])
def test_southbound_day(value: bytes, day: int | None) -> None:
    assert southbound_day(value) == day


def partials(*items: tuple[int, tuple[int, ...]]) -> bytes:
    """A partials record: (watermark, group days) per partial."""
    return encode_partials([
        Shipped(FramePartial(0, watermark, tuple(FrameGroup(d, 1, 1, {}, 0) for d in days)))
        for watermark, days in items])[0]


@pytest.mark.parametrize(("value", "day"), [
    (partials((hkt("2025-11-21 16:00"), (FRI,))), FRI),
    (partials((hkt("2025-11-21 16:00"), (FRI,)), (hkt("2025-11-24 09:30"), ())), MON),
    (partials((-1, ())), None),  # a keep-alive of a partition with nothing yet
    (partials((-1, (FRI,))), FRI),
    (b"[1, 2]", None),
])
def test_partials_day(value: bytes, day: int | None) -> None:
    assert partials_day(value) == day


def test_checkpoint_record_round_trip() -> None:
    checkpoint = Checkpoint("md.ticks", 3, MON, 1234)
    assert checkpoint.key() == b"md.ticks|3|2025-11-24"
    assert orjson.loads(checkpoint.to_json())["trading_date"] == "2025-11-24"
    assert Checkpoint.from_json(checkpoint.to_json()) == checkpoint


# -- DayWatch: the checkpoints a partition's records produce ------------------------------------

F, M = hkt("2025-11-21 10:00"), hkt("2025-11-24 10:00")


@pytest.mark.parametrize(("started", "batches", "expected"), [
    # fresh (the earliest offset): the first record's day, then each new day
    (None, [[(0, F), (1, F)], [(2, M), (3, M)]], [(FRI, 0), (MON, 2)]),
    # started at Monday's recorded start: nothing new
    (MON, [[(10, M), (11, M)]], []),
    # started at Friday's: Monday's first record is recorded, once
    (FRI, [[(5, F)], [(6, M)], [(7, M)]], [(MON, 6)]),
    # stamps out of order: the first record stamped Monday counts, later Friday ones not
    (FRI, [[(5, M), (6, F), (7, M)]], [(MON, 5)]),
    # a Monday record stamped inside the margin before midnight is Monday's first
    (FRI, [[(5, hkt("2025-11-23 23:55")), (6, M)]], [(MON, 5)]),
    # records without a timestamp are passed over
    (None, [[(0, -1), (1, M)]], [(MON, 1)]),
    (None, [[(0, None)], [(1, -1)], [(2, F)]], [(FRI, 2)]),
])
def test_day_watch(started: int | None, batches: list[list[tuple[int, int | None]]],
                   expected: list[tuple[int, int]]) -> None:
    watch = DayWatch()
    watch.start("t", 0, started)
    got = []
    for batch in batches:
        got += watch.observe("t", 0, [(offset, b"", ts) for offset, ts in batch])
    assert [(c.day, c.first_offset) for c in got] == expected
    assert all((c.topic, c.partition) == ("t", 0) for c in got)


def test_day_watch_ignores_partitions_it_did_not_start() -> None:
    watch = DayWatch()
    assert watch.observe("t", 1, [(0, b"", M)]) == []
    watch.start("t", 1, None)
    assert len(watch.observe("t", 1, [(0, b"", M)])) == 1
    watch.forget("t", 1)
    assert watch.observe("t", 1, [(1, b"", M + DAY_START_MARGIN_MS * 200)]) == []


# -- start_refused: one candidate ---------------------------------------------------------------

T = day_start_ms(MON)


@pytest.mark.parametrize(("offset", "around", "why"), [
    (50, Around(T + 1, T - 1, FRI), None),
    (0, Around(T + 1, None, None), None),  # the earliest: nothing before it to skip
    (0, Around(T - 1, None, None), "its record is stamped before the day's start"),  # tansu
    (100, Around(T + 1, T - 1, FRI), "it lies after the last record processed"),
    (50, Around(None, None, None), "its record cannot be read"),
    (50, Around(T + 1, None, FRI), "the record before it cannot be read"),
    (50, Around(T + 1, T + 1, FRI), "the record before it is stamped after the day's start"),
    (50, Around(T + 1, T - 1, None), "no event time in the records before it"),
    (50, Around(T + 1, T - 1, MON), "the records before it are of 2025-11-24 already"),
])
def test_start_refused(offset: int, around: Around, why: str | None) -> None:
    assert start_refused(offset, T, 0, 100, MON, around) == why


def test_start_refused_without_event_days_at_the_end() -> None:
    assert start_refused(50, T, 0, 100, None, Around(T + 1, T - 1, FRI)) == (
        "no event time in the last records processed")


# -- find_start against an in-memory partition --------------------------------------------------

@dataclass
class FakePartition:
    """Records (Kafka timestamp, event day or None); `answers`: "kafka" (the first offset
    stamped at or after the time), "tansu" (the earliest offset whatever the time), "none"
    or "late" (one past Kafka's answer)."""

    stamps: list[tuple[int, int | None]]
    answers: str = "kafka"
    earliest_offset: int = 0

    async def earliest(self) -> int:
        return self.earliest_offset

    async def offset_for_time(self, ts_ms: int) -> int | None:
        if self.answers == "tansu":
            return self.earliest_offset
        if self.answers == "none":
            return None
        for offset in range(self.earliest_offset, len(self.stamps)):
            if self.stamps[offset][0] >= ts_ms:
                return offset + (self.answers == "late")
        return None

    async def records(self, start: int, stop: int) -> list[Record]:
        return [(o, b"?" if self.stamps[o][1] is None else str(self.stamps[o][1]).encode(),
                 self.stamps[o][0])
                for o in range(max(start, self.earliest_offset), min(stop, len(self.stamps)))]


def event_day(value: bytes) -> int | None:
    return None if value == b"?" else int(value)


def day_of_records(day: str, n: int, start: str = "09:30", event: str | None = None,
                   ) -> list[tuple[int, int | None]]:
    """`n` records a minute apart from `day start`, stamped then; their event day is
    `event` (default: the same day)."""
    t0 = hkt(f"{day} {start}")
    return [(t0 + i * MIN, date_day(event or day)) for i in range(n)]


WEEK = (day_of_records("2025-11-20", 30) + day_of_records("2025-11-21", 40)
        + day_of_records("2025-11-24", 50))  # Thu 0-29, Fri 30-69, Mon 70-119
MON_AT, FRI_AT = 70, 30
# replays of old days: 2025-11-10 produced on Friday (0-19), then 2025-11-11 produced on
# Monday evening across midnight (20-49 on Monday, 50-54 on Tuesday)
BACKFILL = (day_of_records("2025-11-21", 20, event="2025-11-10")
            + day_of_records("2025-11-24", 30, "23:20", "2025-11-11")
            + [(hkt("2025-11-25 00:05") + i * MIN, date_day("2025-11-11")) for i in range(5)])


@pytest.mark.parametrize(
    ("name", "partition", "until", "checkpoints", "offset", "via", "partial"), [
        ("kafka answers", FakePartition(WEEK), 100, {}, MON_AT, "time index", FRI),
        ("tansu, checkpoint", FakePartition(WEEK, "tansu"), 100, {MON: MON_AT}, MON_AT,
         "checkpoint", FRI),
        ("tansu, no checkpoint", FakePartition(WEEK, "tansu"), 100, {}, 0, "earliest", None),
        ("no answer, checkpoint", FakePartition(WEEK, "none"), 100, {MON: MON_AT}, MON_AT,
         "checkpoint", FRI),
        # an answer one too late would skip Monday's first record: refused
        ("late answer", FakePartition(WEEK, "late"), 100, {MON: MON_AT}, MON_AT,
         "checkpoint", FRI),
        ("late answer, nothing else", FakePartition(WEEK, "late"), 100, {}, 0,
         "earliest", None),
        # Monday's checkpoint lost (its writer died first): Friday's, two days replayed
        ("tansu, older checkpoint", FakePartition(WEEK, "tansu"), 100,
         {FRI: FRI_AT}, FRI_AT, "checkpoint", date_day("2025-11-20")),
        # a checkpoint past what was processed (written, then the writer died uncommitted)
        ("checkpoint past until", FakePartition(WEEK, "tansu"), 71, {MON: 75, FRI: FRI_AT},
         FRI_AT, "checkpoint", date_day("2025-11-20")),
        # the last record processed is Friday's: Friday is rebuilt
        ("friday", FakePartition(WEEK), 50, {}, FRI_AT, "time index", date_day("2025-11-20")),
        ("only today", FakePartition(WEEK[MON_AT:]), 30, {}, 0, "partition start", None),
        ("retention", FakePartition(WEEK, "tansu", earliest_offset=75), 100, {MON: MON_AT},
         75, "partition start", None),
        ("nothing processed", FakePartition(WEEK), 0, {}, 0, "nothing", None),
        # an old day replayed across midnight (Kafka day Tuesday): the Tuesday start would
        # skip the evening before of the same event day, so the start steps back a day
        ("backfill across midnight", FakePartition(BACKFILL), 55, {}, 20, "time index",
         date_day("2025-11-10")),
        ("backfill, tansu", FakePartition(BACKFILL, "tansu"), 55,
         {date_day("2025-11-25"): 50, MON: 20}, 20, "checkpoint", date_day("2025-11-10")),
    ])
async def test_find_start(name: str, partition: FakePartition, until: int,
                          checkpoints: dict[int, int], offset: int, via: str,
                          partial: int | None) -> None:
    start = await find_start(partition, until, event_day, checkpoints)
    assert (start.offset, start.via, start.partial_day) == (offset, via, partial), (
        name, start.describe())
    if via == "earliest":
        assert "from the earliest offset: " in start.describe() and start.refused


async def test_find_start_without_event_days_at_the_end_replays_from_the_earliest() -> None:
    stamps = WEEK[:MON_AT] + [(ts, None) for ts, _ in WEEK[MON_AT:]]
    start = await find_start(FakePartition(stamps), 100, event_day, {})
    assert (start.offset, start.via) == (0, "earliest")
    assert "no event time in the last records processed" in start.describe()


async def test_partial_through_names_the_last_day_replayed_in_part() -> None:
    start = await find_start(FakePartition(WEEK), 100, event_day, {})
    assert start.partial_through == "2025-11-21" and start.recorded_day is None
    start = await find_start(FakePartition(WEEK, "tansu"), 100, event_day, {MON: MON_AT})
    assert start.recorded_day == MON
