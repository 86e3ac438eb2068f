"""The notifier's delivery loop with a scripted webhook and a fake clock: Retry-After
honoured (not the rate limit), outages ridden out with backoff, and a clear give-up."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest

from marketflow.alerts.notify import DeliveryFailed, Notifier, Route

ROUTE = Route("default", "https://hooks.slack.invalid/services/T/B/secret")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


def notifier(script: list[tuple[int | None, dict[str, str]]], clock: Clock,
             give_up_s: float = 600.0) -> tuple[Notifier, list[float]]:
    posted: list[float] = []

    async def post(url: str, payload: dict[str, Any]) -> tuple[int | None, dict[str, str]]:
        posted.append(clock())
        return script.pop(0) if script else (200, {})

    async def deadletter(alert: dict[str, Any], reason: str) -> None:
        raise AssertionError("nothing is dead-lettered here")

    made = Notifier(None, [], ROUTE, "mf:", deadletter, post=post, give_up_s=give_up_s,
                    sleep=clock.sleep, clock=clock)
    made._deadline = clock() + give_up_s  # what handle() sets for a batch
    return made, posted


@pytest.mark.parametrize("retry_after", [3, 7])
def test_retry_after_is_waited_not_the_rate_limit(retry_after: int) -> None:
    clock = Clock()
    made, posted = notifier([(429, {"Retry-After": str(retry_after)})], clock)
    assert asyncio.run(made._post_with_retries(ROUTE, {})) is True
    assert [round(t - posted[0], 6) for t in posted] == [0, retry_after]


def test_a_sixty_second_outage_is_ridden_out() -> None:
    clock = Clock()
    script: list[tuple[int | None, dict[str, str]]] = []
    made, posted = notifier(script, clock)

    async def post(url: str, payload: dict[str, Any]) -> tuple[int | None, dict[str, str]]:
        posted.append(clock())
        elapsed = clock() - 1000.0
        if elapsed < 30:
            return 503, {}
        if elapsed < 60:
            return None, {}  # connection refused
        return 200, {}

    made.post = post
    assert asyncio.run(made._post_with_retries(ROUTE, {})) is True
    gaps = [b - a for a, b in itertools.pairwise(posted)]
    assert posted[-1] - 1000.0 >= 60 and max(gaps) <= 30 * 1.2 + 1e-9
    # exponential backoff (with +-20% jitter; the 1/s limiter holds the first two at 1 s)
    assert gaps[0] >= 0.5 * 0.8 and gaps[2] > gaps[1] >= gaps[0]


def test_gives_up_after_the_give_up_time() -> None:
    clock = Clock()
    made, posted = notifier([(503, {})] * 1000, clock, give_up_s=120)
    with pytest.raises(DeliveryFailed, match=r"MARKETFLOW_NOTIFY_GIVE_UP_S=120s"):
        asyncio.run(made._post_with_retries(ROUTE, {}))
    assert posted[-1] - posted[0] <= 120
    assert "secret" not in str(made.default.name)


def test_a_retry_after_beyond_the_give_up_time_gives_up_at_once() -> None:
    clock = Clock()
    made, posted = notifier([(429, {"Retry-After": "86400"})], clock, give_up_s=600)
    with pytest.raises(DeliveryFailed):
        asyncio.run(made._post_with_retries(ROUTE, {}))
    assert len(posted) == 1 and clock() - 1000.0 < 1
