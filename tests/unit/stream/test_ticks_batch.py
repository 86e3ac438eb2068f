"""`Runtime.on_ticks_batch`, the worker's loop over fetched `md.ticks` records (no I/O):
single ticks take the fast parser, anything else the general path, and every rejected
record or element reaches the dead-letter callback with the payload the contract names."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketflow.core.output import Output
from marketflow.core.partition import PartitionProcessor
from marketflow.core.rules import parse_rules
from marketflow.core.timeutil import to_rfc3339
from marketflow.stream.runtime import CLOSE_STEP_FRAMES, Emission, Runtime
from tests.unit.core.test_pipeline_properties import BASE, WINDOWS, universe

DAY_MS = 86_400_000


def tick(ts: int, symbol: str = "00001", **extra: object) -> dict[str, object]:
    return {"symbol": symbol, "ts": ts, "price": 50.5, "qty": 100, **extra}


def run(values: list[bytes]) -> tuple[int, list[tuple[str, int, bytes]], dict[str, object]]:
    runtime = Runtime(universe(), parse_rules({"rules": []}, WINDOWS), 1000, tuple(WINDOWS),
                      1, 10**9)
    processor = runtime.new_processor(0)
    rejects: list[tuple[str, int, bytes]] = []

    def reject(reason: str, partition: int | None, offset: int | None, detail: str,
               source: str, payload: bytes) -> None:
        assert partition == 0 and source == "ticks" and offset is not None and detail
        rejects.append((reason, offset, payload))

    records = [(offset, value, 0) for offset, value in enumerate(values)]
    emission = runtime.on_ticks_batch(processor, records, reject)
    stock = processor.stocks["00001"].figures() if "00001" in processor.stocks else {}
    return emission.ticks, rejects, stock


def turnover_runtime(threshold: float, clock: list[float],
                     ) -> tuple[Runtime, dict[int, PartitionProcessor]]:
    """Two partitions and the aggregator in one Runtime on a fake clock (`clock[0]`,
    seconds), idle after 2 s, with one rule: the market's turnover >= `threshold`."""
    rules = parse_rules({"rules": [{"id": "turnover", "metric": "market.turnover_hkd",
                                    "op": ">=", "threshold": threshold}]}, WINDOWS)
    runtime = Runtime(universe(), rules, 1000, tuple(WINDOWS), 2, 2000,
                      now=lambda: clock[0])
    runtime.new_aggregator()
    processors = {p: runtime.new_processor(p) for p in (0, 1)}
    runtime.processors.update(processors)
    return runtime, processors


def drain(runtime: Runtime, emission: Emission, outputs: list[Output]) -> int:
    """`emission` and every further step `close_more` gives (as the worker runs them, its
    event loop given back in between) into `outputs`; returns the number of steps."""
    outputs.append(emission.output)
    steps = 1
    while (more := runtime.close_more()) is not None:
        outputs.append(more.output)
        steps += 1
    return steps


TODAY = orjson.dumps(tick(BASE + DAY_MS))
YESTERDAY = orjson.dumps(tick(BASE))


@pytest.mark.parametrize(("values", "applied", "rejected"), [
    ([TODAY], 1, []),
    ([orjson.dumps(tick("2025-11-25T09:30:00.250+08:00", "0001.HK"))], 1, []),  # loose
    ([orjson.dumps(tick(BASE + DAY_MS, qty="100"))], 1, []),  # general path
    ([b"{not json"], 0, [("invalid_json", 0, b"{not json")]),
    ([orjson.dumps(tick(BASE + DAY_MS, price=-1))], 0,
     [("invalid_price", 0, orjson.dumps(tick(BASE + DAY_MS, price=-1)))]),
    # applying: a single record is dead-lettered as received ...
    ([TODAY, YESTERDAY], 1, [("stale_trading_day", 1, YESTERDAY)]),
    ([TODAY, orjson.dumps(tick(BASE + DAY_MS, "NOPE", kind="index"))], 1,
     [("unknown_index", 1, orjson.dumps(tick(BASE + DAY_MS, "NOPE", kind="index")))]),
    # ... one tick of an array in canonical form, the rest of the array applied
    ([TODAY, b"[" + YESTERDAY + b"," + TODAY + b"]"], 2,
     [("stale_trading_day", 1, orjson.dumps({
         "symbol": "00001", "ts": BASE, "price": 50.5, "qty": 100, "turnover": 5050.0,
         "kind": "trade"}))]),
])
def test_records_applied_and_rejected(values: list[bytes], applied: int,
                                      rejected: list[tuple[str, int, bytes]]) -> None:
    count, rejects, stock = run(values)
    assert (count, rejects) == (applied, rejected)
    if applied:
        assert stock["trades"] == applied and stock["last"] == 50.5


