"""Metrics: names and labels of docs/contracts.md#metrics, ratios not percents; a fresh
registry per test."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from marketflow.observe.metrics import MarketflowMetrics


@pytest.fixture
def metrics() -> MarketflowMetrics:
    return MarketflowMetrics(CollectorRegistry())


@pytest.mark.parametrize(
    ("snapshot", "sample", "labels", "value"),
    [
        ({"type": "index", "subject": "HSTECH", "level": 5545.56, "change_pct": 2.78},
         "marketflow_index_change_ratio", {"index": "HSTECH"}, 0.0278),
        ({"type": "index", "subject": "HSI", "level": 25716.5, "change_pct": 1.97},
         "marketflow_index_level", {"index": "HSI"}, 25716.5),
        ({"type": "sector", "subject": "AI", "gain_pct": 3.5, "turnover_hkd": 1e9,
          "rolling": {"15m": 1.5}},
         "marketflow_sector_gain_ratio", {"sector": "AI", "window": "15m"}, 0.015),
        ({"type": "sector", "subject": "AI", "gain_pct": 3.5, "turnover_hkd": 1e9,
          "rolling": {}},
         "marketflow_sector_gain_ratio", {"sector": "AI", "window": "day"}, 0.035),
        ({"type": "market", "subject": "market", "turnover_hkd": 3.026e11},
         "marketflow_market_turnover_hkd", {}, 3.026e11),
        ({"type": "southbound", "subject": "total", "net_hkd": 8.57134e9},
         "marketflow_southbound_net_inflow_hkd", {"channel": "total"}, 8.57134e9),
    ],
)
def test_snapshots_set_gauges(metrics: MarketflowMetrics, snapshot: dict, sample: str,
                              labels: dict, value: float) -> None:
    metrics.observe_snapshots([snapshot])
    assert metrics.registry.get_sample_value(sample, labels) == pytest.approx(value)


def test_counters_and_histograms(metrics: MarketflowMetrics) -> None:
    metrics.observe_alert({"rule_id": "index-up-2pct", "severity": "warning"})
    metrics.observe_alert({"rule_id": "index-up-2pct", "severity": "warning"})
    metrics.observe_ticks(100)
    metrics.records_rejected.labels(reason="invalid_ts").inc()
    metrics.observe_tick_to_alert(0.004)
    get = metrics.registry.get_sample_value
    assert get("marketflow_alerts_total", {"rule": "index-up-2pct", "severity": "warning"}) == 2
    assert get("marketflow_ticks_total", {"partition": ""}) == 100
    assert get("marketflow_records_rejected_total", {"reason": "invalid_ts"}) == 1
    assert get("marketflow_tick_to_alert_seconds_bucket", {"le": "0.005"}) == 1
    assert get("marketflow_tick_to_alert_seconds_bucket", {"le": "0.0025"}) == 0
