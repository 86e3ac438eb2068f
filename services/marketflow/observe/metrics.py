"""Every Prometheus metric (docs/contracts.md#metrics), defined once against an injected registry.

Ratios, not percents (`gain_pct` 2.78 -> 0.0278); latencies and ages in seconds. The
stream adapter hands over the same snapshot and alert records it writes elsewhere; the
operational gauges (session phase, consumer lag, frames waiting, readiness) are set by
`marketflow.observe.sensor`, which observes the Faust app from outside. `NotifyMetrics`
are the Slack notifier's (its own process and registry).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from marketflow.core.records import REASONS
from marketflow.core.session import DayKind, Phase

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
        self.stock_change = Gauge("marketflow_stock_change_ratio",
                                  "Stock change vs previous close (ratio)", ["symbol", "name"],
                                  registry=registry)
        self.stock_turnover = Gauge("marketflow_stock_turnover_hkd",
                                    "Stock turnover of the day (HK$)", ["symbol", "name"],
                                    registry=registry)
        self.ticks = Counter("marketflow_ticks", "Ticks applied, by md.ticks partition",
                             ["partition"], registry=registry)
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
        self.rebuild_records = Counter(
            "marketflow_rebuild_records",
            "Records replayed to rebuild state after taking a partition over (from the first "
            "offset of the current trading day)", ["topic"], registry=registry)
        self.batch_seconds = Histogram(
            "marketflow_batch_process_seconds", "Time to process one md.ticks record",
            buckets=LATENCY_BUCKETS, registry=registry)
        # operations (set by marketflow.observe.sensor)
        self.session_phase = Gauge(
            "marketflow_market_session_phase",
            "1 for the Hong Kong market's current session phase (XHKG calendar), else 0",
            ["phase"], registry=registry)
        self.day_kind = Gauge(
            "marketflow_market_day_kind",
            "1 for the kind of the current Hong Kong date (full_day, half_day, holiday, weekend)",
            ["kind"], registry=registry)
        self.consumer_lag = Gauge(
            "marketflow_consumer_lag_records",
            "Records between this worker's committed offset and the partition's end "
            "(high watermark of its fetches)", ["topic", "partition"], registry=registry)
        self.partitions_assigned = Gauge(
            "marketflow_partitions_assigned", "Partitions assigned to this worker",
            ["topic"], registry=registry)
        self.frames_waiting = Gauge(
            "marketflow_frames_waiting",
            "Event-time frames received by the aggregator and not yet closed",
            registry=registry)
        self.ready = Gauge(
            "marketflow_worker_ready",
            "1 when the worker has its partitions and has rebuilt their state",
            registry=registry)
        # known label values exported at 0 from the start: Prometheus sees the first
        # increase of a counter only if it saw the series before it
        for reason in (*REASONS, "invalid_partial"):
            self.records_rejected.labels(reason=reason)
        for phase in Phase:  # every phase exported, 0 until the first sample
            self.session_phase.labels(phase=phase.value)
        for kind in DayKind:
            self.day_kind.labels(kind=kind.value)

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
            elif kind == "stock":
                name = str(snapshot.get("name", ""))
                self.stock_change.labels(symbol=subject, name=name).set(
                    snapshot["change_pct"] / 100)
                self.stock_turnover.labels(symbol=subject, name=name).set(
                    snapshot["turnover_hkd"])
            elif kind == "market":
                self.market_turnover.set(snapshot["turnover_hkd"])
            elif kind == "southbound":
                self.southbound_net.labels(channel=subject).set(snapshot["net_hkd"])

    def observe_alert(self, alert: dict[str, Any]) -> None:
        self.alerts.labels(rule=alert["rule_id"], severity=alert["severity"]).inc()

    def observe_ticks(self, count: int, partition: int | None = None) -> None:
        self.ticks.labels(partition="" if partition is None else str(partition)).inc(count)

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

    def declare_partition(self, partition: int) -> None:
        """A newly assigned md.ticks partition's counter, at 0 until its first tick."""
        self.ticks.labels(partition=str(partition))

    def forget_revoked(self, ticks: set[int] | None, partitions: int, aggregates: bool,
                       southbound: bool) -> None:
        """Drop the market gauges of what this worker no longer holds, so that the worker
        that took it over is the only one exporting it (dashboards take the max over
        workers): stocks and indices of `ticks` partitions lost (a symbol's partition is
        Kafka's default partitioner's), sectors and market with the aggregator, southbound
        with its partition."""
        if ticks:
            from marketflow.ingest.partitioner import partition_for

            for gauge in (self.stock_change, self.stock_turnover):
                for symbol, name in _label_sets(gauge):
                    if partition_for(symbol, partitions) in ticks:
                        gauge.remove(symbol, name)
            for gauge in (self.index_level, self.index_change):
                for (index,) in _label_sets(gauge):
                    if partition_for(index, partitions) in ticks:
                        gauge.remove(index)
        if aggregates:
            self.sector_gain.clear()
            self.sector_turnover.clear()
            self.market_turnover.set(0)
        if southbound:
            self.southbound_net.clear()

    def set_phase(self, phase: Phase | None, kind: DayKind | None) -> None:
        """The current phase and kind of day (None: unknown, every label 0)."""
        for each in Phase:
            self.session_phase.labels(phase=each.value).set(1 if each is phase else 0)
        for each_kind in DayKind:
            self.day_kind.labels(kind=each_kind.value).set(1 if each_kind is kind else 0)

    def set_lag(self, lags: dict[tuple[str, int], int]) -> None:
        """Lag per (topic, partition) assigned now; partitions no longer assigned go."""
        assigned: dict[str, int] = {}
        for (topic, partition), lag in lags.items():
            self.consumer_lag.labels(topic=topic, partition=str(partition)).set(lag)
            assigned[topic] = assigned.get(topic, 0) + 1
        current = {(topic, str(partition)) for topic, partition in lags}
        for labels in _label_sets(self.consumer_lag):
            if labels not in current:
                self.consumer_lag.remove(*labels)
        known = {labels[0] for labels in _label_sets(self.partitions_assigned)}
        for topic in known | set(assigned):
            self.partitions_assigned.labels(topic=topic).set(assigned.get(topic, 0))

    def set_frames_waiting(self, waiting: int) -> None:
        self.frames_waiting.set(waiting)


