"""`marketflow stack up|down|status` and `marketflow topics`."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from marketflow.cli_support import connect, exit_on_error, load_settings, prepare
from marketflow.settings import Settings

stack_app = typer.Typer(help="The embedded broker (tansu) and redis-server for local work.",
                        no_args_is_help=True)


@stack_app.command("up")
def stack_up(
    web: bool = typer.Option(True, "--web/--no-web",
                             help="Also start the market board (`marketflow web`)."),
    web_port: int | None = typer.Option(None, min=1, max=65535,
                                        help="Board port (default MARKETFLOW_WEB_PORT, 8050; "
                                             "a free port if that one is taken)."),
) -> None:
    """Start tansu and redis-server on free loopback ports (detached), create the topics and
    start the market board."""
    from marketflow.infra.embedded import EmbeddedStack, Endpoints, read_stack

    settings = load_settings()
    info = read_stack(settings.state_dir)
    if info is not None and info.alive():
        typer.echo(f"already running: kafka {info.bootstrap}  redis {info.redis_url}")
        _echo_board(settings.state_dir)
        return
    with exit_on_error(settings):
        stack = EmbeddedStack.start(settings.state_dir, owned=False)
    connect(settings, endpoints=Endpoints(stack.bootstrap, stack.redis_url, True))
    typer.echo(f"kafka {stack.bootstrap}  redis {stack.redis_url}  "
               f"(logs in {settings.state_dir / 'stack'})")
    if web:
        _start_board(settings, stack.redis_url, web_port or settings.web_port)


def _start_board(settings: Settings, redis_url: str, port: int) -> None:
    """The board, detached and recorded so that `stack down` stops it; a warning (not an
    error) if it does not come up: the stack itself is fine."""
    from marketflow.infra import procs

    port = procs.pick_port(port, settings.web_host)
    url = procs.board_url(settings.web_host, port)
    log = settings.state_dir / "stack" / "web.log"
    env = dict(os.environ, MARKETFLOW_REDIS_URL=redis_url)
    proc = procs.start_board(env, settings.web_host, port, log)
    if procs.wait_board(proc, url):
        procs.record(settings.state_dir, "web", proc.pid, url=url)
        typer.echo(f"market board {url}  (pid {proc.pid})")
    else:
        typer.echo(f"warning: the market board did not start; see {log}", err=True)


def _echo_board(state_dir: Path) -> None:
    from marketflow.infra import procs

    for entry in procs.recorded(state_dir):
        if entry.get("url"):
            typer.echo(f"{entry['name']:6} {entry['url']}  (pid {entry['pid']})")


@stack_app.command("down")
def stack_down() -> None:
    """Stop the embedded stack recorded in the state dir, and the board, worker and
    notifier recorded with it (`stack up`, `demo --keep-running`)."""
    from marketflow.infra import procs
    from marketflow.infra.embedded import stop_recorded

    state_dir = load_settings().state_dir
    stopped = procs.stop_recorded(state_dir)
    if stopped:
        typer.echo(f"stopped {', '.join(stopped)}")
    if stop_recorded(state_dir):
        typer.echo("stopped")
    elif not stopped:
        typer.echo("no embedded stack recorded")


@stack_app.command("status")
def stack_status() -> None:
    """Addresses and pids of the embedded stack and its board; exit 1 if it is not
    running."""
    from marketflow.infra.embedded import read_stack

    state_dir = load_settings().state_dir
    info = read_stack(state_dir)
    if info is None or not info.alive():
        typer.echo("not running")
        raise typer.Exit(1)
    typer.echo(f"kafka  {info.bootstrap}  (pid {info.tansu_pid})\n"
               f"redis  {info.redis_url}  (pid {info.redis_pid})")
    _echo_board(state_dir)


def register(app: typer.Typer) -> None:
    app.add_typer(stack_app, name="stack")

    @app.command()
    def topics(create: bool = typer.Option(False, "--create",
                                           help="Create missing topics first.")) -> None:
        """List the broker's topics with their partition counts."""
        from marketflow.infra.topics import ensure_topics, list_topics

        prepared = prepare(topics=False)
        with exit_on_error(prepared.settings):
            if create:
                for name, outcome in ensure_topics(prepared.bootstrap,
                                                   prepared.settings).items():
                    typer.echo(f"{outcome:8} {name}")
            listed = list_topics(prepared.bootstrap, prepared.settings)
            for name, partitions in sorted(listed.items()):
                typer.echo(f"{partitions:4}  {name}")
