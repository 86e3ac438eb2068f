"""Helpers for tests that run real workers against the real broker and Redis."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.partitioner.default import murmur2

from marketflow.backtest import run_backtest

SMALL = Path(__file__).parents[1] / "data" / "small"
TOPIC_FIELDS = ("ticks", "southbound", "indices", "sectors", "stocks", "market", "alerts",
                "deadletter", "partials", "checkpoints")


def unique_topics(bootstrap: str, prefix: str, partitions: int = 8) -> dict[str, str]:
    """Fresh topic names for one test (the embedded broker is shared by the session)."""
    tag = uuid.uuid4().hex[:8]
    names = {field: f"{prefix}-{tag}.{field}" for field in TOPIC_FIELDS}
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([
            NewTopic(name, partitions if field == "ticks" else 1, 1)
            for field, name in names.items()
        ])
    finally:
        admin.close()
    return names


def partition_for(symbol: str, partitions: int) -> int:
    return (murmur2(symbol.encode()) & 0x7FFFFFFF) % partitions


async def produce_lines(bootstrap: str, topic: str, lines: Iterable[str], key_field: str,
                        partitions: int = 1, batch: int = 1, pause_every: int = 0,
                        pause_s: float = 0.0) -> int:
    """Publish JSON lines keyed by a field (murmur2 partitioning, as the producers do);
    with batch > 1, ticks go as JSON arrays to their symbol's partition."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2)
    await producer.start()
    sent = 0
    pending: dict[int, list[Any]] = {}
    try:
        for line in lines:
            obj = json.loads(line)
            key = str(obj[key_field])
            if batch > 1:
                part = partition_for(key, partitions)
                pending.setdefault(part, []).append(obj)
                if len(pending[part]) >= batch:
                    await producer.send(topic, orjson.dumps(pending.pop(part)), partition=part)
            else:
                await producer.send(topic, line.strip().encode(), key=key.encode())
            sent += 1
            if pause_every and sent % pause_every == 0:
                await producer.flush()
                await asyncio.sleep(pause_s)
        for part, items in pending.items():
            await producer.send(topic, orjson.dumps(items), partition=part)
        await producer.flush()
    finally:
        await producer.stop()
    return sent


