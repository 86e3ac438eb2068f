"""Faust wiring: topics, agents and timers around `Runtime`; no market logic here.

Agents decode -> core -> emit. Outputs go through `Sinks` (Kafka topics, Redis, metrics).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import faust

from marketflow.core.rules import RulesError, load_rules
from marketflow.stream.replay import AlertLedger, read_partition
from marketflow.stream.runtime import Runtime
from marketflow.stream.sinks import Sinks

log = logging.getLogger("marketflow.worker")


FETCH_MAX_WAIT_MS = 5


def _shorten_fetch_wait() -> None:
    """faust-streaming hard-codes fetch_max_wait_ms=1500 for its worker consumer. A broker
    that holds a fetch for the full wait when little data is ready (the embedded tansu
    does) then adds up to 1.5 s to every tick's way to its alert; we ask for 5 ms."""
    from faust.transport.drivers import aiokafka as driver

    original = driver.AIOKafkaConsumerThread._create_worker_consumer
    if getattr(original, "_marketflow_patched", False):
        return

    def create(self: Any, *args: Any, **kwargs: Any) -> Any:
        consumer = original(self, *args, **kwargs)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer

    create._marketflow_patched = True  # type: ignore[attr-defined]
    driver.AIOKafkaConsumerThread._create_worker_consumer = create  # type: ignore[method-assign]


