"""`marketflow stack up|down|status` and `marketflow topics`."""

from __future__ import annotations

import typer

from marketflow.cli_support import connect, exit_on_error, load_settings, prepare

stack_app = typer.Typer(help="The embedded broker (tansu) and redis-server for local work.",
                        no_args_is_help=True)


@stack_app.command("up")
def stack_up() -> None:
    """Start tansu and redis-server on free loopback ports (detached) and create the topics."""
    from marketflow.infra.embedded import EmbeddedStack, Endpoints, read_stack

    settings = load_settings()
    info = read_stack(settings.state_dir)
    if info is not None and info.alive():
        typer.echo(f"already running: kafka {info.bootstrap}  redis {info.redis_url}")
        return
    with exit_on_error(settings):
        stack = EmbeddedStack.start(settings.state_dir, owned=False)
    connect(settings, endpoints=Endpoints(stack.bootstrap, stack.redis_url, True))
    typer.echo(f"kafka {stack.bootstrap}  redis {stack.redis_url}  "
               f"(logs in {settings.state_dir / 'stack'})")


@stack_app.command("down")
def stack_down() -> None:
    """Stop the embedded stack recorded in the state dir."""
    from marketflow.infra.embedded import stop_recorded

    if stop_recorded(load_settings().state_dir):
        typer.echo("stopped")
    else:
        typer.echo("no embedded stack recorded")


@stack_app.command("status")
def stack_status() -> None:
    """Addresses and pids of the embedded stack; exit 1 if it is not running."""
    from marketflow.infra.embedded import read_stack

    info = read_stack(load_settings().state_dir)
    if info is None or not info.alive():
        typer.echo("not running")
        raise typer.Exit(1)
    typer.echo(f"kafka  {info.bootstrap}  (pid {info.tansu_pid})\n"
               f"redis  {info.redis_url}  (pid {info.redis_pid})")


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
