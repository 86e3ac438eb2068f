"""`marketflow produce` against the real broker: every good line once, on its symbol's
partition, every bad line named in the dead-letter topic with its reason."""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from marketflow.core.records import parse_tick
from marketflow.ingest.partitioner import partition_for
from tests.integration.harness import unique_topics

pytestmark = pytest.mark.integration
BASE = 1_763_947_800_000


def make_file(path: Path, lines: int, bad_every: int, seed: int = 5) -> tuple[int, int]:
    rnd = random.Random(seed)
    good = bad = 0
    with path.open("w") as handle:
        for i in range(lines):
            if bad_every and i % bad_every == bad_every - 1:
                handle.write(rnd.choice([
                    '{"symbol": "00700", "ts": "yesterday", "price": 1}',
                    '{"symbol": "00700", "ts": 1763947800000, "price": -5}',
                    "{broken json",
                    '{"symbol": "123456", "ts": 1763947800000, "price": 5}',
                ]) + "\n")
                bad += 1
                continue
            symbol = rnd.choice(["700", "0700.HK", "HK.09988", "01024", "3690"])
            handle.write(json.dumps({"symbol": symbol, "ts": BASE + i, "price": 100 + i % 7,
                                     "qty": 100, "seq": i}) + "\n")
            good += 1
    return good, bad


def produce(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "marketflow.cli", "produce", *args],
                          env=env, capture_output=True, text=True, timeout=300)


def read_all(bootstrap: str, topic: str) -> list[tuple[int, bytes | None, Any]]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    async def run() -> list[tuple[int, bytes | None, Any]]:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                    auto_offset_reset="earliest", fetch_max_wait_ms=100)
        await consumer.start()
        try:
            parts = consumer.partitions_for_topic(topic) or set()
            tps = [TopicPartition(topic, p) for p in parts]
            consumer.assign(tps)
            out: list[tuple[int, bytes | None, Any]] = []
            idle = 0
            while idle < 4:
                batches = await consumer.getmany(timeout_ms=250, max_records=50_000)
                idle = 0 if batches else idle + 1
                for tp, records in batches.items():
                    out += [(tp.partition, r.key, json.loads(r.value)) for r in records]
            return out
        finally:
            await consumer.stop()

    return asyncio.run(run())


@pytest.mark.parametrize("batch", [1, 25])
def test_produce_good_and_bad_lines(stack: Any, tmp_path: Path, batch: int) -> None:
    topics = unique_topics(stack.bootstrap, f"prod{batch}")
    env = dict(os.environ, MARKETFLOW_KAFKA_BOOTSTRAP=stack.bootstrap,
               MARKETFLOW_STATE_DIR=str(tmp_path),
               **{f"MARKETFLOW_TOPIC_{k.upper()}": v for k, v in topics.items()})
    path = tmp_path / "ticks.jsonl"
    good, bad = make_file(path, 2_000, 50)
    done = produce(env, "ticks", str(path), "--batch", str(batch), "--quiet")
    assert done.returncode == 0, done.stderr
    assert f"sent {good:,} ticks" in done.stderr and f"rejected {bad}" in done.stderr

    records = read_all(stack.bootstrap, topics["ticks"])
    ticks = []
    for partition, key, value in records:
        batch_items = value if isinstance(value, list) else [value]
        for item in batch_items:
            tick = parse_tick(item)  # what we wrote parses again, unchanged
            assert tick.to_json() == item
            assert partition == partition_for(tick.symbol, 8)
            if batch == 1:
                assert key == tick.symbol.encode()
            ticks.append(tick)
    assert len(ticks) == good
    assert sorted(t.seq for t in ticks) == sorted({t.seq for t in ticks})  # each once
    assert {t.symbol for t in ticks} == {"00700", "09988", "01024", "03690"}

    dead = [value for _, _, value in read_all(stack.bootstrap, topics["deadletter"])]
    assert len(dead) == bad
    assert {d["reason"] for d in dead} <= {"invalid_ts", "invalid_price", "invalid_json",
                                           "invalid_symbol"}
    assert all(d["source"]["line"] % 50 == 0 and d["payload_text"] for d in dead)


