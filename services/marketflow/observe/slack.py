"""The notifier's webhook posts, observed: a `Post` wrapped to count each post by route and
outcome and time it (`NotifyMetrics`). Webhook URLs are secrets: only route names become
labels."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from marketflow.observe.metrics import NotifyMetrics

Post = Callable[[str, dict[str, Any]], Awaitable[tuple[int | None, dict[str, str]]]]


def observed_post(post: Post, metrics: NotifyMetrics, route_names: dict[str, str],
                  clock: Callable[[], float] = time.perf_counter) -> Post:
    """`post` that also reports to `metrics`; `route_names` maps webhook URL -> route."""
    for name in set(route_names.values()):
        metrics.declare(name)

    async def posted(webhook: str, payload: dict[str, Any]) -> tuple[int | None, dict[str, str]]:
        started = clock()
        status, headers = await post(webhook, payload)
        metrics.observe_post(route_names.get(webhook, "unknown"), status, clock() - started)
        return status, headers

    return posted
