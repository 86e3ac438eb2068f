"""Faust wiring: topics, agents and timers around `Runtime`; no market logic here.

Agents decode -> core -> route: every step of `Runtime` returns an `Emission`, and
`route` is the one place it goes out (`Sinks`: Kafka topics, Redis, metrics). State is
rebuilt from the source topics, from the first offset of the current trading day
(`rebuild`, the same for all three agents; `daystart.py` finds that offset). `md.ticks` is
read in bulk by `TicksReader` and handed to the ticks agent a fetched batch at a time
(`ticks_reader.py` says why); the partials and southbound agents read their topics
through Faust.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import faust

from marketflow.core.frames import FramePartial
from marketflow.core.partition import PartitionProcessor
from marketflow.core.rules import RulesError, load_rules
from marketflow.infra.kafka_security import client_options, faust_credentials
from marketflow.stream.daystart import (
    DayWatch,
    EventDay,
    Record,
    Start,
    find_start,
    partials_day,
    southbound_day,
    ticks_day,
)
from marketflow.stream.faust_patches import shorten_fetch_wait
from marketflow.stream.replay import AlertLedger, CheckpointBook, PartitionLog
from marketflow.stream.runtime import CLOSE_STEP_FRAMES, Emission, Runtime, ignore_rejects
from marketflow.stream.sinks import Sinks
from marketflow.stream.ticks_reader import TicksBatch, TicksReader

log = logging.getLogger("marketflow.worker")

REPLAY_TAIL_FRAMES = 120  # frames a rebuild re-sends before its resync partial


class MarketflowApp:
    """The Faust app of one worker. `config` is a `WorkerConfig` (see worker.py)."""

    def __init__(self, config: Any, runtime: Runtime, sinks: Sinks, ledger: AlertLedger,
                 rules_path: Path, windows: tuple[str, ...]) -> None:
        self.config = config
        self.topics = config.topics
        self.runtime = runtime
        self.sinks = sinks
        self.ledger = ledger
        self.checkpoints = CheckpointBook(config.bootstrap, self.topics.checkpoints)
        self.days = DayWatch()
        self.rules_path = rules_path
        self.windows = windows
        self.rules_mtime = _mtime(rules_path)
        self.progress = (time.monotonic(), 0)
        shorten_fetch_wait()
        self.app = self._faust_app()
        self.ticks_batches = self.app.channel()  # TicksReader -> the ticks agent
        self.reader = TicksReader(
            config.bootstrap, self.topics.ticks, f"{config.app_id}.ticks",
            deliver=self.ticks_batches.put,  # type: ignore[arg-type]  # a value, not an Event
            revoked=self.on_ticks_revoked, resume=self.resume_ticks,
            session_timeout_s=config.session_timeout_s, heartbeat_s=config.heartbeat_s,
            client_options=client_options())
        runtime.ticks_behind = self.reader.behind
        runtime.ticks_owned = lambda: self.reader.owned
        self.frame_wait_warned = 0.0
        self.closer: asyncio.Future[None] | None = None  # close_in_background's task
        self.partials_read: tuple[Any, int] | None = None  # (tp, next offset) read
        self.rebuilds: dict[int, asyncio.Future[PartitionProcessor]] = {}
        self._register()

    def _faust_app(self) -> faust.App:
        config = self.config
        return faust.App(
            config.app_id,
            broker=f"kafka://{config.bootstrap}",
            broker_credentials=faust_credentials(),
            value_serializer="raw",
            key_serializer="raw",
            store="memory://",
            topic_partitions=config.ticks_partitions,
            topic_allow_declare=False,
            broker_session_timeout=config.session_timeout_s,
            broker_heartbeat_interval=config.heartbeat_s,
            broker_commit_interval=1.0,
            broker_max_poll_records=2000,
            consumer_max_fetch_size=8 << 20,
            stream_wait_empty=False,
            consumer_auto_offset_reset="earliest",
            producer_acks=-1,
            web_host="127.0.0.1",
            web_port=config.web_port,
            web_enabled=False,
            datadir=str(config.datadir),
        )

    def _register(self) -> None:
        app, topics = self.app, self.topics

        def raw_topic(name: str) -> Any:
            return app.topic(name, value_serializer="raw", key_serializer="raw")

        @app.agent(self.ticks_batches, name="marketflow.ticks")
        async def on_ticks(stream: Any) -> None:
            async for batch in stream:
                await self.on_ticks(batch)

        @app.task
        async def read_ticks() -> None:
            await app.agents.wait_until_agents_started()  # the channel has its reader
            await self.reader.run()

        @app.agent(raw_topic(topics.partials), name="marketflow.partials")
        async def on_partials(stream: Any) -> None:
            async for event in stream.events():
                await self.on_partials(event)

        @app.agent(raw_topic(topics.southbound), name="marketflow.southbound")
        async def on_southbound(stream: Any) -> None:
            async for event in stream.events():
                await self.on_southbound(event)

        app.timer(interval=0.1, name="marketflow.housekeeping")(self.housekeeping)
        app.timer(interval=5.0, name="marketflow.progress")(self.report_progress)
        app.timer(interval=1.0, name="marketflow.rules")(self.reload_rules)
        app.on_partitions_assigned.connect(self.on_assigned)  # type: ignore[arg-type]
        app.on_partitions_revoked.connect(self.on_revoked)  # type: ignore[arg-type]
        app.on_before_shutdown.connect(self.on_shutdown)  # type: ignore[arg-type]

    # -- the one way out -------------------------------------------------------------

    async def route(self, emission: Emission, replay: bool = False,
                    produced_ms: int | None = None) -> None:
        self.sinks.ship_partials(emission.shipped)
        await self.sinks.publish(emission.output, replay=replay, produced_ms=produced_ms)

    async def rebuild(self, topic: str, partition: int, until: int,
                      apply: Callable[[list[Record]], Emission], event_day: EventDay,
                      ) -> tuple[int, Start]:
        """Replay `topic[partition]` from the first offset of the current trading day
        (`daystart.find_start`; `event_day` reads a record's event day) up to offset
        `until` (what this worker or a predecessor processed before) through `apply`, a
        batch of (offset, value, timestamp) at a time; returns the record count and the
        start. Alerts come out once (the ledger knows those already in `mf.alerts`), and
        none of a day replayed only in part (`Start.partial_through`)."""
        await self.refresh_ledger()
        await self.checkpoints.refresh_if_older(1.0)
        started = time.perf_counter()
        replayed = 0
        async with PartitionLog(self.config.bootstrap, topic, partition) as history:
            start = await find_start(history, until, event_day,
                                     self.checkpoints.of(topic, partition))
            self.days.start(topic, partition, start.recorded_day)
            partial = start.partial_through
            async for batch in history.replay(start.offset, until):
                replayed += len(batch)
                self.note_days(topic, partition, batch)
                emission = apply(batch)
                if partial is not None:
                    emission.output.alerts = [a for a in emission.output.alerts
                                              if a["trading_date"] > partial]
                await self.route(emission, replay=True)
        self.sinks.count_rebuild(topic, replayed)
        log.log(logging.WARNING if start.via == "earliest" else logging.INFO,
                "%s[%d]: rebuilt from %d record(s), offsets [%d, %d) of [%d, %d): %s; in "
                "%.2fs", topic, partition, replayed, start.offset, until, start.earliest,
                until, start.describe(), time.perf_counter() - started)
        return replayed, start

    def note_days(self, topic: str, partition: int,
                  records: Sequence[tuple[int, Any, int]]) -> None:
        """Record where each day begins in a partition (read in order since its rebuild):
        a successor's rebuild starts there (`daystart.DayWatch`)."""
        for checkpoint in self.days.observe(topic, partition, records):
            self.checkpoints.add(checkpoint)
            self.sinks.send_checkpoint(checkpoint)

    @staticmethod
    def each(apply: Callable[[int, bytes], Emission],
             ) -> Callable[[list[Record]], Emission]:
        """A per-record step as a batch step for `rebuild`."""
        def batch_step(batch: list[Record]) -> Emission:
            emission = Emission()
            for offset, value, _ in batch:
                emission.add(apply(offset, value))
            return emission
        return batch_step

    # -- agents ----------------------------------------------------------------------

    async def on_ticks(self, batch: TicksBatch) -> None:
        runtime, sinks = self.runtime, self.sinks
        partition = batch.partition
        if partition not in self.reader.owned:
            self.reader.finished(batch, processed=False)
            return  # revoked meanwhile: its new owner reads it from the last commit
        processor = runtime.processors.get(partition)
        if processor is None:
            processor = await self.processor_for(partition, batch.records[0][0])
        started = time.perf_counter()
        emission = runtime.on_ticks_batch(processor, batch.records, sinks.reject)
        self.note_days(self.topics.ticks, partition, batch.records)
        runtime.ticks += emission.ticks
        sinks.count_ticks(emission.ticks, partition)
        runtime.touch(partition)
        await self.route(emission, produced_ms=batch.records[-1][2])
        await self.close_more()
        sinks.metrics_batch(time.perf_counter() - started)
        self.reader.finished(batch)

    async def close_more(self) -> None:
        """Frames the aggregator may close beyond its step, a step at a time, the event loop
        given back in between (`runtime.CLOSE_STEP_FRAMES`)."""
        while (emission := self.runtime.close_more()) is not None:
            await asyncio.sleep(0)
            await self.route(emission)

    def close_in_background(self) -> None:
        """The frames the timer found ready beyond a step close in a task of their own, a
        step at a time: the timer must come round again on time (a quiet partition's
        flush starts the idle clock), not after a backlog's 20k frames (0.5-0.9 s, and the
        day's last figures as much later)."""
        router = self.runtime.router
        if router is None or not router.more_ready:
            return
        if self.closer is None or self.closer.done():
            self.closer = asyncio.ensure_future(self.close_more())
            self.closer.add_done_callback(_closing_failed)

    async def resume_ticks(self, partition: int, committed: int) -> None:
        await self.processor_for(partition, committed)

    async def processor_for(self, partition: int, until: int) -> PartitionProcessor:
        """The partition's processor, rebuilt from offsets [earliest, until) the first time
        (once, however many ask while it is being rebuilt)."""
        processor = self.runtime.processors.get(partition)
        if processor is not None:
            return processor
        pending = self.rebuilds.get(partition)
        if pending is None:
            pending = self.rebuilds[partition] = asyncio.ensure_future(
                self._rebuild_ticks(partition, until))
            pending.add_done_callback(lambda _: self.rebuilds.pop(partition, None))
        return await asyncio.shield(pending)

    async def on_ticks_revoked(self, partitions: set[int]) -> None:
        for partition in partitions:
            self.runtime.processors.pop(partition, None)
            self.days.forget(self.topics.ticks, partition)

    async def _rebuild_ticks(self, partition: int, until: int) -> PartitionProcessor:
        runtime = self.runtime
        processor = runtime.new_processor(partition)
        replayed_partials: list[FramePartial] = []

        def apply(batch: list[Record]) -> Emission:
            emission = runtime.on_ticks_batch(processor, batch, ignore_rejects, replay=True)
            replayed_partials.extend(emission.output.partials)
            emission.output.partials = []
            return emission

        await self.rebuild(self.topics.ticks, partition, until, apply, ticks_day)
        out = processor.emit()
        # Re-send only the last REPLAY_TAIL_FRAMES frames' partials, then the partition's
        # whole state (the resync): a predecessor can have died before sending what its
        # last records produced, and the tail gives the aggregator those frames one by
        # one; anything older it has already (or the resync sums it up). Re-sending the
        # whole day would flood the partials topic at every rebuild.
        horizon = (processor.frame or 0) - REPLAY_TAIL_FRAMES
        tail = [p for p in replayed_partials + out.partials
                if p.groups and p.groups[-1].frame >= horizon]
        resync = runtime.resync_partial(processor)
        out.partials = tail + ([resync] if resync is not None else [])
        await self.route(runtime.ship(out, in_process=False))
        runtime.processors[partition] = processor
        return processor

    async def on_partials(self, event: Any) -> None:
        runtime, message = self.runtime, event.message
        if runtime.router is None:
            await self._rebuild_aggregator(message.partition, message.offset)
        started = time.perf_counter()
        self.note_days(message.topic, message.partition,
                       [(message.offset, None, timestamp_ms(message))])
        self.partials_read = (message.tp, message.offset + 1)
        emission = runtime.on_partials(event.value, self.sinks.reject, message.partition,
                                       message.offset, CLOSE_STEP_FRAMES)
        await self.route(emission)
        await self.close_more()
        self.sinks.metrics_frame(time.perf_counter() - started)

    async def _rebuild_aggregator(self, partition: int, until: int) -> None:
        runtime = self.runtime
        runtime.new_aggregator()
        runtime.aggregator_rebuilding = True
        try:
            _, start = await self.rebuild(
                self.topics.partials, partition, until,
                self.each(lambda _, value: runtime.on_partials(value)), partials_day)
            if start.partial_day is not None:  # partials of earlier days were skipped
                runtime.handoff.skipped_before(start.partial_day + 1)
        finally:
            runtime.aggregator_rebuilding = False

    async def on_southbound(self, event: Any) -> None:
        runtime, message = self.runtime, event.message
        if runtime.southbound is None:
            book = runtime.new_southbound()
            await self.rebuild(
                self.topics.southbound, message.partition, message.offset,
                self.each(lambda offset, value: runtime.on_southbound(
                    book, value, message.partition, offset, ignore_rejects)), southbound_day)
            runtime.southbound = book
        self.note_days(message.topic, message.partition,
                       [(message.offset, None, timestamp_ms(message))])
        emission = runtime.on_southbound(runtime.southbound, event.value, message.partition,
                                         message.offset, self.sinks.reject)
        runtime.touch_southbound()
        await self.route(emission, produced_ms=timestamp_ms(message))

    async def refresh_ledger(self) -> None:
        """Read the alerts appended to `mf.alerts` since the last time (by this worker or
        another): none of them is emitted again, and each goes to Redis again (a no-op
        there unless its writer died between the topic and Redis)."""
        restored = self.sinks.restore_alerts(await self.ledger.refresh_if_older(2.0))
        if restored:
            log.info("%d recent alert(s) of %s restored to Redis (deduplicated by id)",
                     restored, self.topics.alerts)

    async def on_assigned(self, app: faust.App, assigned: set[Any], **kwargs: Any) -> None:
        await self.refresh_ledger()

    async def on_revoked(self, app: faust.App, revoked: set[Any], **kwargs: Any) -> None:
        runtime, topics = self.runtime, self.topics
        for tp in revoked:  # md.ticks partitions: `on_ticks_revoked`
            self.days.forget(tp.topic, tp.partition)
            if tp.topic == topics.partials:
                runtime.router = None
            elif tp.topic == topics.southbound:
                runtime.southbound = None

    async def on_shutdown(self, app: faust.App, **kwargs: Any) -> None:
        if self.closer is not None:
            self.closer.cancel()  # what it had not closed is rebuilt from the topics
        await self.sinks.stop()

    # -- timers ----------------------------------------------------------------------

    async def housekeeping(self) -> None:
        """Every 100 ms: idle partitions flushed, frames closed, outputs flushed."""
        self.runtime.clock.input_pending = self.partials_unread()
        await self.route(self.runtime.housekeeping())
        self.close_in_background()
        await self.sinks.flush(wait=False)
        self.watch_frame_wait()
        if self.runtime.router is not None:
            aggregator = self.runtime.router.aggregator
            self.sinks.metrics_dropped_groups(aggregator.redelivered_groups,
                                              aggregator.stale_groups)

    def partials_unread(self) -> bool:
        """Does the partials partition hold records the aggregator has not read yet? A
        silent source may have partials in them: none counts as idle (FrameClock.idle).
        The end comes from fetch responses (right on the embedded broker too)."""
        if self.runtime.router is None or self.partials_read is None:
            return False
        tp, next_offset = self.partials_read
        try:
            high = self.app.consumer.highwater(tp)
        except (AssertionError, KeyError):  # not assigned (a rebalance in progress)
            return False
        return high is not None and next_offset < high

    def watch_frame_wait(self) -> None:
        """A frame waits for every active source to pass its end: at most `idle_ms` plus
        a flush (250 ms) and a timer tick (100 ms) once its sources are quiet, longer only
        while a source still works through a backlog. Longer than that is reported."""
        wait = self.runtime.oldest_frame_wait()
        self.sinks.metrics_frame_wait(wait)
        bound = self.runtime.clock.idle_s + 0.35
        now = time.monotonic()
        if wait > 2 * bound and now - self.frame_wait_warned > 10:
            self.frame_wait_warned = now
            clock = self.runtime.clock
            holding = [(s, clock.watermarks.get(s)) for s in range(clock.sources)
                       if not clock.idle(s)]
            behind = sorted(p for p in self.reader.owned if self.reader.behind(p))
            log.warning("a frame has waited %.1fs to close (bound %.2fs once sources are "
                        "quiet); active sources (source, watermark): %s; behind here: %s; "
                        "partials unread: %s", wait, bound, holding, behind or "none",
                        clock.input_pending)

    async def report_progress(self) -> None:
        now, ticks = time.monotonic(), self.runtime.ticks
        last_at, last_ticks = self.progress
        self.progress = (now, ticks)
        if ticks != last_ticks:
            rate = (ticks - last_ticks) / max(now - last_at, 1e-9)
            log.info("ticks %d (%.0f/s), partitions %s, alerts %d", ticks, rate,
                     sorted(self.runtime.processors), self.sinks.alerts_emitted)

    async def reload_rules(self) -> None:
        mtime = _mtime(self.rules_path)
        if mtime == self.rules_mtime:
            return
        self.rules_mtime = mtime
        try:
            rules = load_rules(self.rules_path, self.windows)
        except RulesError as error:
            log.error("rules file changed but is invalid; keeping the previous rules: %s", error)
            return
        self.runtime.set_rules(rules)
        log.info("rules reloaded from %s: %d rule(s)", self.rules_path, len(rules.rules))


def _closing_failed(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and (error := task.exception()) is not None:
        log.error("closing frames failed: %r", error, exc_info=error)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def timestamp_ms(message: Any) -> int:
    """A Faust message's Kafka timestamp in epoch ms (Faust gives seconds, a float;
    -1 when the record has none)."""
    seconds = message.timestamp
    return -1 if seconds is None else round(seconds * 1000)
