"""The worker's hand-off of frame partials to a co-located aggregator (no I/O: the topic
is a list of the records the sinks would write). Partials go in-process once the topic
has caught up, are held while it has not, and the aggregator skips its own copies; the
figures and alerts must be the one-process pipeline's whenever the aggregator arrives."""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from marketflow.core.frames import FrameGroup, FramePartial
from marketflow.core.output import Output
from marketflow.core.records import Tick
from marketflow.core.rules import parse_rules
from marketflow.stream.partials import Shipped, decode_partials, encode_partials
from marketflow.stream.runtime import Emission, Runtime
from tests.unit.core.test_partials_properties import (
    PARTITION_OF,
    PARTITIONS,
    RULES,
    key,
    pipeline_run,
)
from tests.unit.core.test_pipeline_properties import WINDOWS, tick_streams, universe

FRAME_MS = 1000
NEVER_IDLE_MS = 10**9


def expected(ticks: list[Tick]) -> tuple[list[tuple], dict]:
    alerts, sectors, _ = pipeline_run(ticks)
    return [key(a) for a in alerts], sectors


def live(ticks: list[Tick], data: st.DataObject) -> tuple[list[tuple], dict, int]:
    runtime = Runtime(universe(), parse_rules(RULES, WINDOWS), FRAME_MS, tuple(WINDOWS),
                      PARTITIONS, NEVER_IDLE_MS)
    processors = {p: runtime.new_processor(p) for p in range(PARTITIONS)}
    topic: list[bytes] = []
    read = 0  # the aggregator's position in the topic
    alerts: list[tuple] = []
    arrives_after = data.draw(st.integers(0, len(ticks)), label="aggregator arrives after")

    def collect(emission: Emission) -> None:
        alerts.extend(key(a) for a in emission.output.alerts)

    def ship(out: Output) -> None:
        emission = runtime.ship(out)
        collect(emission)
        topic.extend(encode_partials(emission.shipped, per_record=data.draw(
            st.integers(1, 4), label="partials per record")))

    def consume(upto: int) -> None:
        nonlocal read
        while runtime.router is not None and read < min(upto, len(topic)):
            collect(runtime.on_partials(topic[read]))
            read += 1

    for n, tick in enumerate(ticks):
        if n == arrives_after:
            runtime.new_aggregator()
        processor = processors[PARTITION_OF[tick.symbol]]
        processor.on_tick(tick)
        ship(processor.emit())
        consume(read + data.draw(st.integers(0, 3), label="records read"))
    if runtime.router is None:
        runtime.new_aggregator()
    assert runtime.router is not None
    for processor in processors.values():
        ship(processor.flush())
    consume(len(topic))
    collect(Emission(runtime.router.aggregator.close_all()))
    skipped = sum(1 for record in topic if record.startswith(runtime.handoff.own_prefix))
    sectors, _ = runtime.router.aggregator.final_figures()
    return alerts, sectors, skipped


@settings(max_examples=150, deadline=None)
@given(tick_streams(ordered=True), st.data())
def test_handoff_equals_pipeline(ticks: list[Tick], data: st.DataObject) -> None:
    want_alerts, want_sectors = expected(ticks)
    alerts, sectors, _ = live(ticks, data)
    assert alerts == want_alerts
    for name, figures in want_sectors.items():
        assert sectors[name] == figures, name


def test_in_process_once_caught_up_and_own_copies_skipped() -> None:
    """Partials sent before the aggregator arrived come by the topic; once it has read
    them, the partition's partials go in-process and their copies are skipped."""
    base = 1_763_947_800_000
    ticks = [Tick("00001", base + i * 700, 50_000 + i * 100, 100, 500_000, None)
             for i in range(40)]
    alerts, sectors, skipped = live(ticks, _Script())
    want_alerts, want_sectors = expected(ticks)
    assert alerts == want_alerts
    assert sectors["AI"] == want_sectors["AI"]
    assert skipped > 0, "no partial took the in-process path"


