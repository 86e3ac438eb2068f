"""Hypothesis: the live data flow (a processor per partition, frame partials delivered in
any interleaving, some of them twice or long after, frames closed on the sources' lowest
watermark) gives the sector and market figures and alerts of the one-process pipeline."""

from __future__ import annotations

import heapq
import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from marketflow.core.frames import FramePartial
from marketflow.core.partition import PartitionProcessor
from marketflow.core.pipeline import Pipeline
from marketflow.core.records import Tick
from marketflow.core.rules import parse_rules
from marketflow.core.sectors import SectorAggregator
from tests.unit.core.test_pipeline_properties import WINDOWS, tick_streams, universe

FRAME_MS = 1000
RULES = {"rules": [
    {"id": "up", "metric": "sector.gain_pct", "op": ">=", "threshold": 0.5,
     "hysteresis": 0.1, "max_per_day": 1000},
    {"id": "down", "metric": "sector.gain_pct", "op": "<=", "threshold": -0.5,
     "hysteresis": 0.1, "max_per_day": 1000},
    {"id": "fast", "metric": "sector.gain_pct", "window": "1m", "op": ">=",
     "threshold": 0.2, "max_per_day": 1000},
    {"id": "eq", "metric": "sector.eq_gain_pct", "op": ">=", "threshold": 1.0,
     "hysteresis": 0.5, "max_per_day": 1000},
    {"id": "turnover", "metric": "market.turnover_hkd", "op": ">=", "threshold": 1_000.0},
]}
PARTITIONS = 3
PARTITION_OF = {"00001": 0, "00002": 1, "00003": 2, "00004": 0, "09999": 1, "HSI": 2}


def pipeline_run(ticks: list[Tick]) -> tuple[list[dict], dict, dict]:
    pipeline = Pipeline(universe(), parse_rules(RULES, WINDOWS), FRAME_MS, tuple(WINDOWS))
    for tick in ticks:
        pipeline.on_tick(tick)
    pipeline.finish()
    result = pipeline.result()
    sector_alerts = [a for a in result["alerts"] if a["metric"].startswith(("sector", "market"))]
    return sector_alerts, result["final"]["sectors"], result["final"]["market"]


