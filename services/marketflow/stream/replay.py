"""Reading back what is already in Kafka: a partition's history, and the alerts emitted.

State is rebuilt from the source topics instead of Faust changelog tables: the first record
an agent receives from a partition at offset `o` means offsets `[0, o)` were processed
before (by this or another worker), so replaying them through the same core restores the
exact state. The bound `o` comes from the consumer itself, never from ListOffsets, so this
is right on Apache Kafka and on the embedded broker (whose ListOffsets LATEST is wrong).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from marketflow.infra.kafka_security import client_options

log = logging.getLogger(__name__)


async def read_partition(bootstrap: str, topic: str, partition: int, until: int,
                         batch: int = 5000) -> AsyncIterator[list[tuple[int, bytes]]]:
    """Yield (offset, value) batches of `topic[partition]` for offsets in [earliest, until)."""
    if until <= 0:
        return
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
        auto_offset_reset="earliest", fetch_max_wait_ms=100, max_partition_fetch_bytes=8 << 20,
        **client_options(),
    )
    tp = TopicPartition(topic, partition)
    await consumer.start()
    try:
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        done = False
        while not done:
            records = (await consumer.getmany(tp, timeout_ms=1000, max_records=batch)).get(tp, [])
            out = []
            for record in records:
                if record.offset >= until:
                    done = True
                    break
                out.append((record.offset, record.value))
            if out:
                yield out
            if records and records[-1].offset >= until - 1:
                done = True
    finally:
        await consumer.stop()


class AlertLedger:
    """The ids of every alert already in `mf.alerts`, the source of truth for every sink.

    `refresh()` reads what was appended since the last call (up to each partition's high
    watermark as reported by fetch responses), so a worker that takes over a partition sees
    the alerts its predecessor emitted before dying.
    """

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.ids: set[str] = set()
        self._positions: dict[int, int] = {}
        self._refreshed_at = float("-inf")

    async def refresh_if_older(self, seconds: float) -> list[dict[str, Any]]:
        """One refresh serves every partition assigned in the same rebalance."""
        import time

        if time.monotonic() - self._refreshed_at <= seconds:
            return []
        alerts = await self.refresh()
        self._refreshed_at = time.monotonic()
        return alerts

    async def refresh(self) -> list[dict[str, Any]]:
        """Read what was appended since the last call; returns those alert records."""
        alerts: list[dict[str, Any]] = []
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
                return alerts
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
                    for record in records:
                        try:
                            alert = orjson.loads(record.value)
                            self.ids.add(alert["alert_id"])
                            alerts.append(alert)
                        except (orjson.JSONDecodeError, KeyError, TypeError):
                            log.warning("mf.alerts offset %s holds a record without alert_id",
                                        record.offset)
                        self._positions[tp.partition] = record.offset + 1
                for tp in list(pending):
                    high = consumer.highwater(tp)
                    if high is not None and self._positions.get(tp.partition, 0) >= high:
                        pending.discard(tp)
        finally:
            await consumer.stop()
        return alerts

    def first_time(self, alert_id: str) -> bool:
        """True (and remembered) if this alert id has not been emitted yet."""
        if alert_id in self.ids:
            return False
        self.ids.add(alert_id)
        return True