def test_a_frame_waits_for_a_partitions_open_frame_after_a_stall() -> None:
    """Partition 0 ends with ticks in frame 1, its open frame (not shipped yet: an open
    frame goes out when the partition has been quiet for `source_flush_ms`, or when a
    later tick closes it). The worker then stalls for longer than `idle_ms` (a slow
    machine, long batches of other partitions), and partition 1's next batch passes frame
    1. Partition 0 holds frame 1's group here: it is not idle, and frame 1 must wait for
    it (closed without it, the market would be evaluated on part of its turnover)."""
    clock = [0.0]
    # HK$111,100 once both partitions' frame 1 is in; HK$60,600 with one of them
    runtime, processors = turnover_runtime(100_000.0, clock)
    start = BASE + DAY_MS
    alerts = []
    for p, symbol, last in ((0, "00001", 1500), (1, "00002", 2500)):
        # HK$5,050 in frame 0, 50,500 in frame 1 (and for partition 1 a tick in frame 2)
        records = [(0, orjson.dumps(tick(start, symbol)), 0),
                   (1, orjson.dumps(tick(start + 1500, symbol, qty=1000)), 0),
                   (2, orjson.dumps(tick(start + last, symbol, qty=0)), 0)]
        alerts += runtime.on_ticks_batch(processors[p], records, lambda *a: None).output.alerts
        runtime.touch(p)
        clock[0] += 5.0  # a stall past idle_ms
    for _ in range(3):
        alerts += runtime.housekeeping().output.alerts
        clock[0] += 5.0
    assert [(a["ts"], a["value"]) for a in alerts] == [(to_rfc3339(start + 2000), 111_100.0)]


def test_a_long_run_of_frames_closes_in_steps() -> None:
    """Partition 0 brings 1,000 frames, which wait for partition 1; its first frame past
    them lets all close but partition 0's open one. The worker closes them
    `CLOSE_STEP_FRAMES` at a time (`ship`, then `close_more` until None, the adapter
    giving its event loop back in between), and at the end, every source idle, finishes
    in steps too: the alert fires once, at its frame, and the final snapshots come once,
    after the last frame."""
    clock = [0.0]
    threshold = 5050.0 * 701 - 1  # crossed by frame 700's cumulative turnover
    runtime, processors = turnover_runtime(threshold, clock)
    start = BASE + DAY_MS
    outputs: list[Output] = []
    records = [(n, orjson.dumps(tick(start + n * 1000, "00001")), 0) for n in range(1000)]
    emission = runtime.on_ticks_batch(processors[0], records, lambda *a: None)
    runtime.touch(0)  # as the worker does after each batch
    assert drain(runtime, emission, outputs) == 1
    assert runtime.router is not None and len(runtime.router.aggregator.pending) == 999
    late = [(0, orjson.dumps(tick(start + 1_000_500, "00002", qty=0)), 0),  # ships
            (1, orjson.dumps(tick(start + 1_001_500, "00002", qty=0)), 0)]  # frame 1000
    emission = runtime.on_ticks_batch(processors[1], late, lambda *a: None)
    runtime.touch(1)
    assert drain(runtime, emission, outputs) == -(-999 // CLOSE_STEP_FRAMES)  # in steps
    assert runtime.router.aggregator.closed_through == 998 + start // 1000
    clock[0] += 10.0  # every source idle: the open frames flushed, then all closes
    for _ in range(3):
        drain(runtime, runtime.housekeeping(), outputs)
        clock[0] += 10.0
    assert runtime.finalised and not runtime.router.aggregator.pending
    assert_alert_once_and_final_once(outputs, start)


def assert_alert_once_and_final_once(outputs: list[Output], start: int) -> None:
    """The turnover alert once, at frame 700's end, and the final market snapshot once."""
    alerts = [a for out in outputs for a in out.alerts]
    assert [(a["ts"], a["value"]) for a in alerts] == [(to_rfc3339(start + 701_000),
                                                       5050.0 * 701)]
    finals = [s for out in outputs for s in out.snapshots
              if s["type"] == "market" and s["final"]]
    assert len(finals) == 1 and finals[0]["turnover_hkd"] == 5050.0 * 1000


def test_every_source_idle_finishes_in_steps() -> None:
    """Partition 1 stops early (frame 1) and partition 0 runs 1,000 frames on: nothing past
    frame 1 may close until both are idle, and then all of it closes, a step at a time."""
    clock = [0.0]
    threshold = 5050.0 * 701 - 1
    runtime, processors = turnover_runtime(threshold, clock)
    start = BASE + DAY_MS
    outputs: list[Output] = []
    early = [(n, orjson.dumps(tick(start + n * 1000 + 500, "00002", qty=0)), 0)
             for n in range(2)]
    drain(runtime, runtime.on_ticks_batch(processors[1], early, lambda *a: None), outputs)
    runtime.touch(1)
    records = [(n, orjson.dumps(tick(start + n * 1000, "00001")), 0) for n in range(1000)]
    drain(runtime, runtime.on_ticks_batch(processors[0], records, lambda *a: None), outputs)
    runtime.touch(0)  # frame 0 closed; 1-998 wait for partition 1
    assert runtime.router is not None and len(runtime.router.aggregator.pending) == 998
    steps = []
    for _ in range(3):
        clock[0] += 10.0
        steps.append(drain(runtime, runtime.housekeeping(), outputs))
    assert runtime.finalised and not runtime.router.aggregator.pending
    assert max(steps) == -(-999 // CLOSE_STEP_FRAMES)  # frames 1-999, closed in steps
    assert_alert_once_and_final_once(outputs, start)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.integers(1, 6), st.integers(0, 2500),
                          st.floats(0.0, 1.5), st.booleans()), min_size=1, max_size=25))