def test_hundred_thousand_lines_one_percent_bad(stack: Any, tmp_path: Path) -> None:
    topics = unique_topics(stack.bootstrap, "prod100k")
    env = dict(os.environ, MARKETFLOW_KAFKA_BOOTSTRAP=stack.bootstrap,
               MARKETFLOW_STATE_DIR=str(tmp_path),
               **{f"MARKETFLOW_TOPIC_{k.upper()}": v for k, v in topics.items()})
    path = tmp_path / "ticks.jsonl"
    good, _ = make_file(path, 100_000, 100)
    done = produce(env, "ticks", str(path), "--batch", "100", "--quiet")
    assert done.returncode == 0, done.stderr
    records = read_all(stack.bootstrap, topics["ticks"])
    seqs = [item["seq"] for _, _, value in records for item in value]
    assert len(seqs) == good == len(set(seqs))
    dead = read_all(stack.bootstrap, topics["deadletter"])
    assert sorted(d["source"]["line"] for _, _, d in dead) == list(range(100, 100_001, 100))


def test_unreachable_broker_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "ticks.jsonl"
    make_file(path, 10, 0)
    env = dict(os.environ, MARKETFLOW_KAFKA_BOOTSTRAP="127.0.0.1:9",
               MARKETFLOW_STATE_DIR=str(tmp_path), MARKETFLOW_CONNECT_TIMEOUT_S="1")
    done = produce(env, "ticks", str(path), "--quiet")
    assert done.returncode == 1 and "127.0.0.1:9" in done.stderr


def test_missing_file_exits_2(tmp_path: Path) -> None:
    done = produce(dict(os.environ), "ticks", str(tmp_path / "nope.jsonl"))
    assert done.returncode == 2 and "not found" in done.stderr


def test_nasty_day(stack: Any, tmp_path: Path) -> None:
    """The small day with the corpus of tests/data/nasty mixed in (tests/nasty.py): every bad
    line and every bad element of an array dead-lettered with its reason, line and index,
    every valid tick (the good elements of mixed arrays included) published once, in order
    per partition, a summary, exit 0."""
    from collections import Counter

    from tests.nasty import build_nasty_day
    from tests.schemas import validator

    day = build_nasty_day(tmp_path / "nasty.jsonl", valid_oddities=True)
    topics = unique_topics(stack.bootstrap, "prodnasty")
    env = dict(os.environ, MARKETFLOW_KAFKA_BOOTSTRAP=stack.bootstrap,
               MARKETFLOW_STATE_DIR=str(tmp_path),
               **{f"MARKETFLOW_TOPIC_{k.upper()}": v for k, v in topics.items()})
    done = produce(env, "ticks", str(day.path), "--quiet")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    rejected = Counter(reason for _, reason, _ in day.parse_rejects)
    reasons = ", ".join(f"{r}={n}" for r, n in sorted(rejected.items()))
    assert (f"sent {len(day.valid):,} ticks" in done.stderr
            and f"rejected {len(day.parse_rejects)} ({reasons})" in done.stderr), done.stderr

    published: dict[int, list[Any]] = {}
    for partition, _, value in read_all(stack.bootstrap, topics["ticks"]):
        published.setdefault(partition, []).extend(value if isinstance(value, list) else [value])
    expected: dict[int, list[Any]] = {}
    for tick in day.valid:
        expected.setdefault(partition_for(tick["symbol"], 8), []).append(tick)
    assert published == expected  # each once, in file order within its partition

    dead = [value for _, _, value in read_all(stack.bootstrap, topics["deadletter"])]
    got = sorted((d["source"]["line"], d["reason"], d.get("element")) for d in dead)
    assert got == sorted(day.parse_rejects, key=lambda r: (r[0], r[1], r[2] if r[2] is not None
                                                           else -1))
    schema = validator("deadletter")
    for d in dead:
        assert not list(schema.iter_errors(d)), d
        assert d["source"]["file"] == str(day.path) and d["partition"] is None
        assert ("payload_text" in d) != ("payload_base64" in d)
        if d["reason"] == "record_too_large":
            assert len(d["payload_text"]) == 256
        if d.get("element") is not None:
            assert d["detail"].startswith(f"batch element {d['element']}: ")
