"""`md.ticks` read in bulk, around Faust's per-record path.

Faust hands an agent one record at a time, and each record costs tens of microseconds of
its machinery (a task per record in the consumer loop, decoding into an Event, a queue
hop, the stream iterator, sensors, acks): with one tick per Kafka record, that caps a
worker at about 12k ticks/s whatever marketflow does (docs/design.md, "Throughput").
So the ticks topic is read here instead, by a plain aiokafka consumer in a consumer group
of its own (`{app_id}.ticks`), in batches of whatever a fetch returned; each batch goes to
the ticks agent (still a Faust agent, on an in-memory channel) as one value. Faust keeps
everything else: the partials and southbound agents, timers, the web server. aiokafka
hands this consumer's records over as plain tuples (`_plain_records`), not one
`ConsumerRecord` per tick.

Read-ahead: the reader hands the agent at most `max_ahead_bytes` of records it has not
finished (at least one batch): the channel between them counts batches, not bytes, and on
a backlog a fast fetch filled it with the day (a worker's peak RSS 400 MB or 680 MB by how
far the reader got ahead).

Offsets: the agent reports each batch as done (`done`); the reader commits the done
offsets every `commit_interval_s` and before it gives a partition up in a rebalance (after
waiting for the agent to finish what was delivered of it), so a successor starts where
this worker stopped and rebuilds the state of what came before (`app.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition

from marketflow.stream.faust_patches import FETCH_MAX_WAIT_MS  # see there: not less

log = logging.getLogger("marketflow.ticks")


def _raw_value(value: bytes) -> bytes:
    """The ticks consumer's value deserializer: the bytes as they are. It also marks the
    consumer whose records `_plain_records` hands over as plain tuples."""
    return value


def _plain_records() -> bool:
    """Let aiokafka hand the ticks consumer's records over as `(offset, value, timestamp)`
    tuples, not `ConsumerRecord`s: one record a tick, and making each one (eleven fields,
    the key and value sizes, the headers copied) was about half of what reading cost the
    worker. Only records decoded with `_raw_value` (this module's consumer) change; every
    other consumer's (Faust's) are untouched. True if patched; False, logged, and the reader
    converts `ConsumerRecord`s as before if aiokafka lacks the private method."""
    from aiokafka.consumer import fetcher

    records = getattr(fetcher, "PartitionRecords", None)
    original = getattr(records, "_consumer_record", None)
    if original is None:
        log.info("aiokafka has no PartitionRecords._consumer_record: md.ticks records are "
                 "read as ConsumerRecords")
        return False
    if getattr(original, "_marketflow_plain", False):
        return True

    def consumer_record(self: Any, tp: Any, record: Any) -> Any:
        if self._value_deserializer is _raw_value:
            return (record.offset, record.value, record.timestamp)
        return original(self, tp, record)

    consumer_record._marketflow_plain = True  # type: ignore[attr-defined]
    records._consumer_record = consumer_record  # type: ignore[union-attr]
    return True


@dataclass(slots=True, frozen=True)
class TicksBatch:
    """Consecutive records of one `md.ticks` partition: (offset, value, timestamp ms), and
    the bytes of their values."""

    partition: int
    records: list[tuple[int, bytes, int]]
    size: int = 0


def _batch(partition: int, records: list[tuple[int, bytes, int]]) -> TicksBatch:
    return TicksBatch(partition, records, sum(len(value) for _, value, _ in records if value))


class TicksReader(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, bootstrap: str, topic: str, group_id: str,
                 deliver: Callable[[TicksBatch], Awaitable[None]],
                 revoked: Callable[[set[int]], Awaitable[None]],
                 resume: Callable[[int, int], Awaitable[None]],
                 session_timeout_s: float, heartbeat_s: float,
                 client_options: dict[str, Any] | None = None,
                 max_records: int = 20000, commit_interval_s: float = 1.0,
                 drain_timeout_s: float = 30.0, max_ahead_bytes: int = 16 << 20) -> None:
        self.topic = topic
        self.deliver = deliver
        self.revoked = revoked
        self.resume = resume
        self.max_records = max_records
        self.commit_interval_s = commit_interval_s
        self.drain_timeout_s = drain_timeout_s
        self.max_ahead_bytes = max_ahead_bytes
        self.ahead_bytes = 0  # values delivered to the agent and not finished
        self.options: dict[str, Any] = dict(  # the consumer is made in run(), in the loop
            bootstrap_servers=bootstrap, group_id=group_id, enable_auto_commit=False,
            auto_offset_reset="earliest", fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
            max_partition_fetch_bytes=8 << 20, fetch_max_bytes=64 << 20,
            value_deserializer=_raw_value,
            session_timeout_ms=int(session_timeout_s * 1000),
            heartbeat_interval_ms=int(heartbeat_s * 1000),
            rebalance_timeout_ms=max(int(session_timeout_s * 1000), 10_000),
            **(client_options or {}),
        )
        self.consumer: AIOKafkaConsumer | None = None
        self.outstanding: dict[int, int] = {}  # partition -> batches the agent still has
        self.done: dict[int, int] = {}  # partition -> next offset the agent has finished
        self.committed: dict[int, int] = {}
        self.owned: set[int] = set()  # partitions assigned to this worker now
        self.unread: dict[int, bool] = {}  # partition -> the broker holds records not fetched
        self._progress = asyncio.Event()

    # -- the agent's side ------------------------------------------------------------

    def behind(self, partition: int) -> bool:
        """Does this worker hold records of `partition` it has not applied yet (unread at
        the broker, or delivered to the agent and not finished)?"""
        if partition not in self.owned:
            return False
        return self.unread.get(partition, True) or self.outstanding.get(partition, 0) > 0

    def finished(self, batch: TicksBatch, processed: bool = True) -> None:
        """The agent is through with `batch`: processed (its outputs are routed), or
        dropped because the partition is no longer ours (its new owner reads it again)."""
        partition = batch.partition
        self.outstanding[partition] = self.outstanding.get(partition, 0) - 1
        self.ahead_bytes -= batch.size
        if processed:
            self.done[partition] = batch.records[-1][0] + 1
        self._progress.set()

    # -- the loop ----------------------------------------------------------------------

    async def run(self) -> None:
        plain = _plain_records()
        consumer = self.consumer = AIOKafkaConsumer(**self.options)
        await consumer.start()
        try:
            consumer.subscribe([self.topic], listener=self)
            last_commit = time.monotonic()
            while True:
                fetched = await consumer.getmany(timeout_ms=100, max_records=self.max_records)
                batches = [_batch(tp.partition, records if plain else
                                  [(r.offset, r.value, r.timestamp) for r in records])
                           for tp, records in fetched.items() if records]
                # every batch counts as outstanding before the first is delivered (which
                # may wait): a partition whose records were fetched is behind, not idle
                for batch in batches:
                    partition = batch.partition
                    self.owned.add(partition)  # fetched: assigned, even if aiokafka has
                    # not told the listener yet
                    self.outstanding[partition] = self.outstanding.get(partition, 0) + 1
                for tp in consumer.assignment():  # positions are cached: no round trip
                    high = consumer.highwater(tp)  # from fetch responses (right on tansu)
                    self.unread[tp.partition] = (
                        high is None or await consumer.position(tp) < high)
                for batch in batches:
                    await self._room_for(batch.size)
                    self.ahead_bytes += batch.size
                    await self.deliver(batch)
                if time.monotonic() - last_commit >= self.commit_interval_s:
                    await self.commit()
                    last_commit = time.monotonic()
        finally:
            try:
                await self.commit()
            except Exception as error:  # stopping anyway: the successor replays a little more
                log.warning("md.ticks: last commit failed: %s", error)
            await consumer.stop()

    async def _room_for(self, size: int) -> None:
        """Wait until the agent has finished enough for `size` more bytes (or everything:
        a batch larger than the bound goes alone)."""
        while self.ahead_bytes > 0 and self.ahead_bytes + size > self.max_ahead_bytes:
            self._progress.clear()
            await self._progress.wait()

    async def commit(self, partitions: set[int] | None = None) -> None:
        offsets = {TopicPartition(self.topic, p): offset for p, offset in self.done.items()
                   if (partitions is None or p in partitions)
                   and self.committed.get(p) != offset}
        if not offsets or self.consumer is None:
            return
        await self.consumer.commit(offsets)
        for tp, offset in offsets.items():
            self.committed[tp.partition] = offset

    # -- rebalances (aiokafka awaits these before the group moves on) -------------------

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        partitions = {tp.partition for tp in revoked}
        if not partitions:
            return
        deadline = time.monotonic() + self.drain_timeout_s
        while any(self.outstanding.get(p, 0) > 0 for p in partitions):
            if time.monotonic() > deadline:
                log.warning("md.ticks: partitions %s revoked before the agent finished "
                            "what it was given; the new owner replays it", sorted(partitions))
                break
            self._progress.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._progress.wait(), timeout=0.5)
        try:
            await self.commit(partitions)
        except Exception as error:
            log.warning("md.ticks: commit on revoke failed (%s); the new owner replays "
                        "from the last commit", error)
        self.owned -= partitions
        for p in partitions:
            self.unread.pop(p, None)
            self.outstanding.pop(p, None)
            self.done.pop(p, None)
            self.committed.pop(p, None)
        await self.revoked(partitions)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        """A partition some worker already processed (it has a committed offset) has its
        state rebuilt now, before its records are read: a predecessor may have died
        between committing and sending what those records produced, and with no new
        record in the partition nothing else would heal that (`resume`)."""
        log.info("md.ticks: assigned partitions %s", sorted(tp.partition for tp in assigned))
        assert self.consumer is not None
        self.owned |= {tp.partition for tp in assigned}  # before any await: batches of
        # these partitions may reach the agent while this runs
        for tp in sorted(assigned):
            committed = await self.consumer.committed(tp)
            if committed:
                self.done.setdefault(tp.partition, committed)
                self.committed.setdefault(tp.partition, committed)
                await self.resume(tp.partition, committed)