def _label_sets(gauge: Gauge) -> list[tuple[str, ...]]:
    return [tuple(sample.labels.values()) for metric in gauge.collect()
            for sample in metric.samples]


SLACK_OUTCOMES = ("ok", "rate_limited", "server_error", "rejected", "timeout")


class NotifyMetrics:
    """The Slack notifier's metrics: every webhook post by route and outcome, its time."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.posts = Counter(
            "marketflow_slack_posts",
            "Slack webhook posts by route and outcome (ok, rate_limited, server_error, "
            "rejected, timeout)", ["route", "outcome"], registry=registry)
        self.post_seconds = Histogram(
            "marketflow_slack_post_seconds", "Time of one Slack webhook post",
            buckets=LATENCY_BUCKETS, registry=registry)

    def observe_post(self, route: str, status: int | None, seconds: float) -> None:
        self.posts.labels(route=route, outcome=slack_outcome(status)).inc()
        self.post_seconds.observe(seconds)

    def declare(self, route: str) -> None:
        """Export every outcome of a route at 0 (rates need a first sample)."""
        for outcome in SLACK_OUTCOMES:
            self.posts.labels(route=route, outcome=outcome)


def slack_outcome(status: int | None) -> str:
    if status is None:
        return "timeout"
    if 200 <= status < 300:
        return "ok"
    if status == 429:
        return "rate_limited"
    return "server_error" if status >= 500 else "rejected"


def serve(port: int, registry: CollectorRegistry, host: str = "127.0.0.1") -> None:
    """Serve /metrics on host:port in a background thread."""
    start_http_server(port, addr=host, registry=registry)