async def read_topic(bootstrap: str, topic: str, idle_s: float = 1.0) -> list[Any]:
    """Every record of a topic (all partitions), decoded, read until idle."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                enable_auto_commit=False, auto_offset_reset="earliest",
                                fetch_max_wait_ms=100)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        consumer.assign([TopicPartition(topic, p) for p in sorted(partitions)])
        out: list[Any] = []
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < idle_s:
            batches = await consumer.getmany(timeout_ms=200)
            for records in batches.values():
                for record in records:
                    out.append((record.key, orjson.loads(record.value)))
                    quiet_since = time.monotonic()
        return out
    finally:
        await consumer.stop()


def backtest_small(rules: Path = SMALL / "rules.yaml") -> dict[str, Any]:
    """What `marketflow backtest` says about the small day: the live worker must agree."""
    return run_backtest(SMALL / "universe.csv", SMALL / "indices.csv", rules,
                        SMALL / "ticks.jsonl", SMALL / "southbound.jsonl")


class Worker:
    """A `marketflow worker` subprocess with its own web port and data dir."""

    def __init__(self, env: dict[str, str], tmp: Path, name: str, web_port: int,
                 metrics_port: int = 0) -> None:
        self.log_path = tmp / f"{name}.log"
        self.log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "marketflow.cli", "worker", "--web-port", str(web_port),
             "--datadir", str(tmp / name), "--metrics-port", str(metrics_port),
             "--loglevel", "info"],
            env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.kill(signal.SIGTERM)
        self.log.close()

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")


def worker_env(bootstrap: str, redis_url: str | None, topics: dict[str, str],
               app_id: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "MARKETFLOW_KAFKA_BOOTSTRAP": bootstrap,
        "MARKETFLOW_APP_ID": app_id,
        "MARKETFLOW_UNIVERSE": str(SMALL / "universe.csv"),
        "MARKETFLOW_INDICES": str(SMALL / "indices.csv"),
        "MARKETFLOW_RULES": str(SMALL / "rules.yaml"),
        "MARKETFLOW_IDLE_MS": "3000",
        "MARKETFLOW_SESSION_TIMEOUT_S": "3",
        "MARKETFLOW_HEARTBEAT_S": "0.5",
    })
    if redis_url:
        env["MARKETFLOW_REDIS_URL"] = redis_url
        env["MARKETFLOW_REDIS_PREFIX"] = f"{app_id}:"
    for field, name in topics.items():
        env[f"MARKETFLOW_TOPIC_{field.upper()}"] = name
    env.update(extra)
    return env


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


# -- the demo day, small: what the board and `marketflow tail` tests replay ----------------

def demo_day(trades: int = 3000) -> list[tuple[str, dict[str, Any]]]:
    """24 Nov 2025 from the seeded simulator with `trades` trades (plus its ~20k index ticks
    and 660 southbound updates), as (feed, record) in event-time order. With the default
    rules it fires HSTECH +2%, southbound past HK$8bn and AI leads the sectors."""
    from marketflow.settings import PACKAGE_DATA, Settings
    from marketflow.sim.commands import build_generator

    settings = Settings(universe=PACKAGE_DATA / "universe.csv",
                        indices=PACKAGE_DATA / "indices.csv")
    return list(build_generator("2025-11-24", trades, None, settings).records())


def publish_records(bootstrap: str, topics: dict[str, str],
                    records: Iterable[tuple[str, dict[str, Any]]], batch: int = 50) -> int:
    """Publish (feed, record) pairs as `marketflow simulate` does (ticks batched per
    partition, southbound keyed by channel), flat out."""
    from marketflow.ingest.publisher import Publisher
    from marketflow.settings import Topics

    publisher = Publisher(bootstrap, Topics(**topics), batch=batch, speed=0)
    try:
        items = ((kind, n, "", record) for n, (kind, record) in enumerate(records, start=1))
        return publisher.publish_mixed(items, "demo day").sent  # type: ignore[arg-type]
    finally:
        publisher.close()


def backtest_records(records: list[tuple[str, dict[str, Any]]], tmp: Path) -> dict[str, Any]:
    """`marketflow backtest` over the records with the package's reference data and rules."""
    from marketflow.settings import PACKAGE_DATA

    ticks, flows = tmp / "ticks.jsonl", tmp / "southbound.jsonl"
    with ticks.open("wb") as t, flows.open("wb") as f:
        for kind, record in records:
            (t if kind == "ticks" else f).write(orjson.dumps(record) + b"\n")
    return run_backtest(PACKAGE_DATA / "universe.csv", PACKAGE_DATA / "indices.csv",
                        PACKAGE_DATA / "rules.yaml", ticks, flows)


def demo_env(bootstrap: str, redis_url: str, topics: dict[str, str], app_id: str,
             **extra: str) -> dict[str, str]:
    """`worker_env` with the package's reference data and default rules (the demo's)."""
    from marketflow.settings import PACKAGE_DATA

    return worker_env(bootstrap, redis_url, topics, app_id,
                      MARKETFLOW_UNIVERSE=str(PACKAGE_DATA / "universe.csv"),
                      MARKETFLOW_INDICES=str(PACKAGE_DATA / "indices.csv"),
                      MARKETFLOW_RULES=str(PACKAGE_DATA / "rules.yaml"),
                      MARKETFLOW_METRICS_PORT="0", **extra)


def redis_day_closed(redis_url: str, prefix: str, turnover_hkd: float, alerts: int) -> bool:
    """The worker has written the day's final market snapshot and every alert to Redis."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        market = client.hgetall(f"{prefix}latest:market")
        return (market.get(b"final") == b"1"
                and float(market.get(b"turnover_hkd", b"0")) == turnover_hkd
                and client.xlen(f"{prefix}alerts") >= alerts)
    finally:
        client.close()
