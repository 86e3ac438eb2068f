"""(e) latency at a paced rate: tick produced -> stock alert in Redis, frame close ->
sector alert in Redis, per 5 s slice with CPU; and the embedded broker alone at that rate."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from marketflow.core.refdata import ReferenceData
from marketflow.infra.embedded import EmbeddedStack
from marketflow.ingest.partitioner import partition_for
from tests.bench.common import (
    INDICES,
    PARTITIONS,
    UNIVERSE,
    WorkerProc,
    base_env,
    ensure,
    log,
    percentiles,
)

WARMUP_MS = 2_000
BENCH_RULES = """
rules:
  - {id: stock-up, metric: stock.change_pct, op: ">=", threshold: 1.0, hysteresis: 0.5,
     max_per_day: 1000000}
  - {id: stock-down, metric: stock.change_pct, op: "<=", threshold: -1.0, hysteresis: 0.5,
     max_per_day: 1000000}
  - {id: sector-up, metric: sector.gain_pct, op: ">=", threshold: 0.3, hysteresis: 0.2,
     max_per_day: 1000000}
  - {id: sector-down, metric: sector.gain_pct, op: "<=", threshold: -0.3, hysteresis: 0.2,
     max_per_day: 1000000}
"""


def latency(stack: EmbeddedStack, state: Path, rate: int, seconds: float) -> dict[str, Any]:
    import math
    import random
    from bisect import bisect_left

    import redis

    from marketflow.sim.market import round_to_grid

    prefix = f"lat{uuid.uuid4().hex[:6]}"
    rules = state / "bench-rules.yaml"
    rules.write_text(BENCH_RULES)
    env = base_env(stack, prefix, state, MARKETFLOW_RULES=str(rules))
    ensure(env)
    worker = WorkerProc(env, state, "worker-latency")
    arrivals: list[tuple[float, dict[str, Any]]] = []
    client = redis.Redis.from_url(stack.redis_url)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(f"{prefix}:alerts")
    stop = threading.Event()

    def listen() -> None:
        while not stop.is_set():
            message = pubsub.get_message(timeout=0.1)
            if message is not None:
                arrivals.append((time.time(), orjson.loads(message["data"])))

    cpu: list[tuple[float, float, float]] = []  # (seconds since pacing began, broker %, worker %)
    paced_at: list[float] = []

    def sample_cpu() -> None:
        import psutil

        broker, work = psutil.Process(stack.info.tansu_pid), psutil.Process(worker.proc.pid)
        broker.cpu_percent(), work.cpu_percent()
        while not stop.wait(1.0):
            try:
                shares = broker.cpu_percent(), work.cpu_percent()
            except psutil.Error:
                return
            if paced_at:
                cpu.append((time.time() - paced_at[0], *shares))

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    sampler = threading.Thread(target=sample_cpu, daemon=True)
    sampler.start()
    ref = ReferenceData.load(UNIVERSE, INDICES)
    symbols = list(ref.stocks)
    rng = random.Random(3)
    phases = {s: rng.uniform(0, 0.6) for s in symbols}
    produced: dict[tuple[str, int], float] = {}
    batches: list[tuple[int, float]] = []  # (max event time in the batch, wall time sent)
    day_base = 1_763_949_600_000  # 2025-11-24 10:00 HKT

    async def pace() -> int:
        producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, acks=1, linger_ms=0)
        await producer.start()
        start = time.time()
        paced_at.append(start)
        sent = 0
        seq: dict[str, int] = {}
        while (now := time.time()) - start < seconds:
            due = int((now - start) * rate) - sent
            pending: dict[int, list[dict[str, Any]]] = {}
            ts = day_base + int((now - start) * 1000)
            for _ in range(max(0, due)):
                symbol = rng.choice(symbols)
                prev = ref.stocks[symbol].prev_close
                wave = 0.016 * math.sin(2 * math.pi * ((now - start) / 6 + phases[symbol]))
                price = round_to_grid(prev * (1 + wave + rng.gauss(0, 0.0005)))
                seq[symbol] = seq.get(symbol, 0) + 1
                tick = {"symbol": symbol, "ts": ts, "price": price / 1000,
                        "qty": ref.stocks[symbol].lot_size, "seq": seq[symbol]}
                pending.setdefault(partition_for(symbol, PARTITIONS), []).append(tick)
                produced.setdefault((symbol, ts), now)
            for part, items in pending.items():
                await producer.send(f"{prefix}.ticks", orjson.dumps(items), partition=part)
            sent += max(0, due)
            batches.append((ts, now))
            await asyncio.sleep(0.004)
        await producer.flush()
        await producer.stop()
        return sent

    try:
        wait_until = time.monotonic() + 30
        while worker.ticks() < 0 and time.monotonic() < wait_until:
            time.sleep(0.2)
        time.sleep(5)  # the consumer group forms (session timeout 3 s)
        log(f"latency: producing {rate:,} ticks/s for {seconds:.0f}s")
        sent = asyncio.run(pace())
        time.sleep(4)
    finally:
        stop.set()
        listener.join(timeout=2)
        sampler.join(timeout=2)
        worker.kill()
        pubsub.close()
        client.close()
    tick_latency, frame_latency = [], []
    timeline: list[tuple[int, float]] = []  # (event time since start, latency)
    batch_ts = [b[0] for b in batches]
    warm = day_base + WARMUP_MS  # steady state: the first seconds include partition rebuilds
    from marketflow.core.timeutil import from_datetime

    for arrived, alert in arrivals:
        import datetime as dt

        ts = from_datetime(dt.datetime.fromisoformat(alert["ts"]))
        if ts < warm:
            continue
        if alert["metric"] == "stock.change_pct":
            when = produced.get((alert["subject"], ts))
            if when is not None:
                tick_latency.append(arrived - when)
                timeline.append((ts - day_base, arrived - when))
        else:  # frame end ts: closed when event time ts was first produced
            i = bisect_left(batch_ts, ts)
            if i < len(batches):
                frame_latency.append(arrived - batches[i][1])
                timeline.append((ts - day_base, arrived - batches[i][1]))
    return {"rate": rate, "ticks": sent, "alerts": len(arrivals), "warmup_ms": WARMUP_MS,
            "tick_to_alert": percentiles(tick_latency),
            "frame_to_alert": percentiles(frame_latency),
            "by_period": by_period(timeline, cpu, SLICE_MS)}


SLICE_MS = 5_000


def broker_alone(stack: EmbeddedStack, rate: int, seconds: float) -> dict[str, Any]:
    """The embedded broker with no marketflow at all: the latency run's record stream
    (every 4 ms one record of rate/250/8 ticks per partition) produced by aiokafka and
    tailed by one plain aiokafka consumer. Its CPU over time tells how much of (e) is the
    broker's own cost of serving a growing in-memory log."""
    import psutil
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from kafka.admin import KafkaAdminClient, NewTopic

    topic = f"alone-{uuid.uuid4().hex[:6]}"
    admin = KafkaAdminClient(bootstrap_servers=stack.bootstrap)
    admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    admin.close()
    per_record = max(1, rate // 250 // PARTITIONS)
    body = orjson.dumps([{"symbol": "00700", "ts": 1_763_949_600_000, "price": 598.5,
                          "qty": 100, "seq": n} for n in range(per_record)])
    broker = psutil.Process(stack.info.tansu_pid)
    shares: list[float] = []
    latencies: list[float] = []

    async def run() -> int:
        producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, acks=1, linger_ms=0)
        consumer = AIOKafkaConsumer(bootstrap_servers=stack.bootstrap, group_id=None,
                                    fetch_max_wait_ms=5)
        await producer.start()
        await consumer.start()
        consumer.assign([TopicPartition(topic, p) for p in range(PARTITIONS)])
        sent_at: dict[tuple[int, int], float] = {}
        received = 0

        async def tail() -> None:
            nonlocal received
            while True:
                batches = await consumer.getmany(timeout_ms=100)
                now = time.time()
                for tp, records in batches.items():
                    received += len(records)
                    for record in records:
                        at = sent_at.pop((tp.partition, record.offset), None)
                        if at is not None:
                            latencies.append(now - at)

        reader = asyncio.ensure_future(tail())
        broker.cpu_percent()
        start = last = time.time()
        while (now := time.time()) - start < seconds:
            for part in range(PARTITIONS):
                future = await producer.send(topic, body, partition=part)
                future.add_done_callback(
                    lambda f, p=part, at=now: sent_at.__setitem__((p, f.result().offset), at))
            if now - last >= SLICE_MS / 1000:
                shares.append(broker.cpu_percent())
                last = now
            await asyncio.sleep(0.004)
        shares.append(broker.cpu_percent())
        await asyncio.sleep(1)
        reader.cancel()
        await producer.stop()
        await consumer.stop()
        return received

    received = asyncio.run(run())
    return {"records": received, "ticks_per_record": per_record,
            "produce_to_fetch": percentiles(latencies),
            "broker_cpu_pct_by_period": [round(x) for x in shares]}


def by_period(timeline: list[tuple[int, float]], cpu: list[tuple[float, float, float]],
              slice_ms: int) -> list[dict[str, Any]]:
    """Latency (ticks and frames together) and CPU per slice of the paced run: shows
    whether latency is steady or grows, and whose CPU grows with it (broker or worker)."""
    out = []
    for start in range(0, max((t for t, _ in timeline), default=-1) + 1, slice_ms):
        values = [v for t, v in timeline if start <= t < start + slice_ms]
        shares = [(b, w) for t, b, w in cpu if start <= t * 1000 < start + slice_ms]
        row: dict[str, Any] = {"from_s": start / 1000, **percentiles(values)}
        if shares:
            row["broker_cpu_pct"] = sum(b for b, _ in shares) / len(shares)
            row["worker_cpu_pct"] = sum(w for _, w in shares) / len(shares)
        out.append(row)
    return out


