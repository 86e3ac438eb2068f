"""Secrets stay secret and listeners stay local: a worker and a notifier run the small day
at debug log level with a Slack webhook and a password-protected redis-server
(`requirepass`); no log and no error output of theirs holds the webhook URL or the
password; every socket they listen on is bound to 127.0.0.1; a wrong Redis password stops
`notify` and `worker` with exit 1 and a message that names the problem, not the secret."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import redis

from marketflow.infra.embedded import redis_binary
from tests.integration.harness import backtest_small, unique_topics, wait_for, worker_env
from tests.integration.test_worker import free_port, produce_day, wait_until_final
from tests.integration.webhook import Webhook

pytestmark = pytest.mark.integration
PASSWORD = "Rp-9f3kQz7-requirepass"
WRONG = "wrong-Zx81-password"


@pytest.fixture
def locked_redis(tmp_path: Path) -> Iterator[int]:
    """A redis-server of this test alone, with a password."""
    port = free_port()
    proc = subprocess.Popen(
        [redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(tmp_path), "--requirepass", PASSWORD],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port, password=PASSWORD, socket_timeout=2)

    def answers() -> bool:
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False

    try:
        wait_for(answers, 10, "redis-server to answer", interval=0.1)
        yield port
    finally:
        client.close()
        proc.terminate()
        proc.wait(timeout=10)


def run(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "marketflow.cli", *args], env=env,
                            stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def listening(pid: int) -> list[tuple[str, int]]:
    process = psutil.Process(pid)
    sockets = []
    for proc in [process, *process.children(recursive=True)]:
        sockets += [(c.laddr.ip, c.laddr.port) for c in proc.net_connections(kind="inet")
                    if c.status == psutil.CONN_LISTEN]
    return sockets


def test_no_secret_in_any_output_and_listeners_on_loopback(
        stack: Any, tmp_path: Path, locked_redis: int, webhook: Webhook) -> None:
    expected = backtest_small()
    url = f"redis://:{PASSWORD}@127.0.0.1:{locked_redis}/0"
    topics = unique_topics(stack.bootstrap, "secrets")
    app_id = f"mf-secrets-{topics['ticks']}"
    env = worker_env(stack.bootstrap, url, topics, app_id,
                     MARKETFLOW_SLACK_WEBHOOK_URL=webhook.url,
                     MARKETFLOW_STATE_DIR=str(tmp_path))
    web_port, metrics_port = free_port(), free_port()
    logs = {"worker": tmp_path / "worker.log", "notify": tmp_path / "notify.log"}
    worker = run(env, logs["worker"], "worker", "--web-port", str(web_port), "--datadir",
                 str(tmp_path / "w"), "--metrics-port", str(metrics_port), "--loglevel", "debug")
    notifier = run(env, logs["notify"], "notify", "--loglevel", "debug")
    try:
        time.sleep(4)
        produce_day(stack.bootstrap, topics)
        wait_until_final(stack.bootstrap, topics, expected, [_Proc(worker, logs["worker"])])
        want = sorted(a["alert_id"] for a in expected["alerts"])
        wait_for(lambda: sorted(webhook.accepted) == want, 60,
                 "every alert posted to the webhook", interval=0.5)
        # the password worked: the worker wrote the alerts to the locked Redis
        client = redis.Redis(port=locked_redis, password=PASSWORD)
        assert client.xlen(f"{app_id}:alerts") == len(want)
        client.close()
        # every listener on loopback: /metrics (Faust's web server, disabled, binds nothing
        # with this faust-streaming; if a version does, it is pinned to 127.0.0.1 as well)
        worker_sockets = listening(worker.pid)
        assert metrics_port in {port for _, port in worker_sockets}, worker_sockets
        assert {port for _, port in worker_sockets} <= {metrics_port, web_port}, worker_sockets
        assert {ip for ip, _ in worker_sockets} == {"127.0.0.1"}, worker_sockets
        assert listening(notifier.pid) == []
    finally:
        for proc in (worker, notifier):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)

    # a wrong password, or none: exit 1 naming the problem
    outputs = {name: path.read_text(errors="replace") for name, path in logs.items()}
    for name, bad_url in (("wrong", f"redis://:{WRONG}@127.0.0.1:{locked_redis}/0"),
                          ("none", f"redis://127.0.0.1:{locked_redis}/0")):
        bad = dict(env, MARKETFLOW_REDIS_URL=bad_url, MARKETFLOW_CONNECT_TIMEOUT_S="5")
        for command in (["notify"], ["worker", "--web-port", str(free_port()), "--datadir",
                                     str(tmp_path / "w2"), "--metrics-port", "0"]):
            done = subprocess.run([sys.executable, "-m", "marketflow.cli", *command], env=bad,
                                  capture_output=True, text=True, timeout=60)
            text = done.stdout + done.stderr
            assert done.returncode == 1, text
            assert "refused the credentials of MARKETFLOW_REDIS_URL" in text, text
            assert f"127.0.0.1:{locked_redis}" in text and "Traceback" not in text, text
            outputs[f"{command[0]} ({name} password)"] = text

    assert len(outputs["worker"]) > 10_000 and "DEBUG" in outputs["notify"]  # debug level
    secret_path = webhook.url.split("/services/")[1]
    for name, text in outputs.items():
        for secret in (PASSWORD, WRONG, webhook.url, secret_path):
            assert secret not in text, f"{secret!r} in the output of {name}"


class _Proc:
    """What wait_until_final needs of a worker: its process and its log."""

    def __init__(self, proc: subprocess.Popen[bytes], log: Path) -> None:
        self.proc = proc
        self.log_path = log

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")