def live_run(ticks: list[Tick], data: st.DataObject) -> tuple[list[dict], dict, dict]:
    rules = parse_rules(RULES, WINDOWS)
    processors = [PartitionProcessor(universe(), rules, FRAME_MS, p)
                  for p in range(PARTITIONS)]
    aggregator = SectorAggregator(universe(), rules, FRAME_MS, tuple(WINDOWS))
    queues: list[list[Tick]] = [[] for _ in range(PARTITIONS)]
    for tick in ticks:  # per-partition arrival order is the input order, as in Kafka
        queues[PARTITION_OF[tick.symbol]].append(tick)
    delivered: list[list[FramePartial]] = [[] for _ in range(PARTITIONS)]
    in_flight: list[tuple[int, int, FramePartial]] = []  # (delivery step, n, partial)
    alerts: list[dict] = []
    step = 0

    finals: dict[int, FramePartial] = {}  # a drained partition's last partial
    gone: set[int] = set()  # drained partitions whose last partial has arrived

    def deliver(until: int) -> None:
        """Frames close on the watermarks the aggregator has heard, leaving out drained
        partitions once their last partial is in (live: idle ones, after their flush)."""
        while in_flight and in_flight[0][0] <= until:
            _, _, partial = heapq.heappop(in_flight)
            aggregator.on_partial(partial)
            delivered[partial.source].append(partial)
            if finals.get(partial.source) is partial:
                gone.add(partial.source)
            heard = [aggregator.watermarks.get(p, -1) for p in range(PARTITIONS)
                     if p not in gone]
            if heard and min(heard) >= 0:
                alerts.extend(aggregator.close_through(min(heard) // FRAME_MS - 1).alerts)

    order = itertools.count()
    due = [0] * PARTITIONS  # a source's partials reach the aggregator in the order sent
    last_sent: list[list[FramePartial]] = [[] for _ in range(PARTITIONS)]

    def send(processor: PartitionProcessor, partials: list[FramePartial]) -> None:
        source = processor.source
        for partial in partials:
            due[source] = max(due[source], step + data.draw(st.integers(0, 3)))
            heapq.heappush(in_flight, (due[source], next(order), partial))
            last_sent[source] = [partial]
            # a second copy of one that arrived already: the Kafka copy of a partial the
            # aggregator got locally, or a rebuilt partition re-sending its day
            history = delivered[source]
            if history and data.draw(st.integers(0, 4)) == 0:
                old = history[data.draw(st.integers(0, len(history) - 1))]
                heapq.heappush(in_flight, (step + data.draw(st.integers(0, 6)), next(order),
                                           old))

    while any(queues):
        step += 1
        partition = data.draw(st.sampled_from([p for p in range(PARTITIONS) if queues[p]]))
        processor = processors[partition]
        processor.on_tick(queues[partition].pop(0))
        partials = processor.emit().partials
        if not queues[partition]:
            partials += processor.flush().partials
            last = partials[-1:] or last_sent[partition]
            if last and last[-1] not in delivered[partition]:
                finals[partition] = last[-1]
            else:
                gone.add(partition)
        send(processor, partials)
        deliver(step)
    deliver(step + 100)
    alerts.extend(aggregator.close_all().alerts)
    sectors, market = aggregator.final_figures()
    return alerts, sectors, market


def key(alert: dict) -> tuple:
    return (alert["alert_id"], alert["rule_id"], alert["subject"], alert["ts"], alert["value"])


@settings(max_examples=150, deadline=None)
@given(tick_streams(ordered=True), st.data())
def test_partitioned_delivery_equals_pipeline(ticks: list[Tick], data: st.DataObject) -> None:
    expected_alerts, expected_sectors, expected_market = pipeline_run(ticks)
    alerts, sectors, market = live_run(ticks, data)
    assert [key(a) for a in alerts] == [key(a) for a in expected_alerts]
    for name, figures in expected_sectors.items():
        got = dict(sectors[name])
        got.pop("level", None)
        assert got == figures, name
    assert market == expected_market


def test_a_stale_partial_after_newer_ones_changes_nothing() -> None:
    """The Kafka copy of a partial arriving after later ones (applied locally) is dropped:
    re-applying it would put the stock's old price back for a frame."""
    rules = parse_rules(RULES, WINDOWS)
    base = 1_763_947_800_000  # 09:30 HKT
    processor = PartitionProcessor(universe(), rules, FRAME_MS, 0)
    aggregator = SectorAggregator(universe(), rules, FRAME_MS, tuple(WINDOWS))
    partials = []
    for i, price in enumerate((50_000, 50_400, 50_800)):  # 00001 climbs, one frame each
        processor.on_tick(Tick("00001", base + i * FRAME_MS, price, 100, price * 10, None))
        partials += processor.emit().partials
    processor.on_tick(Tick("00001", base + 3 * FRAME_MS, 50_800, 100, 5_080_000, None))
    partials += processor.emit().partials
    for partial in partials:
        aggregator.on_partial(partial)
        aggregator.close_through(partial.watermark // FRAME_MS - 1)
    level = aggregator.book.levels()
    aggregator.on_partial(partials[0])  # the first frame's copy, long after
    aggregator.close_through((base + 10 * FRAME_MS) // FRAME_MS - 1)
    assert aggregator.book.levels() == level
    assert aggregator.redelivered_groups == 1


@settings(max_examples=150, deadline=None)
@given(tick_streams(ordered=True), st.integers(1, 4))
def test_closing_in_steps_equals_closing_at_once(ticks: list[Tick], step: int) -> None:
    """The live worker closes a long run of frames `max_frames` at a time
    (`SectorAggregator.close_through`, `runtime.CLOSE_STEP_FRAMES`): the alerts, snapshots
    and figures are those of closing them all at once."""
    processor = PartitionProcessor(universe(), parse_rules(RULES, WINDOWS), FRAME_MS, 0)
    for tick in ticks:
        processor.on_tick(tick)
    partials = processor.flush().partials
    runs = []
    for max_frames in (None, step):
        aggregator = SectorAggregator(universe(), parse_rules(RULES, WINDOWS), FRAME_MS,
                                      tuple(WINDOWS))
        for partial in partials:
            aggregator.on_partial(partial)
        limit = max(aggregator.pending, default=-1)
        out = aggregator.close_through(limit, max_frames)
        steps = 1
        while aggregator.more_ready:
            assert max_frames is not None and aggregator.closed_through < limit
            out.add(aggregator.close_through(limit, max_frames))
            steps += 1
        assert not aggregator.pending and aggregator.closed_through == limit
        runs.append((out.alerts, out.snapshots, aggregator.final_figures(), steps))
    (alerts, snapshots, figures, _), (alerts2, snapshots2, figures2, steps) = runs
    assert (alerts2, figures2) == (alerts, figures)
    # each step ends with snapshots of what it touched (as each live close does): more of
    # them, stamped with the step's last frame; the latest per subject holds the same
    # figures (its time and what is relative to it, rolling gains and contributors, are
    # those of the frame it was made at)
    assert latest(snapshots2) == latest(snapshots)
    frames = len({g.frame for p in partials for g in p.groups})
    assert steps == max(1, -(-frames // step))  # ceil: every step closed `step` frames


def latest(snapshots: list[dict]) -> dict[tuple[str, str], dict]:
    relative = {"ts", "rolling", "top_contributors"}
    return {(s["type"], s["subject"]): {k: v for k, v in s.items() if k not in relative}
            for s in snapshots}
