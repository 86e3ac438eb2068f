"""The `marketflow` command: help everywhere, and configuration errors exit 2 with a message
that names what is wrong (no broker needed: checked before connecting)."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from marketflow.cli import COMMAND_MODULES, COMMANDS, app, new_app

runner = CliRunner()


def registered(app: typer.Typer) -> set[str]:
    return ({c.name or c.callback.__name__ for c in app.registered_commands if c.callback}
            | {g.name for g in app.registered_groups if g.name})


@pytest.mark.parametrize("module", COMMAND_MODULES)
def test_each_command_is_found_where_it_is_registered(module: str) -> None:
    """`marketflow NAME` imports only COMMANDS[NAME]: that module must register NAME."""
    assert registered(new_app((module,))) == {n for n, m in COMMANDS.items() if m == module}


@pytest.mark.parametrize("command", ["backtest", "stack", "topics"])
def test_one_command_alone_still_takes_its_name(command: str) -> None:
    """(with one command registered, Typer would run it as the whole program)"""
    alone = new_app((COMMANDS[command],))
    result = runner.invoke(alone, [command, "--help"])
    assert result.exit_code == 0 and f"marketflow {command}" in result.output
    assert runner.invoke(alone, ["--help"]).output.count(command) >= 1


@pytest.mark.parametrize("command", [
    [], ["worker"], ["backtest"], ["produce", "ticks"], ["produce", "southbound"],
    ["simulate"], ["notify"], ["demo"], ["stack", "up"], ["stack", "down"], ["stack", "status"],
    ["topics"], ["web"], ["tail"],
])
def test_help(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0 and "Usage" in result.output


def test_bad_rules_file_stops_the_worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - id: hstech-up\n    metric: index.change_pct\n    op: '>'\n"
                     "    threshold: 2\n")
    monkeypatch.setenv("MARKETFLOW_RULES", str(rules))
    result = runner.invoke(app, ["worker"])
    assert result.exit_code == 2
    assert "hstech-up" in result.output and "op" in result.output


def test_missing_universe_stops_the_worker(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MARKETFLOW_UNIVERSE", str(tmp_path / "missing.csv"))
    result = runner.invoke(app, ["worker"])
    assert result.exit_code == 2 and "missing.csv" in result.output


def test_backtest_json(tmp_path: Path) -> None:
    import json

    small = Path(__file__).parents[2] / "data" / "small"
    result = runner.invoke(app, ["backtest", "--universe", str(small / "universe.csv"),
                                 "--indices", str(small / "indices.csv"), "--rules",
                                 str(small / "rules.yaml"), "--ticks", str(small / "ticks.jsonl"),
                                 "--southbound", str(small / "southbound.jsonl"), "--json",
                                 "--report"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert set(document) == {"final", "alerts", "rejected", "duplicates", "report"}
    assert set(document["final"]) == {"indices", "stocks", "sectors", "market", "southbound"}
    fired = sum(entry["fired"] for entry in document["report"].values())
    assert fired == len(document["alerts"]) > 0


def test_bad_windows_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    small = Path(__file__).parents[2] / "data" / "small"
    result = runner.invoke(app, ["backtest", "--universe", str(small / "universe.csv"),
                                 "--indices", str(small / "indices.csv"), "--rules",
                                 str(small / "rules.yaml"), "--ticks", str(small / "ticks.jsonl"),
                                 "--windows", "1m,7s", "--frame-ms", "2000"])
    assert result.exit_code == 2 and "window 7s is not a multiple" in result.output
    monkeypatch.setenv("MARKETFLOW_WINDOWS", "1m,soon")
    result = runner.invoke(app, ["worker"])
    assert result.exit_code == 2 and "invalid settings" in result.output
    assert "'soon'" in result.output


def test_backtest_missing_file_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["backtest", "--universe", "x", "--indices", "y", "--rules",
                                 "z", "--ticks", str(tmp_path / "none.jsonl"), "--json"])
    assert result.exit_code == 2


def test_a_backtest_process_imports_no_pydantic(tmp_path: Path) -> None:
    """`backtest`'s start: rules are checked without pydantic and typer (below 0.29) builds
    no pydantic adapters; importing pydantic was ~0.2 s of every start (docs/design.md,
    "Eighth round"). The process runs the small day and reports what it imported."""
    import json
    import subprocess
    import sys

    small = Path(__file__).parents[2] / "data" / "small"
    probe = ("import sys, runpy\n"
             "sys.argv = ['marketflow'] + sys.argv[1:]\n"
             "try:\n"
             "    runpy.run_module('marketflow.cli', run_name='__main__')\n"
             "except SystemExit as stop:\n"
             "    assert not stop.code, stop.code\n"
             "print(sorted(m for m in sys.modules if m.split('.')[0] == 'pydantic'),"
             " file=sys.stderr)\n")
    done = subprocess.run(
        [sys.executable, "-c", probe, "backtest", "--universe", str(small / "universe.csv"),
         "--indices", str(small / "indices.csv"), "--rules", str(small / "rules.yaml"),
         "--ticks", str(small / "ticks.jsonl"), "--json"],
        capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(done.stdout)["final"]["market"]["turnover_hkd"] > 0
    assert done.stderr.strip().splitlines()[-1] == "[]", done.stderr
