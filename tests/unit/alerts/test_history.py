"""Intraday history points: which figures, one per subject per interval, the latest wins."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from marketflow.alerts.history import HistorySampler, history_points, point_of, ts_ms_of

T0 = "2025-11-24T09:30:00.000+08:00"
T0_MS = 1763947800000


def snap(kind: str, subject: str, ts: str = T0, **figures: Any) -> dict[str, Any]:
    return {"type": kind, "subject": subject, "trading_date": "2025-11-24", "ts": ts,
            "final": False, **figures}


INDEX = snap("index", "HSTECH", name="Hang Seng TECH", prev_close=5395.56, level=5500.0,
             change_pct=1.94)
SECTOR = snap("sector", "AI", level=1.03, gain_pct=3.0, eq_gain_pct=2.5, turnover_hkd=1e9,
              advancers=3, decliners=0, unchanged=0, rolling={"1m": 0.1}, top_contributors=[])
MARKET = snap("market", "market", turnover_hkd=2e11, advancers=60, decliners=30, unchanged=9)
FLOW = snap("southbound", "total", buy_hkd=5e10, sell_hkd=4e10, net_hkd=1e10)
STOCK = snap("stock", "00700", name="Tencent", prev_close=614.0, last=620.0, change_pct=0.98,
             turnover_hkd=1e9, volume=10, trades=1)


@pytest.mark.parametrize(("snapshot", "key", "figures"), [
    (INDEX, "history:2025-11-24:index:HSTECH", {"level": 5500.0, "change_pct": 1.94}),
    (SECTOR, "history:2025-11-24:sector:AI",
     {"gain_pct": 3.0, "eq_gain_pct": 2.5, "turnover_hkd": 1e9}),
    (MARKET, "history:2025-11-24:market:market",
     {"turnover_hkd": 2e11, "advancers": 60, "decliners": 30, "unchanged": 9}),
    (FLOW, "history:2025-11-24:southbound:total",
     {"buy_hkd": 5e10, "sell_hkd": 4e10, "net_hkd": 1e10}),
])
def test_point_of_each_type(snapshot: dict[str, Any], key: str, figures: dict) -> None:
    point = point_of(snapshot)
    assert point is not None
    assert point.key == key and point.ts_ms == T0_MS and point.bucket == T0_MS // 15_000
    assert orjson.loads(point.member) == {"ts": T0, **figures}


@pytest.mark.parametrize("snapshot", [STOCK, {"type": "index"}, {**INDEX, "ts": "nonsense"}])
def test_no_point(snapshot: dict[str, Any]) -> None:
    assert point_of(snapshot) is None


def test_ts_ms_is_exact() -> None:
    assert ts_ms_of("2025-11-24T09:30:00.001+08:00") == T0_MS + 1
    assert ts_ms_of("2025-11-24T01:30:00.999Z") == T0_MS + 999


def at(seconds: float, level: float) -> dict[str, Any]:
    ms = T0_MS + int(seconds * 1000)
    from marketflow.core.timeutil import to_rfc3339

    return {**INDEX, "ts": to_rfc3339(ms), "level": level}


def test_one_point_per_interval_the_latest_wins() -> None:
    sampler = HistorySampler(interval_ms=15_000)
    sampler.observe([at(0, 1), at(5, 2), at(14.999, 3), at(15, 4), at(40, 5), STOCK])
    assert [orjson.loads(p.member)["level"] for p in sampler.pending()] == [3, 4, 5]
    sampler.observe([at(3, 9)])  # older than the interval's point: ignored
    assert [orjson.loads(p.member)["level"] for p in sampler.pending()] == [3, 4, 5]


def test_written_points_are_forgotten_unless_replaced() -> None:
    sampler = HistorySampler()
    sampler.observe([at(0, 1), at(20, 2)])
    points = sampler.pending()
    sampler.observe([at(25, 3)])  # replaces the second interval's point before the write
    sampler.written(points)
    assert [orjson.loads(p.member)["level"] for p in sampler.pending()] == [3]


def test_pending_is_bounded() -> None:
    sampler = HistorySampler(interval_ms=1000, max_pending=3)
    sampler.observe([at(n, n) for n in range(5)])
    assert [orjson.loads(p.member)["level"] for p in sampler.pending()] == [2, 3, 4]


def test_script_points_replace_the_interval() -> None:
    sampler = HistorySampler()
    sampler.observe([at(0, 1), at(16, 2)])
    points = sampler.pending()
    keys, rows = history_points("mf:", points, first_key=4)
    key = "mf:history:2025-11-24:index:HSTECH"
    start = (T0_MS // 15_000) * 15_000
    assert keys == [key]  # one set, numbered after the three hashes before it
    assert rows == [[4, str(start), f"({start + 15_000}", str(points[0].ts_ms),
                     points[0].member.decode()],
                    [4, str(start + 15_000), f"({start + 30_000}", str(points[1].ts_ms),
                     points[1].member.decode()]]
