"""The worker's Kafka sink against the real broker: snapshots reach their topics in the order
published, encoded by the sender as it batches them, and one that cannot be encoded is
logged and skipped without stopping the sender (every output goes through it)."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from marketflow.core.output import Output
from marketflow.settings import Topics
from marketflow.stream.replay import AlertLedger
from marketflow.stream.sinks import Sinks
from tests.integration.harness import unique_topics

pytestmark = pytest.mark.integration


def stock(subject: str, volume: Any) -> dict[str, Any]:
    return {"type": "stock", "subject": subject, "name": subject, "trading_date": "2025-11-24",
            "ts": "2025-11-24T10:00:00.000+08:00", "final": False, "prev_close": 10.0,
            "last": 10.5, "change_pct": 5.0, "turnover_hkd": 1050.0, "volume": volume,
            "trades": 1}


async def read_all(bootstrap: str, topic: str, count: int) -> list[tuple[bytes, bytes]]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", fetch_max_wait_ms=100)
    await consumer.start()
    got: list[tuple[bytes, bytes]] = []
    try:
        async with asyncio.timeout(30):
            while len(got) < count:
                batches = await consumer.getmany(timeout_ms=200)
                got += [(r.key, r.value) for records in batches.values() for r in records]
    finally:
        await consumer.stop()
    return got


def test_snapshots_reach_their_topic_and_a_bad_one_does_not_stop_the_sender(
        stack: Any, caplog: pytest.LogCaptureFixture) -> None:
    names = unique_topics(stack.bootstrap, "sinks")
    topics = Topics(**names)
    published = [stock("00001", 100), stock("00002", object()),  # a bug's snapshot
                 stock("00003", 2**64 + 5),  # past 64 bits: orjson refuses it
                 stock("00004", 7)]

    async def run() -> list[tuple[bytes, bytes]]:
        sinks = Sinks(stack.bootstrap, topics, AlertLedger(stack.bootstrap, topics.alerts))
        await sinks.start()
        try:
            async with asyncio.timeout(30):  # a dead sender: flush would wait for good
                await sinks.publish(Output(snapshots=published[:2]))
                await sinks.flush()
                await sinks.publish(Output(snapshots=published[2:]))  # still sending
                await sinks.stop()
        finally:
            if sinks.producer is not None:  # not stopped: a dead sender held the flush
                await sinks.producer.stop()
        return await read_all(stack.bootstrap, topics.stocks, 3)

    with caplog.at_level(logging.ERROR, logger="marketflow.sinks"):
        got = asyncio.run(run())
    assert [key for key, _ in got] == [b"00001", b"00003", b"00004"]
    assert got[0][1] == orjson.dumps(published[0])
    assert json.loads(got[1][1]) == published[2]  # exactly, by the standard library
    assert got[2][1] == orjson.dumps(published[3])
    errors = [r.getMessage() for r in caplog.records if r.name == "marketflow.sinks"]
    assert len(errors) == 1 and "key b'00002'" in errors[0] and "not sent" in errors[0]
