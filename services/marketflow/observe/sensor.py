"""The worker observed from outside: a Faust sensor that feeds `WorkerHealth` and, every
second, samples the operational gauges (session phase, consumer lag, frames waiting).

Nothing in the stream code calls it: Faust calls its hooks (rebalances, each record in
and out of a stream), and its timer reads what it needs through the callables it is given
(`pending_frames`: the frames the aggregator holds). It also serves the health endpoints
on the worker's own event loop.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import faust

from marketflow.core.session import DayKind, Phase, TradingCalendar, market_phase
from marketflow.observe.health import WorkerHealth, start_health_server
from marketflow.observe.metrics import MarketflowMetrics

log = logging.getLogger("marketflow.sensor")


class FrameWaits:
    """How long frames have waited to close: each frame number is timed from the first
    sample that saw it pending (within one sampling interval of its arrival)."""

    def __init__(self) -> None:
        self.first_seen: dict[int, float] = {}

    def update(self, pending: Iterable[int], now: float) -> tuple[int, float]:
        """(frames waiting, seconds the oldest has waited)."""
        current = set(pending)
        for frame in list(self.first_seen):
            if frame not in current:
                del self.first_seen[frame]
        for frame in current:
            self.first_seen.setdefault(frame, now)
        if not self.first_seen:
            return 0, 0.0
        return len(current), now - min(self.first_seen.values())


def consumer_lag(app: Any) -> dict[tuple[str, int], int]:
    """Per assigned partition: high watermark (from fetch responses, right on Apache Kafka
    and tansu alike) minus the committed offset; partitions not fetched yet are left out."""
    consumer = app.consumer
    committed = getattr(app.monitor, "tp_committed_offsets", None) or {}
    fallback = getattr(consumer, "_committed_offset", {})
    lags: dict[tuple[str, int], int] = {}
    for tp in consumer.assignment():
        try:
            end = consumer.highwater(tp)
        except Exception:  # no fetch for it yet, or the consumer is restarting
            end = None
        done = committed.get(tp, fallback.get(tp))
        if end is None:
            continue
        lags[(tp.topic, tp.partition)] = max(0, int(end) - int(done or 0))
    return lags


class WorkerSensor(faust.Sensor):
    def __init__(self, metrics: MarketflowMetrics, health: WorkerHealth,
                 calendar: TradingCalendar | None,
                 pending_frames: Callable[[], Iterable[int]],
                 health_address: tuple[str, int] | None = None, ticks_topic: str = "",
                 topics: Any = None, ticks_partitions: int = 1,
                 wall: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
                 clock: Callable[[], float] = time.monotonic, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.metrics = metrics
        self.health = health
        self.calendar = calendar
        self.pending_frames = pending_frames
        self.health_address = health_address
        self.ticks_topic = ticks_topic
        self.topics = topics  # Settings.topics: which assignment holds which figures
        self.ticks_partitions = ticks_partitions
        self.held: frozenset[Any] = frozenset()
        self.wall = wall
        self.clock = clock
        self.frames = FrameWaits()
        self.app_ref: Any = None
        self._runner: Any = None
        self._calendar_warned = False

    def attach(self, app: faust.App) -> None:
        """Add this sensor to `app` (it starts and stops with the app's worker)."""
        self.app_ref = app
        app.sensors.add(self)

    # -- Faust hooks ---------------------------------------------------------------------

    def on_rebalance_start(self, app: Any) -> dict[str, Any]:
        self.health.rebalance_started()
        return {}

    def on_rebalance_end(self, app: Any, state: dict[str, Any]) -> None:
        assigned = frozenset(app.consumer.assignment())
        self.health.rebalance_ended(assigned)
        for tp in assigned:
            if tp.topic == self.ticks_topic:
                self.metrics.declare_partition(tp.partition)
        self.forget(self.held - assigned)
        self.held = assigned

    def forget(self, revoked: frozenset[Any]) -> None:
        if not revoked or self.topics is None:
            return
        topics = {tp.topic for tp in revoked}
        self.metrics.forget_revoked(
            {tp.partition for tp in revoked if tp.topic == self.ticks_topic},
            self.ticks_partitions, self.topics.partials in topics,
            self.topics.southbound in topics)

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any,
                           event: Any) -> dict[str, Any] | None:
        self.health.record_in(tp)
        return None

    def on_stream_event_out(self, tp: Any, offset: int, stream: Any, event: Any,
                            state: dict[str, Any] | None = None) -> None:
        self.health.record_out(tp)

    # -- the service -------------------------------------------------------------------

    async def on_start(self) -> None:
        self.sample()
        if self.health_address is not None:
            host, port = self.health_address
            self._runner = await start_health_server(self.health, host, port, self.clock)

    async def on_stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @faust.Service.timer(1.0)
    async def _sampler(self) -> None:
        self.sample()

    def sample(self) -> None:
        """Every gauge that is read rather than counted; never raises (a failed part is
        logged and the rest still sampled)."""
        self.health.beat(self.clock())
        self.metrics.set_phase(*self.phase())
        try:
            waiting, oldest = self.frames.update(self.pending_frames(), self.clock())
            self.metrics.set_frames(waiting, oldest)
        except Exception as error:
            log.warning("frames waiting not sampled: %s", error)
        if self.app_ref is not None:
            try:
                self.metrics.set_lag(consumer_lag(self.app_ref))
            except Exception as error:
                log.debug("consumer lag not sampled: %s", error)
        self.metrics.ready.set(1 if self.health.ready() else 0)

    def phase(self) -> tuple[Phase | None, DayKind | None]:
        if self.calendar is None:
            return None, None
        try:
            return market_phase(self.wall(), self.calendar)
        except LookupError as error:  # past the calendar's range: unknown, said once
            if not self._calendar_warned:
                log.error("market session phase unknown: %s", error)
                self._calendar_warned = True
            return None, None


def observe_worker(app: faust.App, metrics: MarketflowMetrics | None, calendar_code: str,
                   health_host: str, health_port: int, topics: Any, ticks_partitions: int,
                   pending_frames: Callable[[], Iterable[int]]) -> WorkerSensor:
    """Attach the sensor to a worker's app: `calendar_code` "" = no session phase,
    `health_port` 0 = no health endpoints, `metrics` None = gauges kept unexported."""
    if metrics is None:
        from prometheus_client import CollectorRegistry

        metrics = MarketflowMetrics(CollectorRegistry())
    calendar = None
    if calendar_code:
        from marketflow.observe.calendar import ExchangeCalendar

        calendar = ExchangeCalendar(calendar_code)
    sensor = WorkerSensor(metrics, WorkerHealth(), calendar, pending_frames,
                          (health_host, health_port) if health_port else None, topics.ticks,
                          topics, ticks_partitions)
    sensor.attach(app)
    return sensor
