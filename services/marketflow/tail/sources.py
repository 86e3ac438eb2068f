"""Followers for `marketflow tail`: a Kafka topic (every partition, or some) and the Redis
alert stream. Each is an async iterator of `Entry`, or None after a poll that brought
nothing (so the caller can stop after an idle spell).

Kafka, correct on Apache Kafka and on the embedded broker (docs/contracts.md, "Embedded
broker notes"):
- `now` starts at each partition's log end taken from a fetch's high watermark: tansu
  answers ListOffsets LATEST with a position inside the last record batch, so records
  below the first high watermark seen are skipped rather than printed as new;
- `today` seeks with ListOffsets by time (00:00 Hong Kong time) and also drops records
  written before it (tansu answers that lookup with the first offset, so on it the topic
  is read from its start and filtered).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from marketflow.core.timeutil import HKT
from marketflow.tail.render import Start, day_start_ms, stream_after


class UnknownTopic(LookupError):
    """The broker has no such topic (exit 2)."""


@dataclass(frozen=True, slots=True)
class Entry:
    source: str  # topic, or the Redis stream key
    position: str  # "partition@offset", or the stream entry id
    timestamp_ms: int | None  # when it was written (Kafka record timestamp, stream id)
    key: str | None
    value: Any  # the decoded JSON value ({"raw": text} when it is not JSON)


def decode(raw: bytes | None) -> Any:
    if raw is None:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {"raw": raw.decode("utf-8", "replace")}


Ready = Callable[[str], None]  # told where following starts, once positioned


async def follow_kafka(bootstrap: str, topic: str, start: Start, now: dt.datetime,
                       partitions: list[int] | None = None, poll_ms: int = 250,
                       ready: Ready | None = None) -> AsyncIterator[Entry | None]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                enable_auto_commit=False, auto_offset_reset="earliest",
                                fetch_max_wait_ms=100, request_timeout_ms=15_000)
    await consumer.start()
    try:
        if topic not in await consumer.topics():
            raise UnknownTopic(topic)
        available = sorted(consumer.partitions_for_topic(topic) or ())
        wanted = available if partitions is None else [p for p in partitions if p in available]
        if not wanted:
            raise UnknownTopic(f"{topic} has no partition {partitions} (it has {available})")
        tps = [TopicPartition(topic, p) for p in wanted]
        consumer.assign(tps)
        since_ms: int | None = None
        at_end: list[Any] = []  # partitions that start at the log end (`now`)
        if start.kind == "start":
            await consumer.seek_to_beginning(*tps)
        elif start.kind == "offset":
            for tp in tps:
                consumer.seek(tp, start.offset)
        elif start.kind == "today":
            since_ms = day_start_ms(now)
            found = await consumer.offsets_for_times({tp: since_ms for tp in tps})
            for tp in tps:
                hit = found.get(tp)
                if hit is None:  # nothing written since: from the end on
                    at_end.append(tp)
                else:
                    consumer.seek(tp, hit.offset)
        else:  # now
            at_end = list(tps)
        cutoff: dict[Any, int] = {}
        early: list[Any] = []
        if at_end:
            await consumer.seek_to_end(*at_end)
            # the log end is the high watermark of a fetch (see the module docstring)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 5.0
            while loop.time() < deadline and any(consumer.highwater(tp) is None
                                                 for tp in at_end):
                for records in (await consumer.getmany(*at_end, timeout_ms=200)).values():
                    early += records
            for tp in at_end:
                highwater = consumer.highwater(tp)
                cutoff[tp] = highwater if highwater is not None else await consumer.position(tp)

        if ready is not None:
            positions = []
            for tp in tps:
                offset = cutoff[tp] if tp in cutoff else await consumer.position(tp)
                positions.append(f"{tp.partition}@{offset}")
            where = ", ".join(positions)
            ready(f"following {topic} from {start.kind} (partition@offset {where})"
                  + (f", written since {now.astimezone(HKT).date()} 00:00 HKT"
                     if since_ms is not None else ""))

        def keep(record: Any) -> bool:
            tp = TopicPartition(record.topic, record.partition)
            if record.offset < cutoff.get(tp, -1):
                return False
            return since_ms is None or record.timestamp >= since_ms

        def entry(record: Any) -> Entry:
            key = record.key.decode("utf-8", "replace") if record.key is not None else None
            return Entry(record.topic, f"{record.partition}@{record.offset}", record.timestamp,
                         key, decode(record.value))

        for record in early:
            if keep(record):
                yield entry(record)
        while True:
            batch = await consumer.getmany(timeout_ms=poll_ms)
            got = False
            for records in batch.values():
                for record in records:
                    if keep(record):
                        got = True
                        yield entry(record)
            if not got:
                yield None
    finally:
        await consumer.stop()


async def follow_redis(url: str, key: str, start: Start, now: dt.datetime,
                       block_ms: int = 500, ready: Ready | None = None,
                       ) -> AsyncIterator[Entry | None]:
    """The alert stream `{prefix}alerts` (field `json` of each entry)."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url, socket_timeout=block_ms / 1000 + 5,
                                     socket_connect_timeout=5)
    try:
        newest: Any = await client.xrevrange(key, count=1)
        last_id = newest[0][0].decode() if newest else None
        after = stream_after(start, now, last_id)
        if ready is not None:
            ready(f"following the Redis stream {key} after entry {after}")
        while True:
            response: Any = await client.xread({key: after}, count=500, block=block_ms)
            if not response:
                yield None
                continue
            for _, entries in response:
                for entry_id, fields in entries:
                    after = entry_id.decode()
                    value = decode(fields.get(b"json"))
                    key_field = fields.get(b"alert_id")
                    yield Entry(key, after, int(after.split("-")[0]),
                                key_field.decode() if key_field else None, value)
    finally:
        await client.aclose()
