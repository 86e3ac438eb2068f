"""Delivery policy, pure: what an HTTP outcome means, how long to back off (the shared
policy of marketflow.backoff), the rate limit.

The loop that sleeps lives in notify.py; everything here is a function of its inputs
(failure count, status, headers, an injected clock), so it is tested without I/O.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum

from marketflow.backoff import backoff_delay

__all__ = ["IntervalLimiter", "Outcome", "Verdict", "backoff_delay", "classify"]


class Outcome(Enum):
    OK = "ok"
    RETRY = "retry"
    PERMANENT = "permanent"


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: Outcome
    wait_s: float = 0.0  # for RETRY: how long to wait before the next attempt
    reason: str = ""


def classify(status: int | None, headers: Mapping[str, str] | None = None, attempt: int = 1,
             rng: random.Random | None = None) -> Verdict:
    """status None = timeout or connection error."""
    if status is None:
        return Verdict(Outcome.RETRY, backoff_delay(attempt, rng=rng), "timeout or connection")
    if 200 <= status < 300:
        return Verdict(Outcome.OK)
    if status == 429:
        retry_after = _retry_after(headers or {})
        wait = retry_after if retry_after is not None else backoff_delay(attempt, rng=rng)
        return Verdict(Outcome.RETRY, wait, "rate limited (429)")
    if status >= 500:
        return Verdict(Outcome.RETRY, backoff_delay(attempt, rng=rng), f"server error {status}")
    return Verdict(Outcome.PERMANENT, 0.0, f"permanent failure {status}")


def _retry_after(headers: Mapping[str, str]) -> float | None:
    for key, value in headers.items():
        if key.lower() == "retry-after":
            try:
                return max(0.0, float(value))
            except ValueError:
                return None
    return None


class IntervalLimiter:
    """At most one message per `interval` seconds per key (one key per webhook)."""

    def __init__(self, interval: float = 1.0, clock: Callable[[], float] | None = None) -> None:
        import time

        self.interval = interval
        self.clock = clock or time.monotonic
        self._last: dict[str, float] = {}

    def wait_time(self, key: str) -> float:
        last = self._last.get(key)
        if last is None:
            return 0.0
        return max(0.0, last + self.interval - self.clock())

    def sent(self, key: str) -> None:
        self._last[key] = self.clock()
