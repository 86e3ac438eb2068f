"""The worker observed from outside: a Faust sensor that feeds `WorkerHealth` and, every
second, samples the operational gauges (session phase, consumer lag, frames waiting).

Nothing in the stream code calls it: Faust calls its hooks (rebalances and each record of
the partials and southbound agents), and its timer reads the rest through what it is
given: `pending_frames` (the frames the aggregator holds) and the `TicksReader` that
reads `md.ticks` in its own consumer group (its partitions, fetch high watermarks and
finished offsets). It also serves the health endpoints on the worker's own event loop.
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


def consumer_lag(app: Any) -> dict[tuple[str, int], int]:
    """Faust's partitions: high watermark (from fetch responses, right on Apache Kafka and
    tansu alike) minus the committed offset; partitions not fetched yet are left out."""
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


def ticks_lag(reader: Any) -> dict[tuple[str, int], int]:
    """`md.ticks` partitions of the TicksReader: high watermark minus the offset the worker
    has finished (its commits follow within a second); partitions with nothing finished
    since their assignment are left out."""
    consumer = reader.consumer
    if consumer is None:
        return {}
    lags: dict[tuple[str, int], int] = {}
    for tp in consumer.assignment():
        end = consumer.highwater(tp)
        done = reader.done.get(tp.partition, reader.committed.get(tp.partition))
        if end is not None and done is not None:
            lags[(tp.topic, tp.partition)] = max(0, int(end) - int(done))
    return lags


def ticks_rebuilding(reader: Any) -> set[int]:
    """`md.ticks` partitions whose first batch since their assignment is with the agent and
    not finished: the worker rebuilds a partition's state while handling that batch."""
    return {p for p in reader.owned
            if reader.outstanding.get(p, 0) > 0 and p not in reader.done}


class WorkerSensor(faust.Sensor):
    def __init__(self, metrics: MarketflowMetrics, health: WorkerHealth,
                 calendar: TradingCalendar | None,
                 pending_frames: Callable[[], Iterable[int]],
                 health_address: tuple[str, int] | None = None, topics: Any = None,
                 ticks_partitions: int = 1, ticks_reader: Any = None,
                 wall: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
                 clock: Callable[[], float] = time.monotonic, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.metrics = metrics
        self.health = health
        self.calendar = calendar
        self.pending_frames = pending_frames
        self.health_address = health_address
        self.topics = topics  # Settings.topics: which partitions hold which figures
        self.ticks_partitions = ticks_partitions
        self.ticks_reader = ticks_reader
        self.wall = wall
        self.clock = clock
        self.held: frozenset[Any] = frozenset()  # Faust's partitions (partials, southbound)
        self.ticks_held: set[int] = set()
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
        revoked = {tp.topic for tp in self.held - assigned}
        self.held = assigned
        if revoked and self.topics is not None:
            self.metrics.forget_revoked(None, self.ticks_partitions,
                                        self.topics.partials in revoked,
                                        self.topics.southbound in revoked)

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
            self.metrics.set_frames_waiting(len(list(self.pending_frames())))
        except Exception as error:
            log.warning("frames waiting not sampled: %s", error)
        lags: dict[tuple[str, int], int] = {}
        try:
            if self.app_ref is not None:
                lags |= consumer_lag(self.app_ref)
            if self.ticks_reader is not None:
                lags |= ticks_lag(self.ticks_reader)
                self.sample_ticks_partitions()
            self.metrics.set_lag(lags)
        except Exception as error:
            log.debug("consumer lag not sampled: %s", error)
        self.metrics.ready.set(1 if self.ready() else 0)

    def sample_ticks_partitions(self) -> None:
        reader = self.ticks_reader
        owned = set(reader.owned)
        for partition in owned - self.ticks_held:
            self.metrics.declare_partition(partition)
        lost = self.ticks_held - owned
        if lost:
            self.metrics.forget_revoked(lost, self.ticks_partitions, False, False)
        self.ticks_held = owned
        self.health.set_ticks(owned, ticks_rebuilding(reader))

    def ready(self) -> bool:
        return self.health.ready()

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
                   pending_frames: Callable[[], Iterable[int]],
                   ticks_reader: Any = None) -> WorkerSensor:
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
                          (health_host, health_port) if health_port else None, topics,
                          ticks_partitions, ticks_reader)
    sensor.attach(app)
    return sensor
