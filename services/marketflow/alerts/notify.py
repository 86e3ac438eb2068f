"""`marketflow notify`: mf.alerts -> Slack, each alert once per route.

Consumes `mf.alerts` in its own consumer group with auto-commit off. For each batch: skip
alert ids already delivered (Redis keys), post the rest per route (one message, or a digest
when several arrived together), honour 429 Retry-After and back off on 5xx and timeouts,
keep to one message per second per webhook, record delivered ids in Redis, dead-letter
alerts after a permanent failure, and only then commit the Kafka offsets. Webhook URLs
are secrets: only route names are logged.

Outages: retryable failures (5xx, 429, timeouts, refused connections) are retried for as
long as `MARKETFLOW_NOTIFY_GIVE_UP_S` (600 s) from the start of the batch, then the command
exits 1 without committing (a restart delivers the batch; nothing is lost). The consumer's
max poll interval is set above that, so a long outage does not cost the group membership.

Exactly once holds except in one window: a crash after the webhook answered 200 and before
the delivered id reaches Redis (one round trip) re-posts that message on restart. Incoming
webhooks have no idempotency key, so at-least-once is the best any client can do there.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from marketflow.alerts.backoff import IntervalLimiter, Outcome, classify
from marketflow.alerts.slack import digest_message
from marketflow.core.deadletter import dead_letter

log = logging.getLogger("marketflow.notify")
DELIVERED_TTL_S = 3 * 86_400


@dataclass(frozen=True)
class Route:
    name: str
    webhook: str | None  # None: print to the console
    severities: frozenset[str] = frozenset()
    rules: frozenset[str] = frozenset()

    def matches(self, alert: dict[str, Any]) -> bool:
        if self.severities and alert.get("severity") not in self.severities:
            return False
        return not self.rules or alert.get("rule_id") in self.rules


def build_routes(default_webhook: str | None, routes_config: dict[str, Any],
                 environ: dict[str, str] | None = None) -> tuple[list[Route], Route]:
    """Configured routes (from the rules file) and the default route."""
    environ = dict(os.environ) if environ is None else environ
    routes = []
    for name, spec in (routes_config or {}).items():
        webhook = environ.get(str(spec.get("webhook_env", "")))
        if not webhook:
            log.warning("route %s: %s is not set; alerts for it go to the default route",
                        name, spec.get("webhook_env"))
            continue
        routes.append(Route(name, webhook, frozenset(spec.get("severities") or ()),
                            frozenset(spec.get("rules") or ())))
    return routes, Route("default", default_webhook)


def routes_for(alert: dict[str, Any], routes: list[Route], default: Route) -> list[Route]:
    matched = [route for route in routes if route.matches(alert)]
    return matched or [default]


Post = Callable[[str, dict[str, Any]], Awaitable[tuple[int | None, dict[str, str]]]]


class DeliveryFailed(RuntimeError):
    """A webhook kept failing for the whole give-up time: exit 1, offsets not committed."""


async def slack_post(webhook: str, payload: dict[str, Any]) -> tuple[int | None, dict[str, str]]:
    """POST to an incoming webhook with slack-sdk; (status, headers), status None on timeout."""
    from slack_sdk.webhook.async_client import AsyncWebhookClient

    client = AsyncWebhookClient(webhook, timeout=10, retry_handlers=[])
    try:
        response = await client.send_dict(payload)
    except (TimeoutError, OSError) as error:
        log.warning("webhook post failed: %s", type(error).__name__)
        return None, {}
    except Exception as error:  # aiohttp.ClientError and friends: retryable
        log.warning("webhook post failed: %s", type(error).__name__)
        return None, {}
    headers = {k: v[0] if isinstance(v, list) else v for k, v in response.headers.items()}
    return response.status_code, headers


class Notifier:
    def __init__(self, redis: Any, routes: list[Route], default: Route, prefix: str,
                 deadletter: Callable[[dict[str, Any], str], Awaitable[None]],
                 post: Post = slack_post, console: Any = None, give_up_s: float = 600.0,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 limiter: IntervalLimiter | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.redis = redis
        self.routes = routes
        self.default = default
        self.prefix = prefix
        self.deadletter = deadletter
        self.post = post
        self.console = console
        self.give_up_s = give_up_s
        self.sleep = sleep
        self.clock = clock
        self.limiter = limiter or IntervalLimiter(1.0, clock=clock)
        self.rng = random.Random()
        self.delivered = 0
        self.skipped = 0  # already delivered (Redis said so): a restart's re-read batch
        self._deadline = float("inf")

    def _key(self, route: Route, alert_id: str) -> str:
        return f"{self.prefix}slack:delivered:{route.name}:{alert_id}"

    async def handle(self, alerts: list[dict[str, Any]]) -> None:
        """Deliver a batch (in order) to every route; returns when each alert is delivered
        or dead-lettered, so the caller may commit; raises DeliveryFailed when a webhook
        still fails `give_up_s` after the batch began."""
        self._deadline = self.clock() + self.give_up_s
        by_route: dict[Route, list[dict[str, Any]]] = {}
        for alert in alerts:
            for route in routes_for(alert, self.routes, self.default):
                by_route.setdefault(route, []).append(alert)
        for route, pending in by_route.items():
            fresh = []
            for alert in pending:
                if not await self.redis.exists(self._key(route, alert["alert_id"])):
                    fresh.append(alert)
            if len(fresh) < len(pending):
                self.skipped += len(pending) - len(fresh)
                log.info("route %s: %d alert(s) already delivered, skipped",
                         route.name, len(pending) - len(fresh))
            if fresh:
                await self._deliver(route, fresh)

    async def _deliver(self, route: Route, alerts: list[dict[str, Any]]) -> None:
        if route.webhook is None:
            for alert in alerts:
                self._print(alert)
            await self._mark(route, alerts)
            return
        # a burst becomes digests of at most 48 alerts each (Block Kit: 50 blocks)
        for start in range(0, len(alerts), 48):
            chunk = alerts[start:start + 48]
            payload = digest_message(chunk)
            if await self._post_with_retries(route, payload):
                await self._mark(route, chunk)
            else:
                for alert in chunk:
                    await self.deadletter(alert, f"slack_permanent_failure route={route.name}")

    async def _post_with_retries(self, route: Route, payload: dict[str, Any]) -> bool:
        """True once the webhook took it, False for a permanent refusal; retryable failures
        are retried (Retry-After, else backoff) until the batch's deadline."""
        assert route.webhook is not None
        started = self.clock()
        attempt = 0
        while True:
            attempt += 1
            wait = self.limiter.wait_time(route.name)
            if wait > 0:
                await self.sleep(wait)
            status, headers = await self.post(route.webhook, payload)
            self.limiter.sent(route.name)
            verdict = classify(status, headers, attempt, self.rng)
            if verdict.outcome is Outcome.OK:
                if attempt > 1:
                    log.info("route %s: delivered after %d attempts (%.1fs)", route.name,
                             attempt, self.clock() - started)
                return True
            if verdict.outcome is Outcome.PERMANENT:
                log.error("route %s: %s; dead-lettering", route.name, verdict.reason)
                return False
            if self.clock() + verdict.wait_s > self._deadline:
                log.error("route %s: %s; giving up after %d attempts (%.0fs)", route.name,
                          verdict.reason, attempt, self.clock() - started)
                raise DeliveryFailed(
                    f"route {route.name}: webhook still failing ({verdict.reason}) after "
                    f"{attempt} attempts; MARKETFLOW_NOTIFY_GIVE_UP_S={self.give_up_s:g}s "
                    "passed; offsets not committed")
            log.warning("route %s: %s; retry %d in %.1fs", route.name, verdict.reason, attempt,
                        verdict.wait_s)
            await self.sleep(verdict.wait_s)

    async def _mark(self, route: Route, alerts: list[dict[str, Any]]) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for alert in alerts:
                pipe.set(self._key(route, alert["alert_id"]), 1, ex=DELIVERED_TTL_S)
            await pipe.execute()
        self.delivered += len(alerts)

    def _print(self, alert: dict[str, Any]) -> None:
        line = f"{alert['ts'][11:19]} [{alert['severity']}] {alert['message']}"
        if self.console is not None:  # (not markup: "[info]" would vanish as a style tag)
            self.console.print(line, markup=False, highlight=False)
        else:
            print(line, flush=True)


