"""`marketflow worker`: settings -> reference data, rules, sinks -> the Faust worker."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from marketflow.core.refdata import ReferenceData
from marketflow.core.rules import RuleSet, load_rules
from marketflow.gctune import tune_gc
from marketflow.settings import Settings, Topics

if TYPE_CHECKING:
    import faust

log = logging.getLogger("marketflow.worker")


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    app_id: str
    bootstrap: str
    topics: Topics
    ticks_partitions: int
    session_timeout_s: float
    heartbeat_s: float
    web_port: int
    datadir: Path


@dataclass(frozen=True, slots=True)
class MarketInputs:
    """Reference data and rules, loaded once when the worker starts."""

    ref: ReferenceData
    rules: RuleSet
    windows: tuple[str, ...]

    @classmethod
    def load(cls, settings: Settings) -> MarketInputs:
        """Raises ReferenceDataError or RulesError (a configuration error: exit 2)."""
        return cls(ReferenceData.load(settings.universe, settings.indices),
                   load_rules(settings.rules, settings.windows), settings.windows)


def run_worker(settings: Settings, inputs: MarketInputs, bootstrap: str,
               redis_url: str | None, web_port: int, datadir: Path,
               metrics_port: int | None, loglevel: str = "info") -> None:
    from marketflow.stream.app import MarketflowApp
    from marketflow.stream.replay import AlertLedger
    from marketflow.stream.runtime import Runtime
    from marketflow.stream.sinks import Sinks

    windows = inputs.windows
    runtime = Runtime(inputs.ref, inputs.rules, settings.frame_ms, windows,
                      settings.ticks_partitions, settings.idle_ms)
    ledger = AlertLedger(bootstrap, settings.topics.alerts)
    redis_alerts = redis_latest = metrics = None
    if redis_url:
        from marketflow.alerts.redis_sink import connect_sinks

        redis_alerts, redis_latest = connect_sinks(redis_url, settings.redis_prefix)
    if metrics_port is not None:
        from prometheus_client import CollectorRegistry

        from marketflow.observe.metrics import MarketflowMetrics, serve

        registry = CollectorRegistry()
        metrics = MarketflowMetrics(registry)
        serve(metrics_port, registry, settings.metrics_host)
    sinks = Sinks(bootstrap, settings.topics, ledger, redis_alerts, redis_latest, metrics)
    config = WorkerConfig(
        app_id=settings.app_id, bootstrap=bootstrap, topics=settings.topics,
        ticks_partitions=settings.ticks_partitions, session_timeout_s=settings.session_timeout_s,
        heartbeat_s=settings.heartbeat_s, web_port=web_port, datadir=datadir,
    )
    marketflow = MarketflowApp(config, runtime, sinks, ledger, settings.rules, windows)
    app = marketflow.app
    from marketflow.observe.sensor import observe_worker

    observe_worker(app, metrics, settings.market_calendar, settings.metrics_host,
                   settings.health_port, settings.topics, settings.ticks_partitions,
                   lambda: runtime.router.aggregator.pending if runtime.router else (),
                   marketflow.reader)
    worker = faust_worker(app, loglevel)
    from marketflow import native

    log.info("%s", native.describe())
    stale = native.stale()
    if stale:
        log.warning("compiled modules older than their source, running the old code: %s "
                    "(run `make compile`)", ", ".join(stale))
    tune_gc()
    worker.execute_from_commandline()


def faust_worker(app: faust.App, loglevel: str) -> faust.Worker:
    """Faust's worker for `app`, without its terminal spinner.

    At a level of warning or above, Faust's worker sets the root logger to DEBUG and adds a
    handler that turns its spinner for every record: every debug call of every library
    (aiokafka logs each request and response) then made a record, through the scrubbing
    record factory (`cli_support.protect_output`, which formats each one), to be dropped
    by the handlers: about 7% of a worker's busy time on a single-tick backlog (py-spy;
    docs/design.md, "Fifth round"). Without the spinner the root logger keeps the level
    asked for."""
    import faust

    worker = faust.Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    worker.spinner = None
    return worker


def register(app: typer.Typer) -> None:
    @app.command()
    def worker(
        web_port: int = typer.Option(6066, help="Faust's web port (bound on 127.0.0.1)."),
        datadir: Path = typer.Option(Path(".marketflow/worker"), help="Faust data dir."),
        metrics_port: int | None = typer.Option(
            None, help="Serve /metrics here (default: MARKETFLOW_METRICS_PORT; 0 = off)."),
        loglevel: str = typer.Option("info", help="debug, info, warning, error."),
    ) -> None:
        """Run the Faust worker: md.ticks and md.southbound in; snapshots, alerts out."""
        from marketflow.cli_support import (
            configure_logging,
            connect,
            exit_on_error,
            load_settings,
        )

        settings = load_settings()
        with exit_on_error(settings):
            # fail fast, before touching the broker: reference data and rules must load
            inputs = MarketInputs.load(settings)
        prepared = connect(settings, topics=True, check_redis=True)
        bootstrap, redis_url = prepared.bootstrap, prepared.redis_url
        port = settings.metrics_port if metrics_port is None else metrics_port
        configure_logging(loglevel)
        with exit_on_error(settings):
            run_worker(settings, inputs, bootstrap, redis_url, web_port, datadir,
                       port or None, loglevel)
