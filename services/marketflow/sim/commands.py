"""`marketflow simulate SCENARIO`: a seeded day, to Kafka or to files."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import orjson
import typer

from marketflow.cli_support import USAGE, connect, exit_on_error, fail, load_settings
from marketflow.kafka_clients import client_kwargs
from marketflow.settings import Settings


def build_generator(scenario_name: str, trades: int | None, seed: int | None,
                    settings: Settings | None = None) -> Any:
    from marketflow.core.refdata import ReferenceData
    from marketflow.sim.generate import Generator
    from marketflow.sim.scenario import load_scenario

    settings = settings if settings is not None else Settings()
    scenario = load_scenario(scenario_name)
    ref = ReferenceData.load(settings.universe, settings.indices)
    return Generator(scenario, ref, trades, seed)


def _open(path: Path) -> IO[bytes]:
    return gzip.open(path, "wb") if path.suffix == ".gz" else path.open("wb")  # type: ignore[return-value]


def write_files(records: Iterator[tuple[str, dict[str, Any]]], ticks: Path,
                southbound: Path) -> tuple[int, int]:
    counts = {"ticks": 0, "southbound": 0}
    with _open(ticks) as tick_out, _open(southbound) as flow_out:
        outs = {"ticks": tick_out, "southbound": flow_out}
        for kind, record in records:
            outs[kind].write(orjson.dumps(record) + b"\n")
            counts[kind] += 1
    return counts["ticks"], counts["southbound"]


def publish(generator: Any, bootstrap: str, topics: Any, speed: float, batch: int,
            progress: Any = None, client_config: dict[str, Any] | None = None) -> Any:
    from marketflow.ingest.publisher import Publisher

    publisher = Publisher(bootstrap, topics, batch=batch, speed=speed,
                          client_config=client_config)
    try:
        items = ((kind, n, "", record)
                 for n, (kind, record) in enumerate(generator.records(), start=1))
        return publisher.publish_mixed(items, f"scenario {generator.scenario.name}", progress)
    finally:
        publisher.close()


def register(app: typer.Typer) -> None:
    @app.command()
    def simulate(
        scenario: str = typer.Argument("2025-11-24",
                                       help="A scenario YAML file, or a bundled name."),
        speed: float = typer.Option(0.0, help="X times real time; 0 = as fast as possible."),
        trades: int | None = typer.Option(None, min=1, help="Trade ticks (default: scenario)."),
        seed: int | None = typer.Option(None, help="Random seed (default: scenario)."),
        batch: int = typer.Option(50, min=1, help="Ticks per Kafka message."),
        out_ticks: Path | None = typer.Option(None, help="Write ticks here (JSON lines, "
                                                         ".gz ok) instead of publishing."),
        out_southbound: Path | None = typer.Option(None, help="Write southbound updates here."),
    ) -> None:
        """Simulate a market day fitted to SCENARIO's targets; publish it or write files."""
        from rich.console import Console

        console = Console(stderr=True)
        settings = load_settings()
        with exit_on_error(settings):
            generator = build_generator(scenario, trades, seed, settings)
        if out_ticks or out_southbound:
            if not (out_ticks and out_southbound):
                fail("give both --out-ticks and --out-southbound", USAGE)
            n_ticks, n_flows = write_files(generator.records(), out_ticks, out_southbound)
            console.print(f"wrote {n_ticks:,} ticks to {out_ticks} and {n_flows:,} southbound "
                          f"updates to {out_southbound}")
            return
        prepared = connect(settings, topics=True)
        with exit_on_error(settings):
            summary = publish(generator, prepared.bootstrap, settings.topics, speed, batch,
                              client_config=client_kwargs(settings, "kafka-python"))
        console.print(f"published {summary.sent:,} records in {summary.messages:,} messages, "
                      f"{summary.elapsed:.1f}s ({summary.rate:,.0f}/s); rejected "
                      f"{sum(summary.rejected.values())}")
