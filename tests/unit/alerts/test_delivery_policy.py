"""Delivery policy and Block Kit rendering: pure, table-driven."""

from __future__ import annotations

import random

import pytest

from marketflow.alerts.backoff import IntervalLimiter, Outcome, backoff_delay, classify
from marketflow.alerts.notify import Route, build_routes, routes_for
from marketflow.alerts.slack import MAX_BLOCKS, alert_message, digest_message


def alert(n: int = 1, severity: str = "warning", rule: str = "index-up-2pct") -> dict:
    return {"alert_id": f"{n:016x}", "rule_id": rule, "subject": "HSTECH",
            "metric": "index.change_pct", "window": "day", "op": ">=", "threshold": 2.0,
            "value": 2.0012, "ts": "2025-11-24T14:35:38.000+08:00",
            "trading_date": "2025-11-24", "severity": severity,
            "message": "Hang Seng TECH Index up +2.00% at 5,503.54",
            "evidence": {"level": 5503.54, "prev_close": 5395.56, "change_points": 107.98,
                         "top_contributors": [{"symbol": "09988", "name": "Alibaba-W",
                                               "change_pct": 4.1, "contribution_pct": 0.52}]},
            "emitted_at": "2025-11-24T14:35:38.020+08:00"}


@pytest.mark.parametrize(
    ("status", "headers", "outcome", "wait"),
    [
        (200, {}, Outcome.OK, 0.0),
        (429, {"Retry-After": "3"}, Outcome.RETRY, 3.0),
        (429, {"retry-after": "0"}, Outcome.RETRY, 0.0),
        (500, {}, Outcome.RETRY, 0.5),
        (503, {}, Outcome.RETRY, 0.5),
        (None, {}, Outcome.RETRY, 0.5),  # timeout / connection error
        (400, {}, Outcome.PERMANENT, 0.0),
        (404, {}, Outcome.PERMANENT, 0.0),
        (410, {}, Outcome.PERMANENT, 0.0),
    ],
)
def test_classify(status: int | None, headers: dict, outcome: Outcome, wait: float) -> None:
    verdict = classify(status, headers, attempt=1)
    assert verdict.outcome is outcome and verdict.wait_s == wait


@pytest.mark.parametrize(("attempt", "delay"), [(1, 0.5), (2, 1.0), (3, 2.0), (7, 30.0),
                                                (20, 30.0), (1100, 30.0), (10**6, 30.0)])
def test_backoff(attempt: int, delay: float) -> None:
    assert backoff_delay(attempt, jitter=0) == delay
    jittered = backoff_delay(attempt, rng=random.Random(1))
    assert delay * 0.8 <= jittered <= delay * 1.2


def test_limiter_one_message_per_second_per_webhook() -> None:
    now = [100.0]
    limiter = IntervalLimiter(1.0, clock=lambda: now[0])
    assert limiter.wait_time("ops") == 0.0
    limiter.sent("ops")
    now[0] += 0.25
    assert limiter.wait_time("ops") == pytest.approx(0.75)
    assert limiter.wait_time("desk") == 0.0
    now[0] += 1.0
    assert limiter.wait_time("ops") == 0.0


def test_single_alert_message() -> None:
    message = alert_message(alert())
    assert message["text"].startswith("HSTECH: Hang Seng TECH")
    kinds = [b["type"] for b in message["blocks"]]
    assert kinds == ["header", "section", "section", "context"]
    fields = " ".join(f["text"] for f in message["blocks"][1]["fields"])
    assert "14:35:38 HKT" in fields and "2.00 >= 2.00" in fields
    assert "09988 Alibaba-W" in message["blocks"][2]["text"]["text"]


@pytest.mark.parametrize("count", [2, 48, 49, 120])
def test_digest_fits_block_kit(count: int) -> None:
    message = digest_message([alert(n) for n in range(count)])
    assert len(message["blocks"]) <= MAX_BLOCKS
    assert message["blocks"][0]["text"]["text"] == f"{count} alerts"
    if count > MAX_BLOCKS - 1:
        assert message["blocks"][-1]["elements"][0]["text"].startswith("+")
    assert message["text"]


def test_routing_by_severity_and_rule() -> None:
    routes, default = build_routes(
        "https://hooks.invalid/default",
        {"ops": {"webhook_env": "OPS_HOOK", "severities": ["critical"]},
         "desk": {"webhook_env": "DESK_HOOK", "rules": ["stock-up-5pct"]},
         "unset": {"webhook_env": "NOT_SET"}},
        environ={"OPS_HOOK": "https://hooks.invalid/ops", "DESK_HOOK": "https://hooks.invalid/d"})
    assert [r.name for r in routes] == ["ops", "desk"]
    assert [r.name for r in routes_for(alert(severity="critical"), routes, default)] == ["ops"]
    assert [r.name for r in routes_for(alert(rule="stock-up-5pct", severity="info"), routes,
                                       default)] == ["desk"]
    assert routes_for(alert(severity="info"), routes, default) == [default]
    assert Route("x", None).matches(alert())