def build_app(config: Any, runtime: Runtime, sinks: Sinks, ledger: AlertLedger,
              rules_path: Path, windows: tuple[str, ...]) -> faust.App:
    """`config` is a `WorkerConfig` (see worker.py)."""
    _shorten_fetch_wait()
    app = faust.App(
        config.app_id,
        broker=f"kafka://{config.bootstrap}",
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
    topics = config.topics
    ticks_topic = app.topic(topics.ticks, value_serializer="raw", key_serializer="raw")
    partials_topic = app.topic(topics.partials, value_serializer="raw", key_serializer="raw")
    southbound_topic = app.topic(topics.southbound, value_serializer="raw",
                                 key_serializer="raw")
    state: dict[str, Any] = {"rules_mtime": _mtime(rules_path),
                             "progress": (time.monotonic(), 0)}

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def on_revoked(app: faust.App, revoked: set[Any], **kwargs: Any) -> None:
        for tp in revoked:
            if tp.topic == topics.ticks:
                runtime.processors.pop(tp.partition, None)
            elif tp.topic == topics.partials:
                runtime.aggregator = None
            elif tp.topic == topics.southbound:
                runtime.southbound = None

    @app.on_before_shutdown.connect  # type: ignore[arg-type]
    async def on_shutdown(app: faust.App, **kwargs: Any) -> None:
        await sinks.stop()

    @app.agent(ticks_topic)
    async def on_ticks(stream: Any) -> None:
        async for event in stream.events():
            message = event.message
            partition = message.partition
            processor = runtime.processors.get(partition)
            if processor is None:
                processor = await _rebuild_partition(partition, message.offset)
            started = time.perf_counter()
            applied = runtime.apply_ticks(processor, event.value, partition, message.offset,
                                          sinks.reject)
            runtime.ticks += applied
            sinks.count_ticks(applied)
            runtime.touch(partition)
            if runtime.ship_partials(processor.outbox):
                assert runtime.aggregator is not None
                await sinks.publish(runtime.aggregator.outbox)
            await sinks.publish(processor.outbox, produced_ms=message.timestamp)
            sinks.metrics_batch(time.perf_counter() - started)

    async def _rebuild_partition(partition: int, until: int) -> Any:
        processor = runtime.new_processor(partition)
        started = time.perf_counter()
        await ledger.refresh_if_older(2.0)
        replayed = 0
        async for batch in read_partition(config.bootstrap, topics.ticks, partition, until):
            for offset, value in batch:
                runtime.apply_ticks(processor, value, partition, offset, _ignore)
                replayed += 1
            runtime.ship_partials(processor.outbox, local=False)
            await sinks.publish(processor.outbox, replay=True)
        resync = runtime.resync_partial(processor)
        if resync is not None:
            processor.outbox.partials.append(resync)
        runtime.ship_partials(processor.outbox, local=False)
        await sinks.publish(processor.outbox)
        runtime.processors[partition] = processor
        log.info("md.ticks[%d]: rebuilt from %d record(s) in %.2fs", partition, replayed,
                 time.perf_counter() - started)
        return processor

    @app.agent(partials_topic)
    async def on_partials(stream: Any) -> None:
        async for event in stream.events():
            if runtime.aggregator is None:
                await _rebuild_aggregator(event.message.partition, event.message.offset)
            assert runtime.aggregator is not None
            started = time.perf_counter()
            runtime.apply_partial(event.value, sinks.reject, event.message.partition,
                                  event.message.offset)
            await sinks.publish(runtime.aggregator.outbox)
            sinks.metrics_frame(time.perf_counter() - started)

    async def _rebuild_aggregator(partition: int, until: int) -> None:
        aggregator = runtime.new_aggregator()
        runtime.aggregator = aggregator
        runtime.aggregator_rebuilding = True
        try:
            await ledger.refresh_if_older(2.0)
            replayed = 0
            async for batch in read_partition(config.bootstrap, topics.partials, partition,
                                              until):
                for _, value in batch:
                    runtime.apply_partial(value)
                    replayed += 1
                await sinks.publish(aggregator.outbox, replay=True)
        finally:
            runtime.aggregator_rebuilding = False
        log.info("frame partials: aggregator rebuilt from %d record(s)", replayed)

    @app.agent(southbound_topic)
    async def on_southbound(stream: Any) -> None:
        async for event in stream.events():
            message = event.message
            if runtime.southbound is None:
                book = runtime.new_southbound()
                await ledger.refresh_if_older(2.0)
                async for batch in read_partition(config.bootstrap, topics.southbound,
                                                  message.partition, message.offset):
                    for offset, value in batch:
                        runtime.apply_southbound(book, value, message.partition, offset,
                                                 _ignore)
                    await sinks.publish(book.outbox, replay=True)
                runtime.southbound = book
            runtime.apply_southbound(runtime.southbound, event.value, message.partition,
                                     message.offset, sinks.reject)
            await sinks.publish(runtime.southbound.outbox, produced_ms=message.timestamp)

    @app.timer(interval=0.1)
    async def housekeeping() -> None:
        for processor in runtime.idle_processors():
            runtime.ship_partials(processor.outbox)
            await sinks.publish(processor.outbox)
        if runtime.aggregator is not None:
            runtime.close_frames()
            if runtime.finalise_if_quiet() and runtime.southbound is not None:
                await sinks.publish(runtime.southbound.outbox)
            await sinks.publish(runtime.aggregator.outbox)
        await sinks.flush()

    @app.timer(interval=5.0)
    async def report_progress() -> None:
        now, ticks = time.monotonic(), runtime.ticks
        last_at, last_ticks = state["progress"]
        state["progress"] = (now, ticks)
        if ticks != last_ticks:
            rate = (ticks - last_ticks) / max(now - last_at, 1e-9)
            log.info("ticks %d (%.0f/s), partitions %s, alerts %d", ticks, rate,
                     sorted(runtime.processors), sinks.alerts_emitted)

    @app.timer(interval=1.0)
    async def reload_rules() -> None:
        mtime = _mtime(rules_path)
        if mtime == state["rules_mtime"]:
            return
        state["rules_mtime"] = mtime
        try:
            rules = load_rules(rules_path, windows)
        except RulesError as error:
            log.error("rules file changed but is invalid; keeping the previous rules: %s", error)
            return
        runtime.set_rules(rules)
        log.info("rules reloaded from %s: %d rule(s)", rules_path, len(rules.rules))

    app.marketflow_sinks = sinks  # type: ignore[attr-defined]
    return app


def _ignore(*_: Any) -> None:
    """Rejects seen again while rebuilding were dead-lettered the first time."""


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0

