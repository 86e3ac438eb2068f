"""`marketflow tail` against the real broker and Redis: it follows from now (only records
written after it started, even when the broker's end offset is wrong), from today (by the
time records were written), from the start or an offset; filters by subject, rule and
severity; `--json` lines parse back to the records; the Redis alert stream likewise."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer

from marketflow.alerts.redis_sink import RedisAlertSink
from tests.integration.harness import backtest_small, unique_topics

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def alerts() -> list[dict[str, Any]]:
    """The small day's alerts, as the worker writes them (with emitted_at)."""
    return [{**a, "emitted_at": "2025-11-24T10:30:00.000+08:00"}
            for a in backtest_small()["alerts"]]


def env_for(stack: Any, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARKETFLOW_")}
    env.update(MARKETFLOW_KAFKA_BOOTSTRAP=stack.bootstrap, MARKETFLOW_REDIS_URL=stack.redis_url,
               **extra)
    return env


class Tail:
    """`marketflow tail ...` in the background; `wait_ready` once it says where it starts."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "marketflow.cli", "tail", *args],
                                     env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        self.ready = threading.Event()
        self.stderr: list[str] = []
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)
            if line.startswith("following "):
                self.ready.set()

    def wait_ready(self, timeout: float = 30) -> None:
        assert self.ready.wait(timeout), "".join(self.stderr)

    def result(self, timeout: float = 60) -> tuple[int, list[str]]:
        out, _ = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out.splitlines()


def run_tail(env: dict[str, str], *args: str) -> tuple[int, list[str], str]:
    done = subprocess.run([sys.executable, "-m", "marketflow.cli", "tail", *args], env=env,
                          capture_output=True, text=True, timeout=60)
    return done.returncode, done.stdout.splitlines(), done.stderr


def produce(bootstrap: str, topic: str, records: list[dict[str, Any]], as_batch: bool = False,
            timestamps: list[int] | None = None) -> None:
    """Records to partition 0: in record batches (as the worker ships them), or one each."""
    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            if as_batch:
                batch = producer.create_batch()
                for record in records:
                    key, value = record["alert_id"].encode(), json.dumps(record).encode()
                    if batch.append(key=key, value=value, timestamp=None) is None:  # full
                        await (await producer.send_batch(batch, topic, partition=0))
                        batch = producer.create_batch()
                        batch.append(key=key, value=value, timestamp=None)
                await (await producer.send_batch(batch, topic, partition=0))
            else:
                for n, record in enumerate(records):
                    await producer.send_and_wait(
                        topic, json.dumps(record).encode(), partition=0,
                        key=str(record.get("alert_id", n)).encode(),
                        timestamp_ms=timestamps[n] if timestamps else None)
        finally:
            await producer.stop()

    asyncio.run(send())


def test_follows_from_now_with_filters(stack: Any, alerts: list[dict[str, Any]]) -> None:
    topics = unique_topics(stack.bootstrap, "tail")
    old, new = alerts[:4], alerts[4:]
    produce(stack.bootstrap, topics["alerts"], old, as_batch=True)  # tansu's LATEST is wrong here
    env = env_for(stack)
    wanted = [a for a in new if a["severity"] in ("warning", "critical")
              and a["rule_id"] in ("index-up-1pct", "stock-up-3pct", "sector-up-1pct")]
    assert wanted, "the small day has warnings after its first four alerts"
    # --limit: each stops once it has as many records as it should get (a record that
    # should not pass would show among them); --idle bounds the wait
    tail = Tail(env, topics["alerts"], "--json", "--idle", "20", "--limit", str(len(wanted)),
                "--severity", "warning", "--severity", "critical", "--rule", "index-up-1pct",
                "--rule", "stock-up-3pct", "--rule", "sector-up-1pct")
    everything = Tail(env, topics["alerts"], "--json", "--idle", "20", "--limit", str(len(new)))
    tail.wait_ready()
    everything.wait_ready()
    produce(stack.bootstrap, topics["alerts"], new, as_batch=True)
    code, lines = tail.result()
    assert code == 0, "".join(tail.stderr)
    assert [json.loads(line) for line in lines] == wanted  # JSON lines parse
    code, lines = everything.result()
    assert code == 0 and [json.loads(line) for line in lines] == new  # none of the old ones


def test_from_start_today_and_offset(stack: Any, alerts: list[dict[str, Any]]) -> None:
    topics = unique_topics(stack.bootstrap, "tail")
    now_ms = int(time.time() * 1000)
    yesterday = now_ms - 86_400_000 * 2
    records = alerts[:5]
    produce(stack.bootstrap, topics["alerts"], records,
            timestamps=[yesterday, yesterday, yesterday, now_ms, now_ms])
    env = env_for(stack)
    code, lines, _ = run_tail(env, topics["alerts"], "--from", "start", "--json", "--idle", "2")
    assert code == 0 and [json.loads(line) for line in lines] == records
    code, lines, err = run_tail(env, topics["alerts"], "--from", "today", "--json", "--idle", "2")
    assert code == 0 and [json.loads(line) for line in lines] == records[3:], err
    code, lines, _ = run_tail(env, topics["alerts"], "--from", "1", "--json", "--limit", "2")
    assert code == 0 and [json.loads(line) for line in lines] == records[1:3]
    # a table: one row per alert, its rule and subject in it
    # (by its configured name: MARKETFLOW_TOPIC_ALERTS)
    code, lines, _ = run_tail({**env, "MARKETFLOW_TOPIC_ALERTS": topics["alerts"]}, "alerts",
                              "--from", "start", "--idle", "2",
                              "--subject", records[0]["subject"])
    wanted = [r for r in records if r["subject"] == records[0]["subject"]]
    assert code == 0 and len(lines) == len(wanted)
    assert all(r["rule_id"] in line and r["subject"] in line for r, line in zip(wanted, lines,
                                                                                 strict=True))


def test_redis_alert_stream(stack: Any, alerts: list[dict[str, Any]]) -> None:
    prefix = f"tail-{uuid.uuid4().hex[:8]}:"
    env = env_for(stack, MARKETFLOW_REDIS_PREFIX=prefix)

    def publish(batch: list[dict[str, Any]]) -> None:
        async def send() -> None:
            client = aioredis.Redis.from_url(stack.redis_url)
            try:
                await RedisAlertSink(client, prefix).publish_many(batch)
            finally:
                await client.aclose()

        asyncio.run(send())

    publish(alerts[:3])
    code, lines, _ = run_tail(env, "redis", "--from", "start", "--json", "--idle", "1.5")
    assert code == 0 and [json.loads(line) for line in lines] == alerts[:3]
    code, lines, _ = run_tail(env, "redis", "--from", "today", "--json", "--idle", "1.5",
                              "--subject", alerts[1]["subject"])
    assert [json.loads(line) for line in lines] == [a for a in alerts[:3]
                                                    if a["subject"] == alerts[1]["subject"]]
    tail = Tail(env, "redis", "--json", "--idle", "15", "--limit", "3")
    tail.wait_ready()
    publish(alerts[3:6])
    code, lines = tail.result()
    assert code == 0 and [json.loads(line) for line in lines] == alerts[3:6]


def test_exit_codes(stack: Any) -> None:
    env = env_for(stack)
    code, _, err = run_tail(env, "mf.no-such-topic", "--idle", "1")
    assert code == 2 and "no topic mf.no-such-topic" in err
    code, _, err = run_tail(env, "mf.alerts", "--from", "yesterday")
    assert code == 2 and "--from" in err
    code, _, err = run_tail(env, "mf.alerts", "--from", "1763947800000-0")
    assert code == 2 and "redis" in err
    code, _, err = run_tail(env, "mf.alerts", "--severity", "urgent")
    assert code == 2
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    down = {**env, "MARKETFLOW_KAFKA_BOOTSTRAP": f"127.0.0.1:{closed}",
            "MARKETFLOW_CONNECT_TIMEOUT_S": "1"}  # give up at once, not after a minute
    code, _, err = run_tail(down, "mf.alerts", "--idle", "1")
    assert code == 1 and "cannot reach the Kafka broker" in err
