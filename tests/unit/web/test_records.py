"""Redis hashes back to snapshot records: the inverse of the worker's `latest_fields`, for
every valid snapshot example of `schemas/`; sector ranking, stock orders, alert filters."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from marketflow.alerts.redis_sink import latest_fields, latest_key
from marketflow.web.records import (
    alert_matches,
    parse_latest_key,
    rank_sectors,
    snapshot_from_hash,
    sort_stocks,
)
from tests.schemas import schemas_dir, validator

EXAMPLES = sorted(path for kind in ("index", "stock", "sector", "market", "southbound")
                  for path in (schemas_dir() / "examples" / f"{kind}-snapshot" / "valid")
                  .glob("*.json"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_hash_round_trip(path: Path) -> None:
    snapshot = json.loads(path.read_text())
    key = latest_key("mf:", snapshot)
    kind, subject = parse_latest_key("mf:", key) or ("", "")
    assert (kind, subject) == (snapshot["type"], snapshot["subject"])
    record = snapshot_from_hash(kind, subject, latest_fields(snapshot))
    assert record == snapshot
    assert not list(validator("snapshot").iter_errors(record))


@pytest.mark.parametrize(("key", "parsed"), [
    ("mf:latest:market", ("market", "market")),
    ("mf:latest:index:HSTECH", ("index", "HSTECH")),
    ("mf:latest:sector:Consumer Discretionary", ("sector", "Consumer Discretionary")),
    ("mf:latest:southbound:total", ("southbound", "total")),
    ("mf:latest:stock:00700", ("stock", "00700")),
    ("mf:latest:market:x", None),
    ("mf:latest:nonsense:x", None),
    ("mf:latest:index:", None),
    ("other:latest:index:HSI", None),
    ("mf:alerts", None),
])
def test_parse_latest_key(key: str, parsed: tuple[str, str] | None) -> None:
    assert parse_latest_key("mf:", key) == parsed


def test_incomplete_hash_is_left_out() -> None:
    assert snapshot_from_hash("index", "HSI", {"ts": "x", "trading_date": "2025-11-24"}) is None
    assert snapshot_from_hash("market", "market", {
        "ts": "2025-11-24T10:00:00.000+08:00", "trading_date": "2025-11-24",
        "turnover_hkd": "abc", "advancers": "1", "decliners": "1", "unchanged": "1"}) is None


def sector(name: str, gain: float, eq: float, rolling: dict[str, float]) -> dict[str, Any]:
    return {"subject": name, "gain_pct": gain, "eq_gain_pct": eq, "rolling": rolling}


SECTORS = [sector("AI", 4.4, 3.9, {"1m": 0.1, "15m": 0.3}),
           sector("Energy", 0.6, 1.0, {"1m": 0.2, "15m": 0.5}),
           sector("Banks", 0.6, 0.2, {"1m": -0.1})]


@pytest.mark.parametrize(("window", "weight", "order"), [
    ("day", "float", [("AI", 4.4), ("Banks", 0.6), ("Energy", 0.6)]),
    ("day", "equal", [("AI", 3.9), ("Energy", 1.0), ("Banks", 0.2)]),
    ("15m", "float", [("Energy", 0.5), ("AI", 0.3), ("Banks", None)]),
    ("1m", "float", [("Energy", 0.2), ("AI", 0.1), ("Banks", -0.1)]),
    ("1m", "equal", [("AI", None), ("Banks", None), ("Energy", None)]),
])
def test_rank_sectors(window: str, weight: str, order: list[tuple[str, float | None]]) -> None:
    ranked = rank_sectors(SECTORS, window, weight)
    assert [(r["subject"], r["value"]) for r in ranked] == order


STOCKS = [{"subject": "00700", "change_pct": 1.0, "turnover_hkd": 9.0},
          {"subject": "09988", "change_pct": -3.0, "turnover_hkd": 5.0},
          {"subject": "01024", "change_pct": 2.0, "turnover_hkd": 1.0}]


@pytest.mark.parametrize(("order", "symbols"), [
    ("gainers", ["01024", "00700", "09988"]),
    ("losers", ["09988", "00700", "01024"]),
    ("movers", ["09988", "01024", "00700"]),
    ("turnover", ["00700", "09988", "01024"]),
    ("symbol", ["00700", "01024", "09988"]),
])
def test_sort_stocks(order: str, symbols: list[str]) -> None:
    assert [s["subject"] for s in sort_stocks(STOCKS, order)] == symbols
    assert len(sort_stocks(STOCKS, order, limit=2)) == 2


ALERT = {"subject": "HSTECH", "rule_id": "index-up-2pct", "severity": "warning"}


@pytest.mark.parametrize(("filters", "matches"), [
    ({}, True),
    ({"subjects": ["HSTECH", "HSI"]}, True),
    ({"subjects": ["HSI"]}, False),
    ({"rules": ["index-up-2pct"], "severities": ["warning", "critical"]}, True),
    ({"rules": ["index-up-2pct"], "severities": ["critical"]}, False),
])
def test_alert_matches(filters: dict[str, list[str]], matches: bool) -> None:
    assert alert_matches(ALERT, **filters) is matches