class _Script:
    """A fixed `data` for the example above: the aggregator arrives after 10 ticks,
    one partial per record, and reads one record per tick."""

    def draw(self, strategy: object, label: str = "") -> int:
        return {"aggregator arrives after": 10, "partials per record": 1,
                "records read": 1}[label]


def test_partials_record_round_trip() -> None:
    partial = Shipped(FramePartial(3, 1_000, ()), origin="w", seq=7, applied_by="t")
    other = Shipped(FramePartial(3, 2_000, ()), origin="w", seq=8)
    records = encode_partials([partial, partial, other], per_record=64)
    assert [orjson.loads(r)["applied_by"] for r in records] == ["t", ""]
    assert [len(decode_partials(r)) for r in records] == [2, 1]
    assert decode_partials(records[1])[0] == other
    assert decode_partials(records[0])[0] == Shipped(partial.partial, "w", 7)


groups = st.lists(st.builds(
    FrameGroup, st.integers(20_000, 20_500), st.integers(0, 2 * 10**9), st.integers(0, 500),
    st.dictionaries(st.from_regex(r"\d{5}", fullmatch=True),
                    st.tuples(st.integers(1, 10**10), st.integers(0, 10**15)), max_size=5),
    st.integers(0, 10**15)), max_size=4).map(tuple)


@given(groups, st.integers(0, 63), st.integers(0, 2 * 10**12))
def test_groups_round_trip_and_the_earlier_array_form_still_reads(
        groups: tuple[FrameGroup, ...], source: int, watermark: int) -> None:
    shipped = Shipped(FramePartial(source, watermark, groups), origin="w", seq=1)
    [record] = encode_partials([shipped])
    assert decode_partials(record) == [shipped]
    legacy = {"source": source, "watermark": watermark, "origin": "w", "seq": 1,
              "groups": [[g.day, g.frame, g.ticks, g.market_turnover,
                          [[s, last, t] for s, (last, t) in g.stocks.items()]]
                         for g in groups]}
    old = orjson.dumps({"applied_by": "", "partials": [legacy]})
    assert decode_partials(old) == [shipped]


def test_a_bad_partials_record_is_rejected_whole_and_changes_nothing() -> None:
    runtime = Runtime(universe(), parse_rules(RULES, WINDOWS), FRAME_MS, tuple(WINDOWS),
                      PARTITIONS, NEVER_IDLE_MS)
    aggregator = runtime.new_aggregator().aggregator
    good = Shipped(FramePartial(0, 1_763_947_801_000, ()), origin="w", seq=1).to_json()
    rejected: list[tuple] = []
    for value in (b"not json", b'{"applied_by": "", "partials": [{"source": 0}]}',
                  b'{"applied_by": "", "partials": [' + orjson.dumps(good) + b', 7]}'):
        runtime.on_partials(value, lambda *args: rejected.append(args), 0, 41)
    assert [(r[0], r[1], r[2], r[4]) for r in rejected] == [("invalid_partial", 0, 41,
                                                             "partials")] * 3
    assert aggregator.watermarks == {} and runtime.clock.watermarks[0] == -1


def test_a_replay_that_skipped_earlier_days_does_not_wait_for_their_partials() -> None:
    """The aggregator replays the partials topic from the current trading day: a partial
    of an earlier day this worker sent by the topic alone may lie before that start and
    never be read. Its source is not held for it; a partial of the current day is."""
    from marketflow.core.frames import FrameGroup
    from marketflow.stream.daystart import date_day
    from marketflow.stream.partials import Handoff

    friday, monday = date_day("2025-11-21"), date_day("2025-11-24")

    def partial(day: int) -> FramePartial:
        return FramePartial(0, -1, (FrameGroup(day, 1, 1, {}, 0),))

    for sent_day, released in ((friday, True), (monday, False)):
        handoff = Handoff()
        handoff.stamp([partial(sent_day)], in_process=False)  # no aggregator here yet
        handoff.new_aggregator()  # it replays the topic from Monday's first offset
        handoff.skipped_before(monday)
        shipped, now = handoff.stamp([partial(monday)], in_process=True)
        assert (now == shipped) is released, sent_day
