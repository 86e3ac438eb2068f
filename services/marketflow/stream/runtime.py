"""The worker's state and the decisions that do not depend on Faust.

One `PartitionProcessor` per assigned `md.ticks` partition; the `FrameRouter` (and its
`SectorAggregator`) where `mf.internal.frame-partials` is assigned (one partition, so
exactly one worker aggregates); the `SouthboundBook` of `md.southbound`. Each is rebuilt
from its source topic the first time its partition is seen (`app.py`, `replay.py`).

Every method returns what it produced (`Emission`: alerts and snapshots to publish, frame
partials to ship); the Faust adapter routes it in one place.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import orjson

from marketflow.core.frames import FrameClock, FrameGroup, FramePartial, FrameRouter
from marketflow.core.output import Alert, Output
from marketflow.core.partition import PartitionProcessor
from marketflow.core.records import RecordError, parse_southbound, parse_tick_fast
from marketflow.core.refdata import ReferenceData
from marketflow.core.rules import RuleSet
from marketflow.core.sectors import SectorAggregator
from marketflow.core.southbound import SouthboundBook
from marketflow.ingest.batches import decode_ticks, split_ticks
from marketflow.stream.partials import Handoff, Shipped, decode_partials

# Frames the aggregator closes in one step live; the adapter closes the rest step by step
# (`close_more`), giving its event loop back in between: a backlog read one partition after
# another leaves the whole day's frames waiting for the last partition, and closing them
# in one call held the loop for seconds (heartbeats, timers, other agents).
CLOSE_STEP_FRAMES: Final = 200

# reason, partition, offset, detail, source ("ticks", "southbound", "partials"), payload
Reject = Callable[[str, int | None, int | None, str, str, bytes], None]


def _nothing_behind(_: int) -> bool:
    return False


def ignore_rejects(*_: object) -> None:
    """Rejects seen again while rebuilding were dead-lettered the first time."""


@dataclass(slots=True, init=False)  # its own __init__: see core/frames.py
class Emission:
    """What one step of the worker produced: alerts and snapshots to publish, partials
    stamped for the partials topic, and how many ticks it applied."""

    output: Output
    shipped: list[Shipped]
    ticks: int

    def __init__(self, output: Output | None = None, shipped: list[Shipped] | None = None,
                 ticks: int = 0) -> None:
        self.output = Output() if output is None else output
        self.shipped = [] if shipped is None else shipped
        self.ticks = ticks

    def add(self, other: Emission) -> Emission:
        """Append `other`'s outputs and partials after this one's; returns self."""
        self.output.add(other.output)
        self.shipped += other.shipped
        self.ticks += other.ticks
        return self


class Runtime:
    def __init__(self, ref: ReferenceData, rules: RuleSet, frame_ms: int,
                 windows: tuple[str, ...], sources: int, idle_ms: int,
                 source_flush_ms: int = 250, now: Callable[[], float] = time.monotonic,
                 ) -> None:
        self.ref = ref
        self.rules = rules
        self.frame_ms = frame_ms
        self.windows = windows
        self.now = now
        self.processors: dict[int, PartitionProcessor] = {}
        self.activity: dict[int, float] = {}  # partition -> when its last record came
        self.flushed: set[int] = set()  # quiet partitions whose open frame went out
        self.settled: set[int] = set()  # idle partitions whose final snapshots went out
        self.southbound_activity: float | None = None  # None: final snapshots sent
        # md.ticks partition -> this worker holds records of it not applied yet (set by
        # the adapter, which knows the consumer); such a source is late, never idle
        self.ticks_behind: Callable[[int], bool] = _nothing_behind
        self.ticks_owned: Callable[[], set[int]] = lambda: set(self.processors)
        self.last_shipped: dict[int, float] = {}  # source -> when its last partial went
        self.frame_seen: dict[int, float] = {}  # pending frame -> when it first had a group
        self.router: FrameRouter | None = None
        self.aggregator_rebuilding = False
        self.handoff = Handoff()
        self.southbound: SouthboundBook | None = None
        self.clock = FrameClock(sources, frame_ms, idle_ms, now, busy=self.holds_input)
        self.keepalive_s = idle_ms / 2000  # a source behind says so this often
        self.source_flush_s = source_flush_ms / 1000
        self.finalised = True
        self.finishing = False  # every source idle and the pending frames closing in steps
        self.ticks = 0

    # -- construction (also used by rebuilds) ---------------------------------------

    def new_processor(self, partition: int) -> PartitionProcessor:
        return PartitionProcessor(self.ref, self.rules, self.frame_ms, partition)

    def new_aggregator(self) -> FrameRouter:
        """A fresh aggregator, installed; it then replays the partials topic."""
        self.handoff.new_aggregator()
        aggregator = SectorAggregator(self.ref, self.rules, self.frame_ms, self.windows)
        self.router = FrameRouter(aggregator, self.clock)
        self.frame_seen = {}  # its frames wait from when it has them (oldest_frame_wait)
        return self.router

    def new_southbound(self) -> SouthboundBook:
        return SouthboundBook(self.rules)

    def set_rules(self, rules: RuleSet) -> None:
        self.rules = rules
        for processor in self.processors.values():
            processor.set_rules(rules)
        if self.router is not None:
            self.router.aggregator.set_rules(rules)
        if self.southbound is not None:
            self.southbound.engine.set_rules(rules)

    # -- records ---------------------------------------------------------------------

    def on_ticks_batch(self, processor: PartitionProcessor,
                       records: list[tuple[int, bytes, int]], reject: Reject,
                       replay: bool = False) -> Emission:
        """Consecutive `md.ticks` records of one partition, (offset, value, timestamp),
        through its processor; the frame groups they close shipped once at the end."""
        partition = processor.source
        alerts: list[Alert] = []
        applied = 0
        # (direct calls, no local aliases: compiled, these are calls of native functions)
        loads = orjson.loads
        for offset, value, _ in records:
            decoded = decode_ticks(value)  # no dict made (ingest.wire), or None
            array = True  # (decoded a list: what a tick's rejection carries is the tick)
            if decoded is None:
                try:
                    obj = loads(value)
                except orjson.JSONDecodeError as error:
                    reject("invalid_json", partition, offset, str(error), "ticks", value)
                    continue
                decoded = parse_tick_fast(obj) if type(obj) is dict else None
                if decoded is None:
                    ticks, bad = split_ticks(obj)
                    for element in bad:  # an array keeps its good ticks, as produce does
                        payload = value if element.index is None else orjson.dumps(
                            element.value)
                        reject(element.error.reason, partition, offset,
                               element.error.detail, "ticks", payload)
                    decoded, array = ticks, type(obj) is list
            if not isinstance(decoded, list):  # one tick in a common form: how feeds write it
                try:
                    fired = processor.on_tick(decoded)
                except RecordError as error:
                    reject(error.reason, partition, offset, error.detail, "ticks", value)
                    continue
                applied += 1
                if fired:
                    alerts += fired
                continue
            for tick in decoded:
                try:
                    fired = processor.on_tick(tick)
                except RecordError as error:  # the record as received, unless an array
                    payload = orjson.dumps(tick.to_json()) if array else value
                    reject(error.reason, partition, offset, error.detail, "ticks", payload)
                    continue
                applied += 1
                if fired:
                    alerts += fired
        out = processor.emit()
        # replaying, the partials stay in the output for the rebuild to choose from
        emission = Emission(out) if replay else self.ship(out)
        # the frames it closed lie before the batch's last ticks: their alerts come first
        emission.output.alerts += alerts
        emission.ticks = applied
        return emission

    def on_southbound(self, book: SouthboundBook, value: bytes, partition: int, offset: int,
                      reject: Reject) -> Emission:
        try:
            return Emission(book.on_update(parse_southbound(orjson.loads(value))))
        except orjson.JSONDecodeError as error:
            reject("invalid_json", partition, offset, str(error), "southbound", value)
        except RecordError as error:
            reject(error.reason, partition, offset, error.detail, "southbound", value)
        return Emission()

    def on_partials(self, value: bytes, reject: Reject = ignore_rejects,
                    partition: int | None = None, offset: int | None = None,
                    max_frames: int | None = None) -> Emission:
        """A record of `mf.internal.frame-partials` to the aggregator; one that cannot be
        decoded goes to `reject` whole, and changes nothing. Live, at most `max_frames`
        close (`close_more` does the rest); a replay closes all it may."""
        router = self.router
        assert router is not None
        if value.startswith(self.handoff.own_prefix):
            return Emission()  # every partial in it reached this aggregator in-process
        try:
            items = decode_partials(value)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            reject("invalid_partial", partition, offset, f"{type(error).__name__}: {error}",
                   "partials", value)
            return Emission()
        partials: list[FramePartial] = []
        for item in items:
            partials.append(item.partial)
            partials += (held.partial for held in self.handoff.read_from_topic(item))
        self.finalised = self.finishing = False  # input again: the clock decides
        return Emission(router.route(partials, max_frames))

    def ship(self, out: Output, in_process: bool = True) -> Emission:
        """Stamp `out`'s partials for the topic and, when the aggregator lives here, hand
        them over in-process (`Handoff` says which may go now): what it produced joins
        the emission."""
        partials, out.partials = out.partials, []
        if not partials:
            return Emission(out)
        router = self.router
        ready = in_process and router is not None and not self.aggregator_rebuilding
        shipped, now = self.handoff.stamp(partials, ready)
        sent_at = self.now()
        for partial in partials:
            self.last_shipped[partial.source] = sent_at
        if now and router is not None:
            self.finalised = self.finishing = False  # input again: the clock decides
            out.add(router.route((item.partial for item in now), CLOSE_STEP_FRAMES))
        return Emission(out, shipped)

    def close_more(self) -> Emission | None:
        """The next step of frames the aggregator may close, if the last step stopped at
        its size (None: nothing left to close now)."""
        router = self.router
        if router is None or not router.more_ready:
            return None
        if self.finishing:
            return Emission(self._finish_step(router))
        return Emission(router.close_ready(CLOSE_STEP_FRAMES))

    def _finish_step(self, router: FrameRouter) -> Output:
        """Every source idle: a step of closing all pending frames (the final snapshots
        with the last); `close_more` takes the next while `finishing`."""
        out = router.finish(max_frames=CLOSE_STEP_FRAMES)
        self.finishing = router.more_ready
        self.finalised = not self.finishing
        return out

    @staticmethod
    def resync_partial(processor: PartitionProcessor) -> FramePartial | None:
        """The partition's whole day, absolute: heals anything lost between a crash and
        the last commit, and changes nothing where nothing was lost."""
        if processor.day is None or processor.frame is None:
            return None
        stocks = {s: (st.last, st.turnover) for s, st in processor.stocks.items()
                  if st.in_universe}
        group = FrameGroup(processor.day, processor.frame, 0, stocks, processor.market_turnover)
        return FramePartial(processor.source, processor.watermark, (group,))

    def holds_input(self, source: int) -> bool:
        """Does this worker hold input of `source` the aggregator has not had: records not
        applied yet (`ticks_behind`), or an open frame with ticks, not shipped (it goes out
        when the partition has been quiet for `source_flush_ms`, or a later tick closes
        it)? Such a source is late, never idle, however long since its last partial."""
        if self.ticks_behind(source):
            return True
        processor = self.processors.get(source)
        # (a rebuilt partition's open frame went out in its resync partial: only one that
        # has applied records since, `touch`ed, holds one)
        return (processor is not None and processor.frame_ticks > 0
                and source in self.activity)

    # -- timers ----------------------------------------------------------------------

    def touch(self, partition: int) -> None:
        self.activity[partition] = self.now()
        self.flushed.discard(partition)
        self.settled.discard(partition)

    def touch_southbound(self) -> None:
        self.southbound_activity = self.now()

    def housekeeping(self) -> Emission:
        """Timers' work, by how long a source has been quiet:
        - a partition quiet for `source_flush_ms` is flushed: its open frame must reach
          the aggregator, which cannot close it otherwise;
        - the aggregator closes the frames the clock allows;
        - sources idle for `idle_ms` are settled: every partition's (and southbound's)
          final snapshots, the state after all its input, and once every source is idle,
          every pending frame closed and the sectors' and market's final snapshots.
        """
        emission = Emission()
        now = self.now()
        idle_s = self.clock.idle_s
        for partition, processor in self.processors.items():
            quiet = now - self.activity.get(partition, now)
            if partition not in self.flushed and quiet > self.source_flush_s:
                self.flushed.add(partition)
                emission.add(self.ship(processor.flush()))
            if partition not in self.settled and quiet > idle_s:
                self.settled.add(partition)
                emission.output.snapshots += processor.final_snapshots()
        for partition in self.ticks_owned():
            # a partition still working through its records tells the aggregator (maybe in
            # another worker) it is behind, not idle: a partial without groups
            if (now - self.last_shipped.get(partition, 0.0) > self.keepalive_s
                    and self.holds_input(partition)):
                state = self.processors.get(partition)
                watermark = state.watermark if state is not None else -1
                emission.add(self.ship(Output(partials=[FramePartial(partition, watermark,
                                                                     ())])))
        book, last = self.southbound, self.southbound_activity
        if book is not None and last is not None and now - last > idle_s:
            self.southbound_activity = None
            emission.output.snapshots += book.final_snapshots()
        router = self.router
        if router is not None:
            emission.output.add(router.close_ready(CLOSE_STEP_FRAMES))
            if not self.finalised and not router.more_ready and self.clock.all_idle():
                emission.output.add(self._finish_step(router))
        return emission

    def oldest_frame_wait(self) -> float:
        """Wall-clock seconds the oldest pending frame has waited to close (0 if none)."""
        router = self.router
        if router is None or not router.aggregator.pending:
            self.frame_seen.clear()
            return 0.0
        now = self.now()
        pending, seen = router.aggregator.pending, self.frame_seen
        # `pending` holds its frames in the order they first had a group (a frame enters
        # once and leaves when it closes; `seen` starts afresh with each aggregator): the
        # new ones are at its end, and its first has waited longest. A timer calls this:
        # O(new frames), not O(pending) (a backlog holds the day's 20k frames pending
        # until its last partition arrives).
        for frame in reversed(pending):
            if frame in seen:
                break
            seen[frame] = now
        if len(seen) > 2 * len(pending) + 64:  # forget closed frames now and then
            self.frame_seen = seen = {frame: seen[frame] for frame in pending}
        return now - seen[next(iter(pending))]
