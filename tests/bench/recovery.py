"""(l) Recovery after kill -9 when md.ticks holds a previous day too: a simulated day
(2025-11-24) after the same day shifted to the Friday before, batched 100 ticks a record
as `marketflow produce` writes them, each record stamped with its last tick's time (a
feed's clock). A worker processes both and is killed; the row is the time from its
successor's start until every partition has applied a new tick, and how many records the
successor replayed against how many the partitions hold (it should replay today's only).
The frame partials were all written today by the wall clock, so the successor's aggregator
replays both days of them here (live, the days of that topic are those of the wall clock).
"""

from __future__ import annotations

import asyncio
import signal
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from marketflow.core.refdata import ReferenceData
from marketflow.infra.embedded import EmbeddedStack
from marketflow.ingest.partitioner import partition_for
from marketflow.sim.generate import Generator
from marketflow.sim.scenario import load_scenario
from tests.bench.common import (
    INDICES,
    PARTITIONS,
    UNIVERSE,
    WorkerProc,
    base_env,
    ensure,
    log,
    wait_ticks,
)

DAY_MS = 86_400_000
BATCH = 100


async def produce_stamped(bootstrap: str, topic: str, generator: Generator,
                          shift_ms: int, records: dict[int, int]) -> int:
    """The generator's ticks, moved by `shift_ms`, in arrays of BATCH per partition, each
    stamped with its last tick's time; counts records per partition into `records`."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=20,
                                max_batch_size=4 << 20, max_request_size=16 << 20)
    await producer.start()
    pending: dict[int, list[dict[str, Any]]] = {}
    ticks = 0

    async def ship(part: int) -> None:
        items = pending.pop(part)
        await producer.send(topic, orjson.dumps(items), partition=part,
                            timestamp_ms=items[-1]["ts"])
        records[part] = records.get(part, 0) + 1

    try:
        for kind, record in generator.records():
            if kind != "ticks":
                continue
            ticks += 1
            if shift_ms:
                record = {**record, "ts": record["ts"] + shift_ms}
            part = partition_for(record["symbol"], PARTITIONS)
            pending.setdefault(part, []).append(record)
            if len(pending[part]) >= BATCH:
                await ship(part)
        for part in sorted(pending):
            await ship(part)
        await producer.flush()
    finally:
        await producer.stop()
    return ticks


def committed(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                             enable_auto_commit=False)
    try:
        return {p: consumer.committed(TopicPartition(topic, p)) or 0
                for p in range(PARTITIONS)}
    finally:
        consumer.close()


def rebuild_records(worker: WorkerProc, topic: str) -> float:
    body = urllib.request.urlopen(f"http://127.0.0.1:{worker.metrics_port}/metrics",
                                  timeout=2).read().decode()
    series = f'marketflow_rebuild_records_total{{topic="{topic}"}} '
    return sum(float(line.rsplit(" ", 1)[1]) for line in body.splitlines()
               if line.startswith(series))


def day_recovery(stack: EmbeddedStack, state: Path, trades: int) -> dict[str, Any]:
    prefix = f"rec{uuid.uuid4().hex[:6]}"
    env = base_env(stack, prefix, state)
    ensure(env)
    topic = f"{prefix}.ticks"
    ref = ReferenceData.load(UNIVERSE, INDICES)
    previous: dict[int, int] = {}
    today: dict[int, int] = {}
    log(f"(l) producing the previous day and today, {trades:,} trades each ...")
    prev_ticks = asyncio.run(produce_stamped(
        stack.bootstrap, topic, Generator(load_scenario("2025-11-24"), ref, trades=trades),
        -3 * DAY_MS, previous))
    today_ticks = asyncio.run(produce_stamped(
        stack.bootstrap, topic, Generator(load_scenario("2025-11-24"), ref, trades=trades),
        0, today))
    ends = {p: previous.get(p, 0) + today.get(p, 0) for p in range(PARTITIONS)}
    log(f"(l) {prev_ticks + today_ticks:,} ticks in {sum(ends.values()):,} records; "
        "the first worker processes both days")
    first = WorkerProc(env, state, "worker-days")
    try:
        start, end = wait_ticks(first, prev_ticks + today_ticks, 1800)
        deadline = time.monotonic() + 60
        while committed(stack.bootstrap, f"bench-{prefix}.ticks", topic) != ends:
            if time.monotonic() > deadline:
                raise RuntimeError("the first worker did not commit what it processed")
            time.sleep(0.5)
    finally:
        first.kill(signal.SIGKILL)
    time.sleep(4)  # its group session (3 s) ends: the successor is given every partition once
    restart = time.perf_counter()
    second = WorkerProc(env, state, "worker-days-recovered")
    try:
        symbols = {partition_for(s, PARTITIONS): s for s in ref.stocks}
        ts = 1_763_971_800_000 + 1  # 16:10 HKT + 1 ms on 2025-11-24

        async def send_probes() -> None:
            producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap)
            await producer.start()
            for _, symbol in sorted(symbols.items()):
                stock = ref.stocks[symbol]
                probe = {"symbol": symbol, "ts": ts, "price": stock.prev_close / 1000,
                         "qty": stock.lot_size}
                await producer.send_and_wait(topic, orjson.dumps(probe), key=symbol.encode(),
                                             timestamp_ms=ts)
            await producer.stop()

        asyncio.run(send_probes())
        _, recovered = wait_ticks(second, len(symbols), 600)
        replayed = rebuild_records(second, topic)
        partials = rebuild_records(second, f"{prefix}.partials")
        fallbacks = second.log_path.read_text(errors="replace").count(
            "from the earliest offset")
    finally:
        second.kill()
    result = {"ticks_previous_day": prev_ticks, "ticks_today": today_ticks,
              "records_in_partitions": sum(ends.values()),
              "records_today": sum(today.values()), "records_replayed": int(replayed),
              # written by the first worker today (wall clock): both days' are replayed
              "partials_records_replayed": int(partials),
              "recovery_s": recovered - restart, "first_pass_s": end - start,
              "earliest_fallbacks": fallbacks}
    log(f"(l) {result}")
    return result
