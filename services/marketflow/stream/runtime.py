"""The worker's state and the decisions that do not depend on Faust.

One `PartitionProcessor` per assigned `md.ticks` partition, the `SectorAggregator` fed by
`mf.internal.frame-partials` (a single partition, so exactly one worker aggregates), and the
`SouthboundBook` of `md.southbound`. Each is rebuilt from its source topic the first time
its partition is seen (see `replay.py`).

Frame closing (SPEC.md's evaluation clock): frame k closes once every source partition's
watermark has passed its end, leaving out sources idle for `idle_ms` of wall time; after
a quiet spell every source gets `idle_ms` of grace to report in before it can be left out,
so that the first partition to wake up cannot close frames the others still hold.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from collections.abc import Callable

import orjson

from marketflow.core.outbox import (
    FrameGroup,
    FramePartial,
    Outbox,
    applied_prefix,
    decode_partials,
)
from marketflow.core.partition import PartitionProcessor
from marketflow.core.records import RecordError, parse_southbound, parse_ticks
from marketflow.core.refdata import ReferenceData
from marketflow.core.rules import RuleSet
from marketflow.core.sectors import SectorAggregator
from marketflow.core.southbound import SouthboundBook

log = logging.getLogger(__name__)

Reject = Callable[[str, int | None, int | None, str, str, bytes], None]


class FrameClock:
    """Which frames may close, from source watermarks and wall-clock idleness."""

    def __init__(self, sources: int, frame_ms: int, idle_ms: int,
                 now: Callable[[], float] = time.monotonic) -> None:
        self.sources = sources
        self.frame_ms = frame_ms
        self.idle_s = idle_ms / 1000
        self.now = now
        start = now()
        self.heard = dict.fromkeys(range(sources), start)
        self.watermarks = dict.fromkeys(range(sources), -1)
        self.resumed_at = start
        self.quiet = True  # until the first partial: then every source gets its grace

    def heard_from(self, source: int, watermark: int) -> None:
        now = self.now()
        if self.quiet:
            self.quiet = False
            self.resumed_at = now
        self.heard[source] = now
        if watermark > self.watermarks.get(source, -1):
            self.watermarks[source] = watermark

    def idle(self, source: int, now: float | None = None) -> bool:
        now = self.now() if now is None else now
        return now - max(self.heard.get(source, 0.0), self.resumed_at) > self.idle_s

    def all_idle(self) -> bool:
        return all(self.idle(s) for s in range(self.sources))

    def closable_through(self) -> int | None:
        """The last frame every active source has passed, or None if some source holds all."""
        now = self.now()
        active = [self.watermarks[s] for s in range(self.sources) if not self.idle(s, now)]
        if not active:
            return None
        return min(active) // self.frame_ms - 1


class Runtime:
    def __init__(self, ref: ReferenceData, rules: RuleSet, frame_ms: int,
                 windows: tuple[str, ...], sources: int, idle_ms: int,
                 source_flush_ms: int = 250) -> None:
        self.ref = ref
        self.rules = rules
        self.frame_ms = frame_ms
        self.windows = windows
        self.processors: dict[int, PartitionProcessor] = {}
        self.activity: dict[int, float] = {}
        self.flushed: set[int] = set()
        self.aggregator: SectorAggregator | None = None
        self.aggregator_rebuilding = False
        self.aggregator_token = ""
        self.worker_id = uuid.uuid4().hex[:12]
        self._sent: dict[int, int] = {}  # source -> seq of the last partial sent
        self._must_see: dict[int, int] = {}  # source -> last seq sent by the topic only
        self._seen: dict[int, int] = {}  # source -> last own seq the aggregator read
        self._held: dict[int, list[FramePartial]] = {}  # source -> waiting for the topic
        self._own_prefix = b"\x00"  # no aggregator yet: matches no record
        self.southbound: SouthboundBook | None = None
        self.clock = FrameClock(sources, frame_ms, idle_ms)
        self.source_flush_s = source_flush_ms / 1000
        self.finalised = True
        self.ticks = 0

    # -- construction (also used by rebuilds) ---------------------------------------

    def new_processor(self, partition: int) -> PartitionProcessor:
        return PartitionProcessor(self.ref, self.rules, self.frame_ms, partition, Outbox())

    def new_aggregator(self) -> SectorAggregator:
        """A fresh aggregator (it then replays the partials topic): everything this worker
        sent so far must come to it through the topic before the in-process path opens."""
        self.aggregator_token = uuid.uuid4().hex[:16]
        self._own_prefix = applied_prefix(self.aggregator_token)
        self._must_see = dict(self._sent)
        self._seen = {}
        self._held = {}  # held for a former aggregator: it gets them by the topic now
        return SectorAggregator(self.ref, self.rules, self.frame_ms, self.windows, Outbox())

    def new_southbound(self) -> SouthboundBook:
        return SouthboundBook(self.rules, Outbox())

    def set_rules(self, rules: RuleSet) -> None:
        self.rules = rules
        for processor in self.processors.values():
            processor.set_rules(rules)
        if self.aggregator is not None:
            self.aggregator.engine.set_rules(rules)
        if self.southbound is not None:
            self.southbound.engine.set_rules(rules)

    # -- records ---------------------------------------------------------------------

    @staticmethod
    def apply_ticks(processor: PartitionProcessor, value: bytes, partition: int,
                    offset: int, reject: Reject) -> int:
        """Decode one `md.ticks` record and apply it; bad input goes to `reject`."""
        try:
            ticks = parse_ticks(orjson.loads(value))
        except orjson.JSONDecodeError as error:
            reject("invalid_json", partition, offset, str(error), "ticks", value)
            return 0
        except RecordError as error:
            reject(error.reason, partition, offset, error.detail, "ticks", value)
            return 0
        applied = 0
        for tick in ticks:
            try:
                processor.on_tick(tick)
                applied += 1
            except RecordError as error:
                reject(error.reason, partition, offset, error.detail, "ticks",
                       orjson.dumps(tick.to_json()))
        processor.emit_partial()
        return applied

    @staticmethod
    def apply_southbound(book: SouthboundBook, value: bytes, partition: int, offset: int,
                         reject: Reject) -> None:
        try:
            book.on_update(parse_southbound(orjson.loads(value)))
        except orjson.JSONDecodeError as error:
            reject("invalid_json", partition, offset, str(error), "southbound", value)
        except RecordError as error:
            reject(error.reason, partition, offset, error.detail, "southbound", value)

    def apply_partial(self, value: bytes, reject: Reject | None = None,
                      partition: int | None = None, offset: int | None = None) -> None:
        """A record of `mf.internal.frame-partials` (see `encode_partials`); one that cannot
        be decoded goes to `reject` whole, and changes nothing."""
        aggregator = self.aggregator
        assert aggregator is not None
        if value.startswith(self._own_prefix):
            return  # every partial in it reached this aggregator in-process already
        try:  # a record tagged with this aggregator's token was skipped above
            _, items = decode_partials(value)
            partials = [FramePartial.from_json(item) for item in items]
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            if reject is not None:
                reject("invalid_partial", partition, offset, f"{type(error).__name__}: {error}",
                       "partials", value)
            return
        for partial in partials:
            source = partial.source
            aggregator.on_partial(partial)
            self.clock.heard_from(source, partial.watermark)
            if partial.origin == self.worker_id:
                self._seen[source] = max(self._seen.get(source, 0), partial.seq)
                if self._held.get(source) and self._caught_up(source):
                    self._apply_in_process(self._held.pop(source))
        self.finalised = False
        self.close_frames()

    def ship_partials(self, outbox: Outbox, local: bool = True) -> bool:
        """Stamp a partition's outgoing partials; when the aggregator lives in this worker
        too, hand them to it in-process. True if it got any (its outbox may then hold
        output to publish).

        The in-process path skips the round trip through Kafka, but a source's groups must
        reach the aggregator in order: a partial sent by the topic alone (before the
        aggregator was here, or while it replayed the topic) must be read there first.
        Until it is, the source's newer partials are held here and handed over in order
        when it comes (the topic has one partition: then every earlier partial of that
        source, whoever sent it, is in too). Every partial still goes to the topic (for
        recovery, and for a successor aggregator), marked with this aggregator's token
        when this aggregator has it or will have it in-process, so that it skips the copy.
        """
        partials = outbox.partials
        if not partials:
            return False
        aggregator = self.aggregator
        ready = local and aggregator is not None and not self.aggregator_rebuilding
        now: list[FramePartial] = []
        for i, partial in enumerate(partials):
            source = partial.source
            seq = self._sent.get(source, 0) + 1
            self._sent[source] = seq
            if not ready:
                self._must_see[source] = seq
                partials[i] = dataclasses.replace(partial, origin=self.worker_id, seq=seq)
                continue
            partial = partials[i] = dataclasses.replace(
                partial, origin=self.worker_id, seq=seq, applied_by=self.aggregator_token)
            if self._caught_up(source) and not self._held.get(source):
                now.append(partial)
            else:
                self._held.setdefault(source, []).append(partial)
        if not now:
            return False
        self._apply_in_process(now)
        self.close_frames()
        return True

    def _caught_up(self, source: int) -> bool:
        return self._seen.get(source, 0) >= self._must_see.get(source, 0)

    def _apply_in_process(self, partials: list[FramePartial]) -> None:
        aggregator = self.aggregator
        assert aggregator is not None
        for partial in partials:
            aggregator.on_partial(partial)
            self.clock.heard_from(partial.source, partial.watermark)
        self.finalised = False

    def close_frames(self) -> None:
        aggregator = self.aggregator
        if aggregator is None:
            return
        through = self.clock.closable_through()
        if through is not None:
            aggregator.close_through(through)

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

    # -- timers ----------------------------------------------------------------------

    def idle_processors(self) -> list[PartitionProcessor]:
        """Flush partitions quiet for a while, so their open frame reaches the aggregator."""
        now = time.monotonic()
        out = []
        for partition, processor in self.processors.items():
            if partition in self.flushed:
                continue
            if now - self.activity.get(partition, now) > self.source_flush_s:
                processor.flush()
                processor.outbox.snapshots += processor.final_snapshots()
                self.flushed.add(partition)
                out.append(processor)
        return out

    def touch(self, partition: int) -> None:
        self.activity[partition] = time.monotonic()
        self.flushed.discard(partition)

    def finalise_if_quiet(self) -> bool:
        """When every source is idle: close every pending frame, emit final snapshots."""
        aggregator = self.aggregator
        if aggregator is None or self.finalised or not self.clock.all_idle():
            return False
        self.clock.quiet = True
        aggregator.close_all()
        aggregator.final_snapshots()
        if self.southbound is not None:
            self.southbound.outbox.snapshots += self.southbound.final_snapshots()
        self.finalised = True
        return True
