"""`marketflow worker`, `produce` and `notify` started before the broker exists: each says
it is waiting (no traceback, no secret) and retries with backoff; a tansu broker started on
that port a few seconds later, they get to work: produce publishes the small day, the
worker turns it into snapshots and alerts, notify prints those alerts. Given up on, the
wait ends with exit 1 and a message naming MARKETFLOW_CONNECT_TIMEOUT_S."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from marketflow.infra.embedded import tansu_binary
from tests.integration.harness import SMALL, Worker, read_topic, wait_for, worker_env
from tests.integration.test_worker import free_port

pytestmark = pytest.mark.integration
DEFAULT_TOPICS = {"ticks": "md.ticks", "southbound": "md.southbound", "indices": "mf.indices",
                  "sectors": "mf.sectors", "stocks": "mf.stocks", "market": "mf.market",
                  "alerts": "mf.alerts", "deadletter": "mf.deadletter",
                  "partials": "mf.internal.frame-partials",
                  "checkpoints": "mf.internal.checkpoints"}
PASSWORD = "late-broker-s3cret"


class Tansu:
    def __init__(self, port: int, log: Path) -> None:
        listener = f"tcp://127.0.0.1:{port}"
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [tansu_binary(), "broker", "--listener-url", listener,
                 "--advertised-listener-url", listener],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def procs() -> Iterator[list[Any]]:
    started: list[Any] = []
    try:
        yield started
    finally:
        for proc in started:
            if isinstance(proc, Worker | Tansu):
                proc.stop()
            elif proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)


def command(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "marketflow.cli", *args], env=env,
                            stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def test_commands_wait_for_a_broker_that_comes_later(stack: Any, tmp_path: Path, port: int,
                                                     procs: list[Any]) -> None:
    bootstrap = f"127.0.0.1:{port}"
    prefix = f"late-{port}"
    env = worker_env(bootstrap, None, DEFAULT_TOPICS, f"mf-{prefix}",
                     MARKETFLOW_STATE_DIR=str(tmp_path), MARKETFLOW_METRICS_PORT="0")
    notify_env = dict(env, MARKETFLOW_REDIS_URL=stack.redis_url,
                      MARKETFLOW_REDIS_PREFIX=f"{prefix}:")
    worker = Worker(env, tmp_path, "worker", free_port())
    procs.append(worker)
    produce_log, notify_log = tmp_path / "produce.log", tmp_path / "notify.log"
    produce = command(env, produce_log, "produce", "ticks", str(SMALL / "ticks.jsonl"),
                      "--quiet")
    notify = command(notify_env, notify_log, "notify", "--group", prefix)
    procs += [produce, notify]
    waiting = f"marketflow: waiting for the Kafka broker at {bootstrap}"
    started = (("worker", worker.proc, worker.log_path),
               ("produce", produce, produce_log), ("notify", notify, notify_log))
    # each says so once it has started (a few seconds; more on a loaded machine)
    wait_for(lambda: all(waiting in log.read_text() or proc.poll() is not None
                         for _, proc, log in started), 30, "every command to say it waits")
    time.sleep(1.0)  # still waiting a retry later: not given up
    for name, proc, log in started:
        assert proc.poll() is None, f"{name} gave up: {log.read_text()[-2000:]}"
        text = log.read_text()
        assert waiting in text, (name, text)
        assert "Traceback" not in text, (name, text)

    procs.append(Tansu(port, tmp_path / "tansu.log"))
    assert produce.wait(timeout=60) == 0, produce_log.read_text()[-3000:]
    assert "sent 4,000 ticks" in produce_log.read_text()
    # the worker computes the day; notify prints its alerts (no webhook: the console)
    wait_for(lambda: " [info] sector-" in notify_log.read_text(), 60,
             "notify to print an alert from the worker", interval=0.5)
    import asyncio

    stocks = asyncio.run(read_topic(bootstrap, "mf.stocks", idle_s=0.5))
    assert {snapshot["subject"] for _, snapshot in stocks} >= {"00700", "09988"}
    for name, text in (("worker", worker.text()), ("produce", produce_log.read_text()),
                       ("notify", notify_log.read_text())):
        assert "Traceback" not in text, (name, text[-3000:])


def test_giving_up_exits_1_naming_the_setting(tmp_path: Path, port: int) -> None:
    env = dict(os.environ, MARKETFLOW_KAFKA_BOOTSTRAP=f"127.0.0.1:{port}",
               MARKETFLOW_STATE_DIR=str(tmp_path), MARKETFLOW_CONNECT_TIMEOUT_S="2",
               MARKETFLOW_REDIS_URL=f"redis://mf:{PASSWORD}@127.0.0.1:{port}/0")
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "marketflow.cli", "worker", "--web-port",
                           str(free_port()), "--datadir", str(tmp_path / "w")],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    assert 2.0 <= time.monotonic() - started < 20
    assert f"error: cannot reach the Kafka broker at 127.0.0.1:{port} after" in done.stderr
    assert "MARKETFLOW_CONNECT_TIMEOUT_S=2" in done.stderr
    assert "Traceback" not in done.stderr and PASSWORD not in done.stderr + done.stdout


def test_notify_waits_for_its_topic_and_creates_none(stack: Any, tmp_path: Path) -> None:
    """Subscribing would make the broker auto-create mf.alerts with its default partition
    count (and the worker then refuses the topic): notify waits for it instead."""
    from marketflow.infra.topics import list_topics

    missing = f"missing-{free_port()}.alerts"
    env = dict(os.environ, MARKETFLOW_KAFKA_BOOTSTRAP=stack.bootstrap,
               MARKETFLOW_REDIS_URL=stack.redis_url, MARKETFLOW_TOPIC_ALERTS=missing,
               MARKETFLOW_STATE_DIR=str(tmp_path), MARKETFLOW_CONNECT_TIMEOUT_S="2")
    done = subprocess.run([sys.executable, "-m", "marketflow.cli", "notify", "--once"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    assert f"marketflow: waiting for topic {missing}" in done.stderr
    assert "notify creates no topic" in done.stderr and "Traceback" not in done.stderr
    assert missing not in list_topics(stack.bootstrap)
