"""Redis is a sink, not a dependency: frozen mid-replay the worker keeps going, and every
alert and final figure reaches Redis once it answers again; alerts that reached `mf.alerts`
but never Redis (the worker died in between) are restored by the next worker."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from marketflow.infra.embedded import redis_binary
from tests.integration.harness import Worker, backtest_small, unique_topics, wait_for, worker_env
from tests.integration.test_worker import (
    assert_equal_to_backtest,
    free_port,
    live_results,
    produce_day,
    wait_until_final,
)

pytestmark = pytest.mark.integration

OUTAGE_S = 30


class OwnRedis:
    """A redis-server of this test alone, so that it can be frozen (SIGSTOP)."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = subprocess.Popen(
            [redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(tmp)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.client = redis.Redis.from_url(self.url, socket_timeout=5)
        wait_for(self._answers, 10, "redis-server to answer", interval=0.1)

    def _answers(self) -> bool:
        try:
            return bool(self.client.ping())
        except redis.RedisError:
            return False

    def freeze(self) -> None:
        os.kill(self.proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        self.thaw()
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    server = OwnRedis(tmp_path)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def expected() -> dict[str, Any]:
    return backtest_small()


def assert_redis_equals_backtest(client: Any, prefix: str, expected: dict) -> None:
    stream = client.xrange(f"{prefix}alerts")
    ids = [entry[1][b"alert_id"].decode() for entry in stream]
    assert len(ids) == len(set(ids)), "an alert is in the Redis stream twice"
    assert sorted(ids) == sorted(a["alert_id"] for a in expected["alerts"])
    final = expected["final"]
    for name, figures in final["sectors"].items():
        stored = client.hgetall(f"{prefix}latest:sector:{name}")
        assert float(stored[b"gain_pct"]) == figures["gain_pct"], name
        assert stored[b"final"] == b"1", name
    for symbol, figures in final["stocks"].items():
        stored = client.hgetall(f"{prefix}latest:stock:{symbol}")
        assert float(stored[b"last"]) == figures["last"], symbol
    market = client.hgetall(f"{prefix}latest:market")
    assert float(market[b"turnover_hkd"]) == final["market"]["turnover_hkd"]
    total = client.hgetall(f"{prefix}latest:southbound:total")
    assert float(total[b"net_hkd"]) == final["southbound"]["total"]["net_hkd"]


def redis_final(client: Any, prefix: str, expected: dict) -> bool:
    market = client.hgetall(f"{prefix}latest:market")
    return (client.xlen(f"{prefix}alerts") >= len(expected["alerts"])
            and market.get(b"final") == b"1" and float(market[b"turnover_hkd"])
            == expected["final"]["market"]["turnover_hkd"])


def test_redis_frozen_mid_replay(stack: Any, tmp_path: Path, expected: dict,
                                 own_redis: OwnRedis) -> None:
    topics = unique_topics(stack.bootstrap, "rfreeze")
    app_id = f"mf-rfreeze-{topics['ticks']}"
    env = worker_env(stack.bootstrap, own_redis.url, topics, app_id)
    worker = Worker(env, tmp_path, "w0", free_port())
    try:
        time.sleep(4)
        producer = threading.Thread(target=produce_day, args=(stack.bootstrap, topics, 0.25))
        producer.start()
        time.sleep(1.0)
        own_redis.freeze()
        frozen_at = time.monotonic()
        producer.join()
        # while Redis is frozen the worker finishes the day: its topics have every alert
        # and the final figures (the worker did not stop, and did not die)
        alerts, latest = wait_until_final(stack.bootstrap, topics, expected, [worker],
                                          timeout=OUTAGE_S - 5)
        assert time.monotonic() - frozen_at < OUTAGE_S, "the day ended after the outage"
        assert_equal_to_backtest(alerts, latest, expected)
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - frozen_at)))
        own_redis.thaw()
        assert worker.proc.poll() is None, worker.text()[-3000:]
        assert "Redis write failed" in worker.text(), "the outage was never noticed"
        wait_for(lambda: redis_final(own_redis.client, f"{app_id}:", expected), 30,
                 "Redis to catch up after the outage")
        assert_redis_equals_backtest(own_redis.client, f"{app_id}:", expected)
        wait_for(lambda: "Redis is back" in worker.text(), 20,
                 "the worker to say Redis is back")
    finally:
        own_redis.thaw()
        worker.stop()


def test_alerts_in_the_topic_but_not_in_redis_are_restored(
        stack: Any, tmp_path: Path, expected: dict, own_redis: OwnRedis) -> None:
    """The first worker emits every alert to `mf.alerts` while Redis is frozen, then dies
    (kill -9) before Redis comes back: its successor restores them to Redis, once each."""
    topics = unique_topics(stack.bootstrap, "rrestore")
    app_id = f"mf-rrestore-{topics['ticks']}"
    env = worker_env(stack.bootstrap, own_redis.url, topics, app_id)
    own_redis.freeze()
    first = Worker(env, tmp_path, "first", free_port())
    second = None
    try:
        time.sleep(4)
        produce_day(stack.bootstrap, topics)
        alerts, _ = wait_until_final(stack.bootstrap, topics, expected, [first])
        assert len(alerts) == len(expected["alerts"])
        first.kill()
        own_redis.thaw()
        prefix = f"{app_id}:"
        assert own_redis.client.xlen(f"{prefix}alerts") == 0, "the first worker reached Redis"
        second = Worker(env, tmp_path, "second", free_port())
        wait_for(lambda: own_redis.client.xlen(f"{prefix}alerts") >= len(expected["alerts"]),
                 45, "the alerts to be restored to Redis")
        time.sleep(1.0)  # nothing more may come: each alert once
        ids = [e[1][b"alert_id"].decode() for e in own_redis.client.xrange(f"{prefix}alerts")]
        assert sorted(ids) == sorted(a["alert_id"] for a in expected["alerts"])
        assert "restored to Redis" in second.text()
        topic_alerts, _ = live_results(stack.bootstrap, topics)
        assert len(topic_alerts) == len(expected["alerts"]), "an alert was emitted twice"
    finally:
        own_redis.thaw()
        first.stop()
        if second is not None:
            second.stop()
