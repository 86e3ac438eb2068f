"""`marketflow produce ticks|southbound FILE`."""

from __future__ import annotations

from pathlib import Path

import typer

from marketflow.cli_support import USAGE, exit_on_error, fail, prepare
from marketflow.ingest.publisher import DEFAULT_BATCH, DEFAULT_LINGER_MS

produce_app = typer.Typer(help="Validate records from a file and publish them to Kafka.",
                          no_args_is_help=True)


def run_publish(kind: str, path: Path, speed: float, batch: int, quiet: bool,
                linger_ms: int = DEFAULT_LINGER_MS) -> None:
    from rich.console import Console

    from marketflow.ingest.files import read_records
    from marketflow.ingest.publisher import Publisher
    from marketflow.kafka_clients import client_kwargs

    console = Console(stderr=True, soft_wrap=True)  # a summary line stays one line in logs
    if not path.is_file():
        fail(f"file not found: {path}", USAGE)
    try:
        path.open("rb").close()
    except OSError as error:
        fail(f"cannot read {path}: {error.strerror or error}", USAGE)
    prepared = prepare(topics=True)
    with exit_on_error(prepared.settings):
        publisher = Publisher(prepared.bootstrap, prepared.settings.topics, batch=batch,
                              speed=speed, linger_ms=linger_ms,
                              client_config=client_kwargs(prepared.settings, "kafka-python"))
    try:
        with exit_on_error(prepared.settings):
            summary = _with_progress(publisher, kind, path, console,
                                     quiet or not console.is_terminal, read_records)
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
    batch: int = typer.Option(
        DEFAULT_BATCH, min=1,
        help="Ticks per Kafka message: a JSON array sent to the ticks' partition (murmur2 on "
             "the symbol), filled up to this count or for --linger-ms; 1 = one tick per "
             "message, keyed by its symbol."),
    linger_ms: int = typer.Option(
        DEFAULT_LINGER_MS, "--linger-ms", min=0,
        help="The longest a tick waits for its message to fill (wall-clock ms)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Publish ticks to md.ticks, batched per partition; bad lines go to the dead-letter topic."""
    run_publish("ticks", path, speed, batch, quiet, linger_ms)


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
