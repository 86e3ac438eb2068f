"""The `md.ticks` reader against the real broker: every record once, in order per partition,
as plain `(offset, value, timestamp)` tuples, while any other consumer in the process
still gets aiokafka's `ConsumerRecord`s."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord

from marketflow.stream import ticks_reader
from marketflow.stream.ticks_reader import TicksBatch, TicksReader
from tests.integration.harness import unique_topics

pytestmark = pytest.mark.integration


def test_records_arrive_once_in_order_as_plain_tuples(stack: Any) -> None:
    topic = unique_topics(stack.bootstrap, "reader", partitions=4)["ticks"]
    sent: dict[int, list[bytes]] = {p: [] for p in range(4)}

    async def run() -> tuple[list[TicksBatch], list[Any]]:
        producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, linger_ms=5)
        await producer.start()
        try:
            for n in range(2000):
                value = b'{"n": %d, "text": "\\u00e9\\u0000"}' % n
                sent[n % 4].append(value)
                await producer.send(topic, value, partition=n % 4, timestamp_ms=1_000 + n)
            await producer.flush()
        finally:
            await producer.stop()
        got: list[TicksBatch] = []
        done = asyncio.Event()

        async def deliver(batch: TicksBatch) -> None:
            got.append(batch)
            reader.finished(batch)
            if sum(len(b.records) for b in got) >= 2000:
                done.set()

        async def nothing(*_: Any) -> None:
            return None

        reader = TicksReader(stack.bootstrap, topic, f"{topic}.group", deliver, nothing,
                             nothing, session_timeout_s=3.0, heartbeat_s=1.0, max_records=300)
        task = asyncio.ensure_future(reader.run())
        try:
            await asyncio.wait_for(done.wait(), 60)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        # the patch is in place now: a plain consumer still reads ConsumerRecords
        other = AIOKafkaConsumer(topic, bootstrap_servers=stack.bootstrap, group_id=None,
                                 auto_offset_reset="earliest", fetch_max_wait_ms=100)
        await other.start()
        try:
            fetched = await other.getmany(timeout_ms=5000, max_records=10)
        finally:
            await other.stop()
        return got, [r for records in fetched.values() for r in records]

    got, others = asyncio.run(run())
    by_partition: dict[int, list[tuple[int, bytes, int]]] = {p: [] for p in range(4)}
    for batch in got:
        assert batch.records and all(type(r) is tuple and len(r) == 3 for r in batch.records)
        by_partition[batch.partition] += batch.records
    for p in range(4):
        records = by_partition[p]
        assert [offset for offset, _, _ in records] == list(range(len(sent[p])))
        assert [value for _, value, _ in records] == sent[p]
        assert all(ts == 1_000 + offset * 4 + p for offset, _, ts in records)
    assert others and all(isinstance(r, ConsumerRecord) for r in others)
    assert ticks_reader._plain_records()  # aiokafka made the tuples (not the fallback)


def test_the_reader_stays_within_its_read_ahead(stack: Any) -> None:
    """The agent (here a task finishing a batch every few ms) is slower than the fetches:
    the reader hands it at most `max_ahead_bytes` it has not finished (one batch larger
    than that goes alone), and every record still arrives once, in order."""
    topic = unique_topics(stack.bootstrap, "ahead", partitions=2)["ticks"]
    value = b'{"pad": "%s"}' % (b"x" * 200)

    async def run() -> tuple[list[TicksBatch], list[int], int]:
        producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, linger_ms=5)
        await producer.start()
        try:
            for n in range(4000):
                await producer.send(topic, value, partition=n % 2)
            await producer.flush()
        finally:
            await producer.stop()
        queue: asyncio.Queue[TicksBatch] = asyncio.Queue()
        got: list[TicksBatch] = []
        ahead: list[int] = []  # the reader's read-ahead at each delivery, this one in

        async def deliver(batch: TicksBatch) -> None:
            ahead.append(reader.ahead_bytes)
            await queue.put(batch)

        async def agent() -> None:
            while sum(len(b.records) for b in got) < 4000:
                batch = await queue.get()
                await asyncio.sleep(0.005)
                got.append(batch)
                reader.finished(batch)

        async def nothing(*_: Any) -> None:
            return None

        reader = TicksReader(stack.bootstrap, topic, f"{topic}.group", deliver, nothing,
                             nothing, session_timeout_s=3.0, heartbeat_s=1.0,
                             max_records=100, max_ahead_bytes=len(value) * 250)
        task = asyncio.ensure_future(reader.run())
        try:
            await asyncio.wait_for(agent(), 60)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        return got, ahead, reader.ahead_bytes

    got, ahead, left = asyncio.run(run())
    bound = len(value) * 250
    largest = max(b.size for b in got)
    assert all(b.size == len(b.records) * len(value) for b in got)
    assert max(ahead) <= max(bound, largest) and left == 0
    assert max(ahead) > bound // 2  # it did read ahead: the bound, not the fetches, held it
    for p in range(2):
        offsets = [r[0] for b in got if b.partition == p for r in b.records]
        assert offsets == list(range(2000))
