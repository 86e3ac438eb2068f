"""Backoff, pure: how long to wait before the n-th retry. The loops that sleep live with
their I/O (Slack delivery in alerts/notify.py, broker connection in infra/embedded.py)."""

from __future__ import annotations

import random


def backoff_delay(attempt: int, base: float = 0.5, cap: float = 30.0, jitter: float = 0.2,
                  rng: random.Random | None = None) -> float:
    """Exponential backoff for the `attempt`-th retry (1-based), capped, with +-jitter."""
    delay = min(cap, base * 2.0 ** min(max(0, attempt - 1), 1000))  # no float overflow
    if jitter and rng is not None:
        delay *= 1 + rng.uniform(-jitter, jitter)
    return delay


def backoff_delays(attempts: int, base: float = 0.5, cap: float = 30.0) -> list[float]:
    """The waits between `attempts` tries, without jitter: one fewer than the tries."""
    return [backoff_delay(n, base, cap, jitter=0.0) for n in range(1, attempts)]
