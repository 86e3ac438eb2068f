"""Recovery replays the current trading day only: each partition holds a previous day
(2025-11-21, records stamped on that Hong Kong day) and then today (2025-11-24). A worker
processes the previous day and the first half of today, commits, and is killed with
SIGKILL; its successor rebuilds every partition from the first offset of today (its log
and `marketflow_rebuild_records_total` say how many records: exactly today's before the
commit, not the partition), takes the second half, and ends where `marketflow backtest`
on today's file ends: every `latest:*` figure in Redis, and the alerts (the previous
day's alerts, emitted by the first worker, stay as they were: none is sent twice and the
replay sends no new one). And the broker's own answer to ListOffsets by timestamp is
checked before it is used (tansu's is wrong)."""

from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from kafka import KafkaConsumer
from kafka import TopicPartition as KafkaTopicPartition

from marketflow.backtest import run_backtest
from tests.integration.harness import (
    SMALL,
    Worker,
    partition_for,
    read_topic,
    unique_topics,
    wait_for,
    worker_env,
)
from tests.integration.test_backlog import close, redis_differences
from tests.integration.test_worker import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

PARTITIONS = 8
BATCH = 20  # ticks per record, as `marketflow produce` batches them
DAYS_BACK = 3  # the previous day: Friday 2025-11-21
REBUILT = re.compile(r"\.(ticks|southbound)\[(\d+)\]: rebuilt from (\d+) record\(s\), "
                     r"offsets \[(\d+), (\d+)\) of \[(\d+), \d+\): ([^;]*);")


def load(name: str, shift_days: int = 0) -> list[dict[str, Any]]:
    records = [json.loads(line) for line in (SMALL / name).read_text().splitlines()]
    for record in records:
        record["ts"] -= shift_days * 86_400_000
    return records


def write(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    return path


def backtest(tmp: Path, name: str, ticks: list[dict[str, Any]],
             updates: list[dict[str, Any]]) -> dict[str, Any]:
    return run_backtest(SMALL / "universe.csv", SMALL / "indices.csv", SMALL / "rules.yaml",
                        write(tmp / f"{name}-ticks.jsonl", ticks),
                        write(tmp / f"{name}-southbound.jsonl", updates))


def send(bootstrap: str, topics: dict[str, str], ticks: list[dict[str, Any]],
         updates: list[dict[str, Any]]) -> tuple[dict[int, int], int]:
    """Ticks in arrays of BATCH to their symbol's partition, southbound one update a record;
    each record stamped with its (last) event time, as a live feed's clock would. Returns
    the records sent per md.ticks partition and to md.southbound."""
    async def run() -> dict[int, int]:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2)
        await producer.start()
        sent: dict[int, int] = {}
        pending: dict[int, list[dict[str, Any]]] = {}

        async def ship(part: int) -> None:
            items = pending.pop(part)
            await producer.send(topics["ticks"], orjson.dumps(items), partition=part,
                                timestamp_ms=max(t["ts"] for t in items))
            sent[part] = sent.get(part, 0) + 1

        try:
            for tick in ticks:
                part = partition_for(str(tick["symbol"]), PARTITIONS)
                pending.setdefault(part, []).append(tick)
                if len(pending[part]) >= BATCH:
                    await ship(part)
            for part in sorted(pending):
                await ship(part)
            for update in updates:
                await producer.send(topics["southbound"], orjson.dumps(update),
                                    key=update["channel"].encode(), timestamp_ms=update["ts"])
            await producer.flush()
        finally:
            await producer.stop()
        return sent

    return asyncio.run(run()), len(updates)


def committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                             enable_auto_commit=False)
    try:
        out = {}
        for p in range(partitions):
            offset = consumer.committed(KafkaTopicPartition(topic, p))
            out[p] = offset or 0
        return out
    finally:
        consumer.close()


