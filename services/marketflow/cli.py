"""The `marketflow` command.

Each area registers its own sub-commands (`register(app)`), importing heavy libraries
(Faust, aiokafka) inside the command functions so that `marketflow --help` stays quick.

Exit codes: 0 success, 1 failure at run time (broker unreachable, ...), 2 usage or
configuration error (bad arguments, bad settings, bad rules file).
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="marketflow",
    help="Streaming market-flow monitor for Hong Kong equities.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Modules that define `register(app: typer.Typer) -> None`; one line each.
COMMAND_MODULES = (
    "marketflow.backtest",
    "marketflow.stream.worker",
    "marketflow.infra.commands",
    "marketflow.ingest.commands",
    "marketflow.sim.commands",
    "marketflow.demo",
    "marketflow.alerts.commands",
    "marketflow.web.commands",
    "marketflow.tail.commands",
)


def _register_all() -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(app)


_register_all()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
