"""Webhook posts counted by route and outcome; URLs never become labels."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from marketflow.observe.metrics import NotifyMetrics, slack_outcome
from marketflow.observe.slack import observed_post


@pytest.mark.parametrize(("status", "outcome"), [
    (200, "ok"), (204, "ok"), (429, "rate_limited"), (500, "server_error"),
    (503, "server_error"), (400, "rejected"), (404, "rejected"), (None, "timeout"),
])
def test_outcomes(status: int | None, outcome: str) -> None:
    assert slack_outcome(status) == outcome


async def test_observed_post_counts_and_times() -> None:
    metrics = NotifyMetrics(CollectorRegistry())
    statuses = iter([500, 200])

    async def post(webhook: str, payload: dict) -> tuple[int | None, dict[str, str]]:
        return next(statuses), {}

    ticks = iter([0.0, 0.25, 1.0, 1.5])
    wrapped = observed_post(post, metrics, {"https://hooks.example/secret": "oncall"},
                            clock=lambda: next(ticks))
    assert await wrapped("https://hooks.example/secret", {}) == (500, {})
    assert await wrapped("https://hooks.example/secret", {}) == (200, {})
    get = metrics.registry.get_sample_value
    assert get("marketflow_slack_posts_total", {"route": "oncall", "outcome": "ok"}) == 1
    assert get("marketflow_slack_posts_total",
               {"route": "oncall", "outcome": "server_error"}) == 1
    assert get("marketflow_slack_posts_total", {"route": "oncall", "outcome": "timeout"}) == 0
    assert get("marketflow_slack_post_seconds_sum") == pytest.approx(0.75)
    names = {s.labels.get("route") for m in metrics.registry.collect() for s in m.samples}
    assert not any("hooks" in str(n) for n in names)
