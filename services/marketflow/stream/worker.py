"""`marketflow worker`: settings -> reference data, rules, sinks -> the Faust worker."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import typer

from marketflow.settings import Settings, Topics

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


def run_worker(settings: Settings, bootstrap: str, redis_url: str | None, web_port: int,
               datadir: Path, metrics_port: int | None, loglevel: str = "info") -> None:
    import faust

    from marketflow.core.refdata import ReferenceData
    from marketflow.core.rules import load_rules
    from marketflow.stream.app import build_app
    from marketflow.stream.replay import AlertLedger
    from marketflow.stream.runtime import Runtime
    from marketflow.stream.sinks import Sinks

    windows = settings.windows
    ref = ReferenceData.load(settings.universe, settings.indices)
    rules = load_rules(settings.rules, windows)
    runtime = Runtime(ref, rules, settings.frame_ms, windows, settings.ticks_partitions,
                      settings.idle_ms)
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
        serve(metrics_port, registry)
    sinks = Sinks(bootstrap, settings.topics, ledger, redis_alerts, redis_latest, metrics)
    config = WorkerConfig(
        app_id=settings.app_id, bootstrap=bootstrap, topics=settings.topics,
        ticks_partitions=settings.ticks_partitions, session_timeout_s=settings.session_timeout_s,
        heartbeat_s=settings.heartbeat_s, web_port=web_port, datadir=datadir,
    )
    app = build_app(config, runtime, sinks, ledger, settings.rules, windows)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()


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
        from pydantic import ValidationError

        from marketflow.core.refdata import ReferenceData, ReferenceDataError
        from marketflow.core.rules import RulesError, load_rules

        try:
            settings = Settings()
            # fail fast, before touching the broker: reference data and rules must load
            ReferenceData.load(settings.universe, settings.indices)
            load_rules(settings.rules, settings.windows)
        except ValidationError as error:
            typer.echo(f"error: invalid settings:\n{error}", err=True)
            raise typer.Exit(2) from None
        except (ReferenceDataError, RulesError) as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(2) from None
        from marketflow.infra.embedded import StackError, check_reachable, resolve_endpoints
        from marketflow.infra.topics import TopicMismatch, ensure_topics

        try:
            endpoints = resolve_endpoints(settings)
            check_reachable(endpoints.bootstrap)
            ensure_topics(endpoints.bootstrap, settings)
        except (StackError, TopicMismatch) as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(1) from None
        bootstrap, redis_url = endpoints.bootstrap, endpoints.redis_url
        port = settings.metrics_port if metrics_port is None else metrics_port
        logging.basicConfig(level=loglevel.upper(), stream=sys.stderr,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        try:
            run_worker(settings, bootstrap, redis_url, web_port, datadir, port or None,
                       loglevel)
        except (ReferenceDataError, RulesError) as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(2) from None
