"""The sensor's samples: frames waiting, consumer lag, phase gauges, readiness (a fresh
registry per test; Faust's app replaced by the two attributes the lag reads)."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry

from marketflow.core.session import SessionTimes
from marketflow.core.timeutil import HKT
from marketflow.observe.health import WorkerHealth
from marketflow.observe.metrics import MarketflowMetrics
from marketflow.observe.sensor import WorkerSensor, consumer_lag, ticks_lag, ticks_rebuilding


class Consumer:
    def __init__(self, ends: dict, committed: dict) -> None:
        self.ends = ends
        self._committed_offset = committed

    def assignment(self) -> set:
        return set(self.ends)

    def highwater(self, tp: object) -> int | None:
        return self.ends[tp]



class TP(tuple):
    def __new__(cls, topic: str, partition: int) -> TP:
        return super().__new__(cls, (topic, partition))

    @property
    def topic(self) -> str:
        return self[0]

    @property
    def partition(self) -> int:
        return self[1]


def test_consumer_lag_from_high_watermarks_and_commits() -> None:
    a, b, c = TP("md.ticks", 0), TP("md.ticks", 1), TP("md.southbound", 0)
    app = SimpleNamespace(
        consumer=Consumer({a: 120, b: None, c: 5}, {a: 20, c: None}),
        monitor=SimpleNamespace(tp_committed_offsets={a: 100}))
    assert consumer_lag(app) == {("md.ticks", 0): 20, ("md.southbound", 0): 5}


class Calendar:
    def session(self, date: dt.date) -> SessionTimes | None:
        at = dt.datetime(date.year, date.month, date.day, tzinfo=HKT)
        return SessionTimes(open=at.replace(hour=9, minute=30), close=at.replace(hour=16),
                            break_start=at.replace(hour=12), break_end=at.replace(hour=13))


def reader(ends: dict, owned: set[int], delivered: dict, done: dict) -> SimpleNamespace:
    """The TicksReader attributes the sensor reads (`outstanding`: the partitions with a
    batch delivered and not finished)."""
    outstanding = {p: 1 for p, offset in delivered.items() if done.get(p, -1) < offset}
    return SimpleNamespace(consumer=Consumer(ends, {}), owned=owned, outstanding=outstanding,
                           done=done, committed={})


def test_ticks_lag_and_rebuilding_from_the_reader() -> None:
    a, b = TP("md.ticks", 0), TP("md.ticks", 1)
    ticks = reader({a: 100, b: 7}, {0, 1}, {0: 90, 1: 7}, {0: 80})
    assert ticks_lag(ticks) == {("md.ticks", 0): 20}  # 1: nothing finished yet
    assert ticks_rebuilding(ticks) == {1}  # its first batch is with the agent
    ticks.done[1] = 7
    assert ticks_rebuilding(ticks) == set()
    assert ticks_lag(SimpleNamespace(consumer=None)) == {}


@pytest.mark.parametrize(("at", "phase"), [("12:30", "lunch"), ("10:00", "morning")])
def test_sample_sets_phase_frames_lag_and_ready(at: str, phase: str) -> None:
    metrics = MarketflowMetrics(CollectorRegistry())
    health = WorkerHealth()
    hour, minute = map(int, at.split(":"))
    now = dt.datetime(2025, 11, 24, hour, minute, tzinfo=HKT)
    partials = TP("mf.internal.frame-partials", 0)
    ticks = reader({TP("md.ticks", 3): 50}, {3}, {3: 45}, {3: 40})
    sensor = WorkerSensor(metrics, health, Calendar(), lambda: [5, 6], ticks_reader=ticks,
                          wall=lambda: now)
    sensor.app_ref = SimpleNamespace(consumer=Consumer({partials: 12}, {partials: 10}),
                                     monitor=SimpleNamespace(tp_committed_offsets={}))
    sensor.on_rebalance_end(sensor.app_ref, {})
    sensor.sample()
    get = metrics.registry.get_sample_value
    assert get("marketflow_market_session_phase", {"phase": phase}) == 1
    assert get("marketflow_market_session_phase", {"phase": "closed"}) == 0
    assert get("marketflow_market_day_kind", {"kind": "full_day"}) == 1
    assert get("marketflow_frames_waiting") == 2
    assert get("marketflow_consumer_lag_records", {"topic": "md.ticks", "partition": "3"}) == 10
    assert get("marketflow_consumer_lag_records",
               {"topic": "mf.internal.frame-partials", "partition": "0"}) == 2
    assert get("marketflow_partitions_assigned", {"topic": "md.ticks"}) == 1
    assert get("marketflow_worker_ready") == 1
    assert get("marketflow_ticks_total", {"partition": "3"}) == 0
    sensor.on_stream_event_in(partials, 10, None, None)  # first partials record: rebuilding
    sensor.sample()
    assert get("marketflow_worker_ready") == 0
    sensor.on_stream_event_out(partials, 10, None, None)
    sensor.sample()
    assert get("marketflow_worker_ready") == 1
    del ticks.done[3]  # a new md.ticks partition's first batch in flight
    sensor.sample()
    assert get("marketflow_worker_ready") == 0


def test_lag_of_a_revoked_partition_disappears() -> None:
    metrics = MarketflowMetrics(CollectorRegistry())
    metrics.set_lag({("md.ticks", 0): 5, ("md.ticks", 1): 7})
    metrics.set_lag({("md.ticks", 1): 3})
    get = metrics.registry.get_sample_value
    assert get("marketflow_consumer_lag_records", {"topic": "md.ticks", "partition": "0"}) is None
    assert get("marketflow_consumer_lag_records", {"topic": "md.ticks", "partition": "1"}) == 3
    assert get("marketflow_partitions_assigned", {"topic": "md.ticks"}) == 1
    metrics.set_lag({})
    assert get("marketflow_partitions_assigned", {"topic": "md.ticks"}) == 0


def test_unknown_phase_when_the_calendar_cannot_say() -> None:
    class Broken:
        def session(self, date: dt.date) -> SessionTimes | None:
            raise LookupError("past the calendar")

    metrics = MarketflowMetrics(CollectorRegistry())
    sensor = WorkerSensor(metrics, WorkerHealth(), Broken(), lambda: [])
    sensor.sample()
    samples = [s.value for m in metrics.session_phase.collect() for s in m.samples]
    assert samples and set(samples) == {0.0}


def test_revoked_partitions_stop_exporting_their_figures() -> None:
    """After a rebalance a worker exports only what it still holds, so the max over
    workers on a dashboard is the current holder's figure."""
    from marketflow.ingest.partitioner import partition_for
    from marketflow.settings import Topics

    metrics = MarketflowMetrics(CollectorRegistry())
    topics = Topics()
    ticks = reader({}, set(range(8)), {}, {})
    sensor = WorkerSensor(metrics, WorkerHealth(), None, lambda: [], topics=topics,
                          ticks_partitions=8, ticks_reader=ticks)
    metrics.observe_snapshots([
        {"type": "stock", "subject": "00700", "name": "Tencent", "change_pct": 1.0,
         "turnover_hkd": 5.0},
        {"type": "stock", "subject": "09988", "name": "Alibaba", "change_pct": 2.0,
         "turnover_hkd": 6.0},
        {"type": "sector", "subject": "AI", "gain_pct": 3.0, "turnover_hkd": 1.0,
         "rolling": {}},
        {"type": "southbound", "subject": "total", "net_hkd": 8e9},
    ])
    faust_tps = [TP(topics.partials, 0), TP(topics.southbound, 0)]
    sensor.on_rebalance_end(SimpleNamespace(consumer=Consumer(dict.fromkeys(faust_tps), {})), {})
    sensor.sample()
    lost = partition_for("00700", 8)
    ticks.owned.discard(lost)
    sensor.on_rebalance_end(SimpleNamespace(
        consumer=Consumer(dict.fromkeys(faust_tps[1:]), {})), {})
    sensor.sample()
    get = metrics.registry.get_sample_value
    assert get("marketflow_stock_change_ratio", {"symbol": "00700", "name": "Tencent"}) is None
    if partition_for("09988", 8) != lost:
        assert get("marketflow_stock_change_ratio", {"symbol": "09988", "name": "Alibaba"}) == 0.02
    assert get("marketflow_sector_gain_ratio", {"sector": "AI", "window": "day"}) is None
    assert get("marketflow_southbound_net_inflow_hkd", {"channel": "total"}) == 8e9
