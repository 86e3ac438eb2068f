"""Every Prometheus metric (docs/contracts.md#metrics), defined once against an injected registry.

Ratios, not percents (`gain_pct` 2.78 -> 0.0278); latencies in seconds. The stream
adapter hands over the same snapshot and alert records it writes elsewhere.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                   5.0)


class MarketflowMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.index_level = Gauge("marketflow_index_level", "Latest index level",
                                 ["index"], registry=registry)
        self.index_change = Gauge("marketflow_index_change_ratio",
                                  "Index change vs previous close (ratio)", ["index"],
                                  registry=registry)
        self.sector_gain = Gauge("marketflow_sector_gain_ratio",
                                 "Free-float cap weighted sector gain (ratio) by window",
                                 ["sector", "window"], registry=registry)
        self.sector_turnover = Gauge("marketflow_sector_turnover_hkd",
                                     "Sector turnover of the day (HK$)", ["sector"],
                                     registry=registry)
        self.market_turnover = Gauge("marketflow_market_turnover_hkd",
                                     "Market turnover of the day (HK$)", registry=registry)
        self.southbound_net = Gauge("marketflow_southbound_net_inflow_hkd",
                                    "Southbound net inflow of the day (HK$)", ["channel"],
                                    registry=registry)
        self.alerts = Counter("marketflow_alerts", "Alerts fired", ["rule", "severity"],
                              registry=registry)
        self.ticks = Counter("marketflow_ticks", "Ticks applied", registry=registry)
        self.records_rejected = Counter("marketflow_records_rejected",
                                        "Records rejected, by reason", ["reason"],
                                        registry=registry)
        self.tick_to_alert = Histogram(
            "marketflow_tick_to_alert_seconds",
            "From a tick's Kafka timestamp to its alert written to every sink",
            buckets=LATENCY_BUCKETS, registry=registry)
        self.frame_seconds = Histogram(
            "marketflow_frame_close_seconds", "Time to apply a frame partial and close frames",
            buckets=LATENCY_BUCKETS, registry=registry)
        self.groups_dropped = Counter(
            "marketflow_frame_groups_dropped",
            "Frame groups the aggregator dropped: re-delivered (older than their source's "
            "latest) or of a trading day already closed", ["reason"], registry=registry)
        self._dropped_seen: dict[str, int] = {}
        self.frame_wait = Gauge(
            "marketflow_frame_wait_seconds",
            "How long the oldest frame still open in the aggregator has waited to close",
            registry=registry)
        self.batch_seconds = Histogram(
            "marketflow_batch_process_seconds", "Time to process one md.ticks record",
            buckets=LATENCY_BUCKETS, registry=registry)

    def observe_snapshots(self, snapshots: list[dict[str, Any]]) -> None:
        for snapshot in snapshots:
            kind, subject = snapshot["type"], snapshot["subject"]
            if kind == "index":
                self.index_level.labels(index=subject).set(snapshot["level"])
                self.index_change.labels(index=subject).set(snapshot["change_pct"] / 100)
            elif kind == "sector":
                self.sector_gain.labels(sector=subject, window="day").set(
                    snapshot["gain_pct"] / 100)
                for window, gain in snapshot.get("rolling", {}).items():
                    self.sector_gain.labels(sector=subject, window=window).set(gain / 100)
                self.sector_turnover.labels(sector=subject).set(snapshot["turnover_hkd"])
            elif kind == "market":
                self.market_turnover.set(snapshot["turnover_hkd"])
            elif kind == "southbound":
                self.southbound_net.labels(channel=subject).set(snapshot["net_hkd"])

    def observe_alert(self, alert: dict[str, Any]) -> None:
        self.alerts.labels(rule=alert["rule_id"], severity=alert["severity"]).inc()

    def observe_ticks(self, count: int) -> None:
        self.ticks.inc(count)

    def observe_tick_to_alert(self, seconds: float) -> None:
        self.tick_to_alert.observe(max(seconds, 0.0))

    def observe_dropped_groups(self, totals: dict[str, int]) -> None:
        """`totals`: the aggregator's running counts by reason (a new aggregator starts
        again from 0, so a drop in a total counts from there)."""
        for reason, total in totals.items():
            seen = self._dropped_seen.get(reason, 0)
            if total != seen:
                self.groups_dropped.labels(reason=reason).inc(total - seen if total > seen
                                                               else total)
                self._dropped_seen[reason] = total

    def observe_batch(self, seconds: float) -> None:
        self.batch_seconds.observe(seconds)

    def observe_frame(self, seconds: float) -> None:
        self.frame_seconds.observe(seconds)


def serve(port: int, registry: CollectorRegistry, host: str = "127.0.0.1") -> None:
    """Serve /metrics on host:port in a background thread."""
    start_http_server(port, addr=host, registry=registry)
