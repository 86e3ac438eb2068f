"""`marketflow produce ticks|southbound FILE`."""

from __future__ import annotations

from pathlib import Path

import typer

produce_app = typer.Typer(help="Validate records from a file and publish them to Kafka.",
                          no_args_is_help=True)


def run_publish(kind: str, path: Path, speed: float, batch: int, quiet: bool) -> None:
    from pydantic import ValidationError
    from rich.console import Console

    from marketflow.infra.embedded import StackError, check_reachable, resolve_endpoints
    from marketflow.infra.topics import TopicMismatch, ensure_topics
    from marketflow.ingest.files import read_records
    from marketflow.ingest.publisher import BrokerUnavailable, Publisher
    from marketflow.settings import Settings

    console = Console(stderr=True)
    if not path.is_file():
        console.print(f"error: file not found: {path}")
        raise typer.Exit(2)
    try:
        settings = Settings()
        endpoints = resolve_endpoints(settings)
        check_reachable(endpoints.bootstrap)
        ensure_topics(endpoints.bootstrap, settings)
        publisher = Publisher(endpoints.bootstrap, settings.topics, batch=batch, speed=speed)
    except ValidationError as error:
        console.print(f"error: invalid settings:\n{error}")
        raise typer.Exit(2) from None
    except (StackError, BrokerUnavailable, TopicMismatch) as error:
        console.print(f"error: {error}")
        raise typer.Exit(1) from None
    except Exception as error:  # kafka-python raises its own errors for an absent broker
        console.print(f"error: cannot reach the Kafka broker: {error}")
        raise typer.Exit(1) from None
    try:
        summary = _with_progress(publisher, kind, path, console, quiet or not console.is_terminal,
                                 read_records)
    except BrokerUnavailable as error:
        console.print(f"error: {error}")
        raise typer.Exit(1) from None
    finally:
        publisher.close()
    for example in summary.examples:
        console.print(f"[yellow]rejected[/] {example}")
    rejected = sum(summary.rejected.values())
    reasons = ", ".join(f"{r}={n}" for r, n in sorted(summary.rejected.items())) or "none"
    console.print(
        f"sent {summary.sent:,} {kind} in {summary.messages:,} message(s); rejected "
        f"{rejected:,} ({reasons}) -> {publisher.topics.deadletter}; "
        f"{summary.elapsed:.1f}s, {summary.rate:,.0f}/s")


def _with_progress(publisher, kind, path, console, quiet, read_records):  # type: ignore[no-untyped-def]
    if quiet:
        return publisher.publish_lines(kind, read_records(path), str(path))
    from rich.progress import Progress, ProgressColumn, SpinnerColumn, TextColumn, TimeElapsedColumn
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task):  # type: ignore[no-untyped-def]
            return Text(f"{task.speed or 0:,.0f} records/s")

    columns = (SpinnerColumn(), TextColumn("{task.description}"),
               TextColumn("{task.completed:,} records"), RateColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(f"publishing {path.name}", total=None)
        return publisher.publish_lines(kind, read_records(path), str(path),
                                       lambda n: progress.advance(task, n))


@produce_app.command("ticks")
def produce_ticks(
    path: Path = typer.Argument(..., help="JSON lines or CSV of Ticks (gzip ok)."),
    speed: float = typer.Option(0.0, help="Replay X times faster than real time; 0 = flat out."),
    batch: int = typer.Option(1, min=1, help="Ticks per Kafka message (JSON array per "
                                             "partition); 1 = one keyed tick per message."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Publish ticks to md.ticks keyed by symbol; bad lines go to the dead-letter topic."""
    run_publish("ticks", path, speed, batch, quiet)


@produce_app.command("southbound")
def produce_southbound(
    path: Path = typer.Argument(..., help="JSON lines or CSV of SouthboundUpdates."),
    speed: float = typer.Option(0.0, help="Replay X times faster than real time; 0 = flat out."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Publish southbound updates to md.southbound keyed by channel."""
    run_publish("southbound", path, speed, 1, quiet)


def register(app: typer.Typer) -> None:
    app.add_typer(produce_app, name="produce")
