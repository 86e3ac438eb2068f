"""Reading back what is already in Kafka: a partition's history, the alerts emitted, and
where each day began.

State is rebuilt from the source topics instead of Faust changelog tables: the first record
an agent receives from a partition at offset `o` means offsets before `o` were processed
(by this or another worker), so replaying them through the same core restores the exact
state. Only the current trading day's are replayed (the processors reset at a day change):
`daystart.find_start` picks the first offset of that day, asking the broker through
`PartitionLog` and the day starts recorded in `mf.internal.checkpoints` (`CheckpointBook`).
The end `o` comes from the consumer itself, never from ListOffsets LATEST, so this is right
on Apache Kafka and on the embedded broker (whose ListOffsets LATEST is wrong).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from marketflow.infra.kafka_security import client_options
from marketflow.stream.daystart import Checkpoint, Record

log = logging.getLogger(__name__)


class PartitionLog:
    """One partition read directly (no consumer group): the `daystart.PartitionView` that
    `find_start` asks, and the replay. Use as `async with`."""

    def __init__(self, bootstrap: str, topic: str, partition: int, batch: int = 5000) -> None:
        self.tp = TopicPartition(topic, partition)
        self.batch = batch
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
            auto_offset_reset="earliest", fetch_max_wait_ms=100,
            max_partition_fetch_bytes=8 << 20, **client_options(),
        )

    async def __aenter__(self) -> PartitionLog:
        await self.consumer.start()
        self.consumer.assign([self.tp])
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None:
        await self.consumer.stop()

    async def earliest(self) -> int:
        return int((await self.consumer.beginning_offsets([self.tp]))[self.tp])

    async def offset_for_time(self, ts_ms: int) -> int | None:
        try:
            answer = (await self.consumer.offsets_for_times({self.tp: ts_ms})).get(self.tp)
        except KafkaError as error:  # e.g. UnsupportedVersionError: no time index
            log.info("%s[%d]: ListOffsets by timestamp failed: %r", self.tp.topic,
                     self.tp.partition, error)
            return None
        return None if answer is None or answer.offset < 0 else int(answer.offset)

    async def records(self, start: int, stop: int) -> list[Record]:
        """The records of offsets [start, stop): a few, to look at. They exist (the caller
        asks below the last offset processed), so this gives up only after 50 fetches in
        a row without any: a worker replaying other partitions at the same time can keep
        the fetcher from running for seconds (seen here with 10)."""
        out: list[Record] = []
        async for batch in self.replay(start, stop, patience=50):
            out += batch
        return out

    async def replay(self, start: int, until: int, patience: int | None = None,
                     ) -> AsyncIterator[list[Record]]:
        """(offset, value, Kafka timestamp) batches of offsets [start, until); with
        `patience`, stops after that many empty fetches in a row (counted, not timed: a
        worker busy replaying other partitions can starve the fetcher for seconds)."""
        if until <= start:
            return
        consumer, tp = self.consumer, self.tp
        consumer.seek(tp, start)
        empty = 0
        while True:
            fetched = await consumer.getmany(tp, timeout_ms=200 if patience else 1000,
                                             max_records=self.batch)
            records = fetched.get(tp, [])
            out = [(r.offset, r.value, r.timestamp) for r in records if r.offset < until]
            empty = 0 if records else empty + 1
            if out:
                yield out
            if records and records[-1].offset >= until - 1:
                return
            if patience is not None and empty >= patience:
                return


class TopicTail:
    """Reads what was appended to a topic (every partition) since the last call, up to
    each partition's high watermark as fetch responses report it (right on tansu too)."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self._positions: dict[int, int] = {}
        self._refreshed_at = float("-inf")
        self._lock = asyncio.Lock()

    async def read_if_older(self, seconds: float) -> list[Any]:
        """`read()` unless one ended less than `seconds` ago (one read serves every
        partition assigned in the same rebalance; callers at the same time share it)."""
        async with self._lock:
            if time.monotonic() - self._refreshed_at <= seconds:
                return []
            records = await self.read()
            self._refreshed_at = time.monotonic()
            return records

    async def read(self) -> list[Any]:
        """The records appended since the last call (aiokafka ConsumerRecords)."""
        out: list[Any] = []
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap,
                                    enable_auto_commit=False, group_id=None,
                                    auto_offset_reset="earliest", fetch_max_wait_ms=100,
                                    **client_options())
        await consumer.start()
        try:
            partitions = consumer.partitions_for_topic(self.topic)
            if not partitions:
                await consumer.force_metadata_update()
                partitions = consumer.partitions_for_topic(self.topic) or set()
            tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
            if not tps:
                return out
            consumer.assign(tps)
            for tp in tps:
                position = self._positions.get(tp.partition)
                if position is None:
                    await consumer.seek_to_beginning(tp)
                else:
                    consumer.seek(tp, position)
            pending = set(tps)
            idle_rounds = 0
            while pending and idle_rounds < 2:
                batches = await consumer.getmany(*pending, timeout_ms=100, max_records=10_000)
                idle_rounds = 0 if batches else idle_rounds + 1
                for tp, records in batches.items():
                    out += records
                    if records:
                        self._positions[tp.partition] = records[-1].offset + 1
                for tp in list(pending):
                    high = consumer.highwater(tp)
                    if high is not None and self._positions.get(tp.partition, 0) >= high:
                        pending.discard(tp)
        finally:
            await consumer.stop()
        return out