def rebuild_metric(port: int, topic: str) -> float:
    """`marketflow_rebuild_records_total{topic=...}` as the worker exports it."""
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read()
    series = f'marketflow_rebuild_records_total{{topic="{topic}"}} '
    return sum(float(line.rsplit(" ", 1)[1]) for line in body.decode().splitlines()
               if line.startswith(series))


def test_successor_replays_today_only(stack: Any, tmp_path: Path, redis_client: Any) -> None:
    today_ticks, today_updates = load("ticks.jsonl"), load("southbound.jsonl")
    prev_ticks = load("ticks.jsonl", DAYS_BACK)
    prev_updates = load("southbound.jsonl", DAYS_BACK)
    expected = backtest(tmp_path, "today", today_ticks, today_updates)
    previous = backtest(tmp_path, "previous", prev_ticks, prev_updates)
    assert expected["alerts"] and previous["alerts"]
    half = len(today_ticks) // 2
    cut = today_ticks[half]["ts"]
    first_updates = [u for u in today_updates if u["ts"] < cut]

    topics = unique_topics(stack.bootstrap, "dayrec", PARTITIONS)
    app_id = f"mf-dayrec-{topics['ticks']}"
    env = worker_env(stack.bootstrap, stack.redis_url, topics, app_id)
    prev_records, prev_sb = send(stack.bootstrap, topics, prev_ticks, prev_updates)
    first_records, first_sb = send(stack.bootstrap, topics, today_ticks[:half], first_updates)
    used = sorted(prev_records)  # the small universe hashes to most partitions, not all
    assert sorted(first_records) == used and len(used) >= 4
    ends = {p: prev_records.get(p, 0) + first_records.get(p, 0) for p in range(PARTITIONS)}

    workers = [Worker(env, tmp_path, "w0", free_port())]
    try:
        # the first worker has processed (and committed) both days so far
        wait_for(lambda: committed(stack.bootstrap, f"{app_id}.ticks", topics["ticks"],
                                   PARTITIONS) == ends
                 and committed(stack.bootstrap, app_id, topics["southbound"], 1)[0]
                 == prev_sb + first_sb, 60, "the first worker to commit what it was given")
        workers[0].kill()
        assert workers[0].proc.returncode == -9
        time.sleep(4)  # its group sessions (3 s) expire: the successor joins an empty group
        port = free_port()
        successor = Worker(env, tmp_path, "w1", free_port(), port)
        workers.append(successor)
        send(stack.bootstrap, topics, today_ticks[half:],
             [u for u in today_updates if u["ts"] >= cut])

        prefix = f"{app_id}:"
        want = {"final": expected["final"], "alerts": previous["alerts"] + expected["alerts"]}
        differences: list[str] = ["not polled yet"]

        def settled() -> bool:
            if successor.proc.poll() is not None:
                raise AssertionError(f"worker exited:\n{successor.text()[-3000:]}")
            differences[:] = redis_differences(redis_client, prefix, want)
            for channel, figures in expected["final"]["southbound"].items():
                stored = redis_client.hgetall(f"{prefix}latest:southbound:{channel}")
                differences.extend(f"southbound {channel} {k}" for k, v in figures.items()
                                   if not close(float(stored.get(k.encode(), b"nan")), v))
            return not differences

        try:
            wait_for(settled, 90, "Redis to hold the backtest figures of today")
        except AssertionError:
            raise AssertionError("\n".join(differences[:30]) + "\n--- successor log ---\n"
                                 + successor.text()[-4000:]) from None

        # the successor replayed today's records before the commit, nothing of the day before
        text = successor.text()
        rebuilt = [(topic, int(p), int(n), int(s), int(u), int(e), how)
                   for topic, p, n, s, u, e, how in REBUILT.findall(text)]
        print("\n" + "\n".join(str(r) for r in rebuilt))
        first_rebuild: dict[tuple[str, int], tuple[int, int, int, int, str]] = {}
        for topic, p, n, s, u, e, how in rebuilt:
            first_rebuild.setdefault((topic, p), (n, s, u, e, how))
            assert e == 0 and n == u - s, (topic, p, n, s, u)
            assert s == (prev_records[p] if topic == "ticks" else prev_sb), (
                f"{topic}[{p}] replayed from {s} ({how}), today begins at "
                f"{prev_records[p] if topic == 'ticks' else prev_sb}")
        assert {p for topic, p in first_rebuild if topic == "ticks"} == set(used)
        for p in used:
            n, s, u, _, how = first_rebuild[("ticks", p)]
            assert (s, u, n) == (prev_records[p], ends[p], first_records[p]), (p, how)
            assert "2025-11-24 starts there" in how, how
        assert first_rebuild[("southbound", 0)][:3] == (first_sb, prev_sb, prev_sb + first_sb)
        replayed = sum(n for topic, _, n, *_ in rebuilt if topic == "ticks")
        assert replayed == sum(first_records.values()) < sum(ends.values())
        assert rebuild_metric(port, topics["ticks"]) == replayed

        # every alert once, in mf.alerts and in Redis; today's exactly as backtest has them
        alerts = [a for _, a in asyncio.run(read_topic(stack.bootstrap, topics["alerts"],
                                                       idle_s=0.5))]
        ids = [a["alert_id"] for a in alerts]
        assert len(ids) == len(set(ids)), "an alert was emitted twice"
        assert sorted(ids) == sorted(a["alert_id"] for a in want["alerts"])
        by_id = {a["alert_id"]: a for a in expected["alerts"]}
        for alert in alerts:
            if alert["alert_id"] in by_id:
                assert {k: v for k, v in alert.items() if k != "emitted_at"} == by_id[
                    alert["alert_id"]]
        stream = [e[1][b"alert_id"].decode() for e in redis_client.xrange(f"{prefix}alerts")]
        assert len(stream) == len(set(stream)), "an alert is in Redis twice"
    finally:
        for worker in workers:
            worker.stop()


