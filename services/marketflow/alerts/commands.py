"""`marketflow notify`: alerts -> Slack (or the console without a webhook)."""

from __future__ import annotations

import asyncio
import logging
import sys

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def notify(
        group: str = typer.Option("marketflow-notify", help="Consumer group id."),
        once: bool = typer.Option(False, "--once", help="Exit when caught up."),
        loglevel: str = typer.Option("info", help="debug, info, warning, error."),
    ) -> None:
        """Deliver mf.alerts to Slack (Block Kit, rate-limited, each alert once)."""
        from pydantic import ValidationError

        from marketflow.alerts.notify import build_routes, run_notify
        from marketflow.core.rules import RulesError, load_rules
        from marketflow.infra.embedded import StackError, check_reachable, resolve_endpoints
        from marketflow.settings import Settings

        logging.basicConfig(level=loglevel.upper(), stream=sys.stderr,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        try:
            settings = Settings()
            routes_config = load_rules(settings.rules).routes
        except (ValidationError, RulesError) as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(2) from None
        try:
            endpoints = resolve_endpoints(settings)
            check_reachable(endpoints.bootstrap)
        except StackError as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(1) from None
        if endpoints.redis_url is None:
            typer.echo("error: notify needs Redis (MARKETFLOW_REDIS_URL) to remember "
                       "delivered alerts", err=True)
            raise typer.Exit(2)
        webhook = settings.slack_webhook_url
        routes, default = build_routes(webhook.get_secret_value() if webhook else None,
                                       routes_config)
        logging.getLogger("marketflow.notify").info(
            "delivering to %s", ", ".join([r.name for r in routes] + [
                "default (Slack)" if default.webhook else "default (console)"]))
        try:
            code = asyncio.run(run_notify(endpoints.bootstrap, endpoints.redis_url, settings,
                                          routes, default, group, once))
        except KeyboardInterrupt:
            code = 0
        except RuntimeError as error:
            typer.echo(f"error: {error}", err=True)
            code = 1
        raise typer.Exit(code)
