"""`marketflow backtest`: the core over files, no Kafka and no Redis."""

from __future__ import annotations

import heapq
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import typer

from marketflow.core.pipeline import Pipeline
from marketflow.core.records import (
    RecordError,
    SouthboundUpdate,
    Tick,
    parse_southbound,
)
from marketflow.core.refdata import ReferenceData, ReferenceDataError
from marketflow.core.rules import RulesError, load_rules
from marketflow.core.windows import DEFAULT_WINDOWS, parse_windows
from marketflow.gctune import tune_gc

_TICK, _SOUTHBOUND = 0, 1


def _events(pipeline: Pipeline, ticks: Path,
            southbound: Path) -> Iterator[tuple[int, int, Tick | SouthboundUpdate]]:
    """Both inputs merged by event time (stable: file order within each, ticks first on ties)."""
    from marketflow.ingest.files import read_records, read_ticks

    def tick_events() -> Iterator[tuple[int, int, Tick | SouthboundUpdate]]:
        for tick in read_ticks(ticks, pipeline.reject):
            yield tick.ts, _TICK, tick

    def southbound_events() -> Iterator[tuple[int, int, Tick | SouthboundUpdate]]:
        for _, _, obj in read_records(southbound):
            if isinstance(obj, RecordError):
                pipeline.reject(obj.reason)
                continue
            try:
                update = parse_southbound(obj)
            except RecordError as error:
                pipeline.reject(error.reason)
                continue
            yield update.ts, _SOUTHBOUND, update

    return heapq.merge(tick_events(), southbound_events(), key=lambda e: (e[0], e[1]))


def run_backtest(universe: Path, indices: Path, rules_path: Path, ticks: Path,
                 southbound: Path | None = None, frame_ms: int = 1000,
                 windows: tuple[str, ...] = DEFAULT_WINDOWS) -> dict[str, Any]:
    ref = ReferenceData.load(universe, indices)
    rules = load_rules(rules_path, windows)
    pipeline = Pipeline(ref, rules, frame_ms, windows)
    if southbound is None:
        from marketflow.ingest.files import read_ticks

        pipeline.run(read_ticks(ticks, pipeline.reject))
    else:
        on_tick, on_southbound = pipeline.on_tick, pipeline.on_southbound
        for _, kind, record in _events(pipeline, ticks, southbound):
            if kind == _TICK:
                on_tick(record)  # type: ignore[arg-type]
            else:
                on_southbound(record)  # type: ignore[arg-type]
    pipeline.finish()
    return pipeline.result()


def rule_report(result: dict[str, Any], rules_path: Path,
                windows: tuple[str, ...]) -> dict[str, Any]:
    """Per rule: how many times it fired on the input, and when (for tuning thresholds)."""
    rules = load_rules(rules_path, windows)
    report: dict[str, Any] = {
        rule.id: {"metric": rule.metric, "window": rule.window, "op": rule.op,
                  "threshold": rule.threshold, "fired": 0, "firings": []}
        for rule in rules.rules
    }
    for alert in result["alerts"]:
        entry = report[alert["rule_id"]]
        entry["fired"] += 1
        entry["firings"].append(
            {"subject": alert["subject"], "ts": alert["ts"], "value": alert["value"]}
        )
    return report


def _print_human(result: dict[str, Any], report: dict[str, Any] | None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    final = result["final"]
    table = Table(title="Indices")
    for column in ("index", "level", "change %"):
        table.add_column(column, justify="right")
    for symbol, figures in final["indices"].items():
        table.add_row(symbol, f"{figures['level']:,.2f}", f"{figures['change_pct']:+.2f}")
    console.print(table)
    table = Table(title="Sectors (free-float cap weighted)")
    for column in ("sector", "gain %", "eq gain %", "turnover HK$", "adv/dec/unch"):
        table.add_column(column, justify="right")
    ranked = sorted(final["sectors"].items(), key=lambda item: -item[1]["gain_pct"])
    for name, figures in ranked:
        table.add_row(name, f"{figures['gain_pct']:+.2f}", f"{figures['eq_gain_pct']:+.2f}",
                      f"{figures['turnover_hkd']:,.0f}",
                      f"{figures['advancers']}/{figures['decliners']}/{figures['unchanged']}")
    console.print(table)
    market = final["market"]
    console.print(f"Market turnover HK${market['turnover_hkd']:,.2f}; "
                  f"southbound net HK${final['southbound']['total']['net_hkd']:,.2f}")
    console.print(f"{len(result['alerts'])} alert(s); rejected {result['rejected']}; "
                  f"duplicates {result['duplicates']}")
    for alert in result["alerts"]:
        console.print(f"  {alert['ts']}  [{alert['severity']}] {alert['message']}")
    if report is not None:
        table = Table(title="Rules")
        for column in ("rule", "fired", "first", "last"):
            table.add_column(column)
        for rule_id, entry in report.items():
            firings = entry["firings"]
            table.add_row(rule_id, str(entry["fired"]),
                          firings[0]["ts"] if firings else "-",
                          firings[-1]["ts"] if firings else "-")
        console.print(table)


def register(app: typer.Typer) -> None:
    @app.command()
    def backtest(
        ticks: Path = typer.Option(..., "--ticks", help="Ticks: JSON lines or CSV (gzip ok)."),
        universe: Path = typer.Option(..., "--universe", help="universe.csv"),
        indices: Path = typer.Option(..., "--indices", help="indices.csv"),
        rules: Path = typer.Option(..., "--rules", help="Alert rules YAML."),
        southbound: Path | None = typer.Option(None, "--southbound",
                                               help="Southbound updates file."),
        as_json: bool = typer.Option(
            False, "--json", help="Print one JSON object (docs/contracts.md#backtest-json)."),
        report: bool = typer.Option(False, "--report",
                                    help="Add per-rule firing counts and times."),
        frame_ms: int = typer.Option(1000, "--frame-ms", min=1,
                                     help="Event-time frame for sectors and market."),
        windows: str = typer.Option(",".join(DEFAULT_WINDOWS), "--windows",
                                    help="Rolling windows, comma-separated."),
    ) -> None:
        """Replay files through the core (no Kafka, no Redis) and print the day's figures."""
        try:
            window_names = parse_windows(windows, frame_ms)
        except ValueError as error:
            typer.echo(f"error: --windows: {error}", err=True)
            raise typer.Exit(2) from None
        for path in (ticks, universe, indices, rules, southbound):
            if path is not None and not path.is_file():
                typer.echo(f"error: file not found: {path}", err=True)
                raise typer.Exit(2)
            try:
                if path is not None:
                    path.open("rb").close()
            except OSError as error:
                typer.echo(f"error: cannot read {path}: {error.strerror or error}", err=True)
                raise typer.Exit(2) from None
        tune_gc()  # (the process ends with the command)
        try:
            result = run_backtest(universe, indices, rules, ticks, southbound, frame_ms,
                                  window_names)
            rule_stats = rule_report(result, rules, window_names) if report else None
        except (ReferenceDataError, RulesError, ValueError) as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(2) from None
        if as_json:
            if rule_stats is not None:
                result["report"] = rule_stats
            sys.stdout.buffer.write(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
        else:
            _print_human(result, rule_stats)