async def test_the_brokers_time_index_is_checked(stack: Any) -> None:
    """ListOffsets by timestamp on the real broker, records stamped over two days: Apache
    Kafka's answer (Monday's first offset) is taken; tansu answers the first offset
    whatever the time, which is refused, and with no checkpoint the start falls back to the
    earliest offset, saying why. Never a start that skips a record of Monday."""
    from marketflow.stream.daystart import date_day, find_start, ticks_day
    from marketflow.stream.replay import PartitionLog

    topics = unique_topics(stack.bootstrap, "timeidx", 1)
    days = [load("ticks.jsonl", DAYS_BACK)[:60], load("ticks.jsonl")[:60]]
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, acks="all")
    await producer.start()
    try:
        for ticks in days:
            for i in range(0, len(ticks), BATCH):
                items = ticks[i:i + BATCH]
                await producer.send_and_wait(topics["ticks"], orjson.dumps(items), partition=0,
                                             timestamp_ms=items[-1]["ts"])
    finally:
        await producer.stop()
    monday_at = len(days[0]) // BATCH
    async with PartitionLog(stack.bootstrap, topics["ticks"], 0) as history:
        answer = await history.offset_for_time(
            (await history.records(monday_at, monday_at + 1))[0][2] - 1)
        start = await find_start(history, monday_at + 2, ticks_day, {})
        with_checkpoint = await find_start(history, monday_at + 2, ticks_day,
                                           {date_day("2025-11-24"): monday_at})
    print(f"\ntime index answered {answer} for Monday (first offset {monday_at}); "
          f"start {start.offset} by {start.via}: {start.describe()}")
    if answer == monday_at:  # Apache Kafka
        assert (start.offset, start.via) == (monday_at, "time index")
    else:  # tansu 0.6: the partition's first offset, whatever the time
        assert answer == 0
        assert (start.offset, start.via) == (0, "earliest")
        assert "stamped before the day's start" in start.describe()
    assert (with_checkpoint.offset, with_checkpoint.partial_through) == (monday_at,
                                                                         "2025-11-21")