async def run_notify(bootstrap: str, redis_url: str, settings: Any, routes: list[Route],
                     default: Route, group: str, once: bool, post: Post = slack_post) -> int:
    import redis.asyncio as aioredis
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from rich.console import Console

    from marketflow.kafka_clients import client_kwargs

    topics = settings.topics
    consumer = AIOKafkaConsumer(
        topics.alerts, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
        auto_offset_reset="earliest", session_timeout_ms=int(settings.session_timeout_s * 1000),
        heartbeat_interval_ms=int(settings.heartbeat_s * 1000), fetch_max_wait_ms=200,
        # a batch may wait out a webhook outage for up to give-up time: stay in the group
        max_poll_interval_ms=int((settings.notify_give_up_s + 60) * 1000),
        **client_kwargs(settings, "aiokafka"))
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all",
                                **client_kwargs(settings, "aiokafka"))
    client = aioredis.Redis.from_url(redis_url)

    async def to_deadletter(payload: dict[str, Any] | bytes, reason: str) -> None:
        raw = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        record = dead_letter(source_topic=topics.alerts, reason=reason.split(" ")[0],
                             detail=reason, payload=raw,
                             at=dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"))
        await producer.send_and_wait(topics.deadletter, orjson.dumps(record))

    notifier = Notifier(client, routes, default, settings.redis_prefix, to_deadletter,
                        post=post, console=Console(soft_wrap=True),
                        give_up_s=settings.notify_give_up_s)
    await consumer.start()
    await producer.start()
    idle = 0
    try:
        while True:
            batches = await consumer.getmany(timeout_ms=500, max_records=200)
            if not batches:
                idle += 1
                if once and idle >= 4:
                    return 0
                continue
            idle = 0
            alerts = []
            for records in batches.values():
                for record in records:
                    try:
                        alert = orjson.loads(record.value)
                        if not isinstance(alert, dict) or "alert_id" not in alert:
                            raise ValueError("not an alert")
                        alerts.append(alert)
                    except ValueError as error:
                        await to_deadletter(record.value or b"", f"invalid_alert {error}")
            alerts.sort(key=lambda a: (a.get("ts", ""), a["alert_id"]))
            await notifier.handle(alerts)
            await consumer.commit()  # only after every alert is delivered or dead-lettered
    finally:
        await consumer.stop()
        await producer.stop()
        await client.aclose()
