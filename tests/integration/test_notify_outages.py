"""`marketflow notify` through Slack outages and crashes, against a real broker and Redis and
a local webhook server: down 60 s (503, then refusing connections), killed -9 while a post
is in flight, and a Retry-After that differs from the rate limit."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from tests.integration.harness import unique_topics, wait_for
from tests.integration.test_notify import make_alert, notify
from tests.integration.webhook import Webhook

pytestmark = pytest.mark.integration

def send_together(bootstrap: str, topic: str, alerts: list[dict[str, Any]]) -> None:
    """All in one producer batch, so that the notifier fetches them as one batch."""
    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=100)
        await producer.start()
        try:
            for alert in alerts:
                await producer.send(topic, orjson.dumps(alert), key=alert["alert_id"].encode())
            await producer.flush()
        finally:
            await producer.stop()

    asyncio.run(run())


@pytest.fixture
def env(stack: Any, tmp_path: Path, webhook: Webhook) -> dict[str, str]:
    topics = unique_topics(stack.bootstrap, "nout")
    return dict(os.environ, MARKETFLOW_KAFKA_BOOTSTRAP=stack.bootstrap,
                MARKETFLOW_REDIS_URL=stack.redis_url, MARKETFLOW_SLACK_WEBHOOK_URL=webhook.url,
                MARKETFLOW_REDIS_PREFIX=f"{topics['alerts']}:", MARKETFLOW_STATE_DIR=str(tmp_path),
                **{f"MARKETFLOW_TOPIC_{k.upper()}": v for k, v in topics.items()})


def kill(proc: Any) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


OUTAGE_S = 60


def test_slack_down_for_a_minute(stack: Any, env: dict[str, str], webhook: Webhook,
                                 tmp_path: Path) -> None:
    """503 for the first 10-20 s, then connections refused until 60 s; alerts sent before
    and during the outage are all delivered after it, each once, by the same notifier
    process."""
    topic = env["MARKETFLOW_TOPIC_ALERTS"]
    before, during = [make_alert(n) for n in range(1, 6)], [make_alert(n) for n in range(6, 11)]
    webhook.respond = lambda n: (503, {}, 0.0)
    send_together(stack.bootstrap, topic, before)
    log = tmp_path / "notify.log"
    proc = notify(env, "--group", "outage", log=log)
    try:
        wait_for(lambda: bool(webhook.requests), 30, "the first post")
        down_at = webhook.requests[0][0]
        # refusing connections from the first retry at least OUTAGE_S / 6 in (the sixth
        # post, 12-19 s): the next comes 13-19 s later (backoff 16 s +-20%), inside the
        # refusing part whatever the jitter (stopping at a fixed 30 s, the retry before it
        # could fall at 28 s and the next at 60 s, and no post ever met a refusal)
        wait_for(lambda: webhook.requests[-1][0] >= down_at + OUTAGE_S / 6, OUTAGE_S / 2,
                 "a retry a sixth into the outage", interval=0.05)
        webhook.stop()  # refusing connections now
        send_together(stack.bootstrap, topic, during)
        time.sleep(max(0.0, down_at + OUTAGE_S - time.monotonic()))
        webhook.respond = lambda n: (200, {}, 0.0)
        webhook.start()  # back, on the same port
        back_at = time.monotonic()
        expected = sorted(a["alert_id"] for a in before + during)
        wait_for(lambda: sorted(webhook.accepted) == expected, 45,
                 "every alert after the outage", interval=0.2)
        delivered_after = time.monotonic() - back_at
        time.sleep(2.0)  # and nothing twice
        assert sorted(webhook.accepted) == expected
        assert proc.poll() is None, log.read_text()[-3000:]  # rode it out, did not exit
    finally:
        kill(proc)
    text = log.read_text()
    assert "server error 503" in text and "timeout or connection" in text
    assert webhook.url not in text and "outagesecret" not in text
    assert delivered_after < 40  # within one capped backoff (30 s +-20%) of the recovery


def test_kill_9_mid_delivery(stack: Any, env: dict[str, str], webhook: Webhook,
                             tmp_path: Path) -> None:
    """50 alerts fetched as one batch go out as two digests (48 + 2). The notifier is killed
    while the second post is in flight (the webhook holds it, then fails it): the batch was
    never committed, so its successor reads all 50 again, skips the 48 Redis marks as
    delivered, and posts the other 2: each alert reaches Slack once."""
    alerts = [make_alert(n) for n in range(100, 150)]
    send_together(stack.bootstrap, env["MARKETFLOW_TOPIC_ALERTS"], alerts)
    webhook.respond = lambda n: (200, {}, 0.0) if n == 1 else (503, {}, 5.0)
    log = tmp_path / "notify.log"
    first = notify(env, "--group", "crash", log=log)
    try:
        wait_for(lambda: len(webhook.requests) >= 2, 60, "the second post to be in flight",
                 interval=0.1)
        kill(first)  # mid-delivery: the webhook is holding the second post
    finally:
        kill(first)
    assert len(webhook.accepted) == 48
    webhook.respond = lambda n: (200, {}, 0.0)
    successor = notify(env, "--group", "crash", "--once", log=tmp_path / "successor.log")
    assert successor.wait(timeout=60) == 0, (tmp_path / "successor.log").read_text()[-3000:]
    assert sorted(webhook.accepted) == sorted(a["alert_id"] for a in alerts)  # each once
    assert "48 alert(s) already delivered, skipped" in (tmp_path / "successor.log").read_text()


def test_retry_after_is_honoured_not_the_rate_limit(stack: Any, env: dict[str, str],
                                                    webhook: Webhook, tmp_path: Path) -> None:
    """Retry-After: 3 while the limiter allows one post a second: the retry comes 3 s after
    the 429, not 1 s (and not much later either)."""
    webhook.respond = lambda n: (429, {"Retry-After": "3"}, 0.0) if n == 1 else (200, {}, 0.0)
    send_together(stack.bootstrap, env["MARKETFLOW_TOPIC_ALERTS"], [make_alert(7)])
    done = notify(env, "--group", "retry-after", "--once", log=tmp_path / "notify.log")
    assert done.wait(timeout=60) == 0, (tmp_path / "notify.log").read_text()[-3000:]
    (first, status), (second, _) = webhook.requests[:2]
    assert status == 429 and len(webhook.requests) == 2
    assert 3.0 <= second - first < 5.0, second - first
    assert webhook.accepted == [make_alert(7)["alert_id"]]