def test_oldest_frame_wait_is_the_longest_wait_of_a_pending_frame(
        steps: list[tuple[int, int, int, float, bool]]) -> None:
    """`Runtime.oldest_frame_wait` (kept in step with the new frames only) against a plain
    scan of every pending frame at every call: the wall-clock time since the pending frame
    seen first had its first group, through partitions shipping, frames closing, sources
    going idle and the day finishing."""
    clock = [0.0]
    runtime, processors = turnover_runtime(10.0**15, clock)
    first_seen: dict[int, float] = {}

    def reference() -> float:
        assert runtime.router is not None
        pending = runtime.router.aggregator.pending
        for frame in list(first_seen):
            if frame not in pending:
                del first_seen[frame]
        for frame in pending:
            first_seen.setdefault(frame, clock[0])
        return clock[0] - min(first_seen.values()) if pending else 0.0

    event_ms = dict.fromkeys(processors, BASE + DAY_MS)
    offsets = dict.fromkeys(processors, 0)
    for partition, count, gap_ms, wall_s, housekeeping in steps:
        records = []
        for _ in range(count):
            event_ms[partition] += gap_ms
            records.append((offsets[partition], orjson.dumps(
                tick(event_ms[partition], "00001" if partition == 0 else "00002")), 0))
            offsets[partition] += 1
        drain(runtime, runtime.on_ticks_batch(processors[partition], records,
                                              lambda *a: None), [])
        runtime.touch(partition)
        assert runtime.oldest_frame_wait() == reference()
        clock[0] += wall_s
        if housekeeping:
            drain(runtime, runtime.housekeeping(), [])
        assert runtime.oldest_frame_wait() == reference()


def test_a_new_aggregators_frames_wait_from_when_it_has_them() -> None:
    """Partition 0's frames 0-5 wait for partition 1 in the aggregator from t=0; at t=1 a
    new aggregator takes over (the partials partition moved) and reads them from the
    topic: they have waited 0.5 s in it at t=1.5, not 1.5 s."""
    clock = [0.0]
    runtime, processors = turnover_runtime(10.0**15, clock)
    records = [(n, orjson.dumps(tick(BASE + DAY_MS + n * 1000 + 500, "00001")), 0)
               for n in range(7)]
    emission = runtime.on_ticks_batch(processors[0], records, lambda *a: None)
    drain(runtime, emission, [])  # frames 0-5 shipped, waiting for partition 1; 6 open
    assert runtime.oldest_frame_wait() == 0.0
    clock[0] = 1.0
    assert runtime.oldest_frame_wait() == 1.0
    router = runtime.new_aggregator()
    router.route([item.partial for item in emission.shipped], None)  # read from the topic
    assert len(router.aggregator.pending) == 6
    assert runtime.oldest_frame_wait() == 0.0
    clock[0] = 1.5
    assert runtime.oldest_frame_wait() == 0.5
