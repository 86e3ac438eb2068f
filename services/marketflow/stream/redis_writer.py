"""The worker's writes to Redis, kept through an outage.

Redis is a sink, never the source of truth (`mf.alerts` is): while it is down or frozen the
worker keeps processing, alerts and the latest snapshots wait here, and they are written
when Redis answers again (each write bounded by the client's socket timeout, retried with
backoff). Alerts are deduplicated by id in Redis, so a retry, or the alerts a restarted
worker restores from `mf.alerts`, never add one twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from marketflow.backoff import backoff_delay
from marketflow.core.output import Alert, Snapshot

log = logging.getLogger("marketflow.redis")

MAX_PENDING_ALERTS = 100_000  # a day has hundreds; beyond this the oldest wait in mf.alerts


class RedisWriter:
    def __init__(self, alerts: Any, latest: Any,
                 now: Callable[[], float] = time.monotonic) -> None:
        self.alerts_sink = alerts  # RedisAlertSink
        self.latest_sink = latest  # RedisLatestSink
        self.now = now
        self.pending_alerts: dict[str, Alert] = {}  # alert_id -> alert, in firing order
        self.pending_latest: dict[tuple[str, str], Snapshot] = {}
        self.failures = 0
        self.retry_at = 0.0
        self.down_since: float | None = None

    @property
    def healthy(self) -> bool:
        return self.failures == 0

    def add_alerts(self, alerts: list[Alert]) -> None:
        for alert in alerts:
            self.pending_alerts[alert["alert_id"]] = alert
        while len(self.pending_alerts) > MAX_PENDING_ALERTS:
            del self.pending_alerts[next(iter(self.pending_alerts))]

    def add_latest(self, snapshots: list[Snapshot]) -> None:
        for snapshot in snapshots:
            self.pending_latest[(snapshot["type"], snapshot["subject"])] = snapshot

    async def write(self) -> bool:
        """Write what is pending, unless backing off after a failure; True if nothing is
        left pending. Never raises for a Redis or network failure."""
        if not (self.pending_alerts or self.pending_latest):
            return True
        now = self.now()
        if now < self.retry_at:
            return False
        alerts, latest = list(self.pending_alerts.values()), list(self.pending_latest.values())
        try:
            if alerts:
                await self.alerts_sink.publish_many(alerts)
                for alert in alerts:
                    self.pending_alerts.pop(alert["alert_id"], None)
            if latest:
                await self.latest_sink.write_many(latest)
                for snapshot in latest:
                    key = (snapshot["type"], snapshot["subject"])
                    if self.pending_latest.get(key) is snapshot:
                        del self.pending_latest[key]
        except Exception as error:  # redis-py raises RedisError, OSError, TimeoutError...
            self.failures += 1
            delay = backoff_delay(self.failures, base=0.25, cap=5.0, jitter=0.0)
            self.retry_at = self.now() + delay
            if self.down_since is None:
                self.down_since = now
            log.warning("Redis write failed (%s); %d alert(s) and %d snapshot(s) kept, "
                        "retry in %.2fs", type(error).__name__, len(self.pending_alerts),
                        len(self.pending_latest), delay)
            return False
        if self.failures:
            log.info("Redis is back after %.1fs: pending alerts and snapshots written",
                     self.now() - (self.down_since or now))
        self.failures, self.retry_at, self.down_since = 0, 0.0, None
        return True