class AlertLedger:
    """The ids of every alert already in `mf.alerts`, the source of truth for every sink.

    `refresh()` reads what was appended since the last call, so a worker that takes over a
    partition sees the alerts its predecessor emitted before dying. It reads the whole
    topic the first time, not only the current day: a rebuild may replay the end of an
    earlier day (`daystart`), and the topic holds a few hundred small records a day.
    """

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.ids: set[str] = set()
        self._tail = TopicTail(bootstrap, topic)

    async def refresh_if_older(self, seconds: float) -> list[dict[str, Any]]:
        return self._alerts(await self._tail.read_if_older(seconds))

    async def refresh(self) -> list[dict[str, Any]]:
        """Read what was appended since the last call; returns those alert records."""
        return self._alerts(await self._tail.read())

    def _alerts(self, records: list[Any]) -> list[dict[str, Any]]:
        alerts: list[dict[str, Any]] = []
        for record in records:
            try:
                alert = orjson.loads(record.value)
                self.ids.add(alert["alert_id"])
                alerts.append(alert)
            except (orjson.JSONDecodeError, KeyError, TypeError):
                log.warning("mf.alerts offset %s holds a record without alert_id",
                            record.offset)
        return alerts

    def first_time(self, alert_id: str) -> bool:
        """True (and remembered) if this alert id has not been emitted yet."""
        if alert_id in self.ids:
            return False
        self.ids.add(alert_id)
        return True


class CheckpointBook:
    """The first offset of each day per partition, as recorded in the checkpoints topic by
    the workers that read those records (`daystart.DayWatch`); several records for the same
    day (two workers saw it begin) keep the lowest offset."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.days: dict[tuple[str, int], dict[int, int]] = {}
        self._tail = TopicTail(bootstrap, topic)

    async def refresh_if_older(self, seconds: float) -> None:
        for record in await self._tail.read_if_older(seconds):
            try:
                self.add(Checkpoint.from_json(record.value))
            except (ValueError, KeyError, TypeError):
                log.warning("%s offset %s is not a checkpoint", self._tail.topic,
                            record.offset)

    def add(self, checkpoint: Checkpoint) -> None:
        days = self.days.setdefault((checkpoint.topic, checkpoint.partition), {})
        known = days.get(checkpoint.day)
        if known is None or checkpoint.first_offset < known:
            days[checkpoint.day] = checkpoint.first_offset

    def of(self, topic: str, partition: int) -> dict[int, int]:
        return self.days.get((topic, partition), {})
