"""`marketflow stack up|down|status` and `marketflow topics`."""

from __future__ import annotations

import typer

from marketflow.settings import Settings

stack_app = typer.Typer(help="The embedded broker (tansu) and redis-server for local work.",
                        no_args_is_help=True)


def _settings() -> Settings:
    from pydantic import ValidationError

    try:
        return Settings()
    except ValidationError as error:
        typer.echo(f"error: invalid settings:\n{error}", err=True)
        raise typer.Exit(2) from None


@stack_app.command("up")
def stack_up() -> None:
    """Start tansu and redis-server on free loopback ports (detached) and create the topics."""
    from marketflow.infra.embedded import EmbeddedStack, StackError, read_stack
    from marketflow.infra.topics import ensure_topics

    settings = _settings()
    info = read_stack(settings.state_dir)
    if info is not None and info.alive():
        typer.echo(f"already running: kafka {info.bootstrap}  redis {info.redis_url}")
        return
    try:
        stack = EmbeddedStack.start(settings.state_dir, owned=False)
        ensure_topics(stack.bootstrap, settings)
    except StackError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"kafka {stack.bootstrap}  redis {stack.redis_url}  "
               f"(logs in {settings.state_dir / 'stack'})")


@stack_app.command("down")
def stack_down() -> None:
    """Stop the embedded stack recorded in the state dir."""
    from marketflow.infra.embedded import stop_recorded

    if stop_recorded(_settings().state_dir):
        typer.echo("stopped")
    else:
        typer.echo("no embedded stack recorded")


@stack_app.command("status")
def stack_status() -> None:
    """Addresses and pids of the embedded stack; exit 1 if it is not running."""
    from marketflow.infra.embedded import read_stack

    info = read_stack(_settings().state_dir)
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
        from marketflow.infra.embedded import StackError, resolve_endpoints
        from marketflow.infra.topics import TopicMismatch, ensure_topics, list_topics

        settings = _settings()
        try:
            bootstrap = resolve_endpoints(settings).bootstrap
            if create:
                for name, outcome in ensure_topics(bootstrap, settings).items():
                    typer.echo(f"{outcome:8} {name}")
            for name, partitions in sorted(list_topics(bootstrap).items()):
                typer.echo(f"{partitions:4}  {name}")
        except (StackError, TopicMismatch) as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(1) from None
