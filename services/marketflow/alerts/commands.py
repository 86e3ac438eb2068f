"""`marketflow notify`: alerts -> Slack (or the console without a webhook)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import typer

from marketflow.cli_support import (
    FAILURE,
    add_secrets,
    configure_logging,
    connect,
    exit_on_error,
    fail,
    load_settings,
    say,
)


def register(app: typer.Typer) -> None:
    @app.command()
    def notify(
        group: str = typer.Option("marketflow-notify", help="Consumer group id."),
        once: bool = typer.Option(False, "--once", help="Exit when caught up."),
        loglevel: str = typer.Option("info", help="debug, info, warning, error."),
    ) -> None:
        """Deliver mf.alerts to Slack (Block Kit, rate-limited, each alert once)."""
        from marketflow.alerts.notify import build_routes, run_notify, slack_post
        from marketflow.core.rules import load_rules
        from marketflow.infra.topics import wait_for_topic

        configure_logging(loglevel)
        settings = load_settings()
        with exit_on_error(settings):
            routes_config = load_rules(settings.rules).routes
        # Redis remembers which alerts were delivered
        prepared = connect(settings, need_redis=True, topics=False)
        assert prepared.redis_url is not None  # need_redis
        with exit_on_error(settings):  # subscribing to a missing topic would create it
            wait_for_topic(prepared.bootstrap, settings, settings.topics.alerts,
                           on_wait=lambda message: say(message, settings))
        webhook = settings.slack_webhook_url
        routes, default = build_routes(webhook.get_secret_value() if webhook else None,
                                       routes_config)
        add_secrets(route.webhook for route in routes)  # masked in every log line
        logging.getLogger("marketflow.notify").info(
            "delivering to %s", ", ".join([r.name for r in routes] + [
                "default (Slack)" if default.webhook else "default (console)"]))
        post = slack_post
        if settings.notify_metrics_port:
            post = _observed(post, settings, routes, default)
        try:
            code = asyncio.run(run_notify(prepared.bootstrap, prepared.redis_url, settings,
                                          routes, default, group, once, post))
        except KeyboardInterrupt:
            code = 0
        except RuntimeError as error:
            fail(str(error), FAILURE, settings)
        raise typer.Exit(code)


def _observed(post: Any, settings: Any, routes: list[Any], default: Any) -> Any:
    """Serve the notifier's /metrics and count every webhook post by route and outcome."""
    from prometheus_client import CollectorRegistry

    from marketflow.observe.metrics import NotifyMetrics, serve
    from marketflow.observe.slack import observed_post

    registry = CollectorRegistry()
    metrics = NotifyMetrics(registry)
    serve(settings.notify_metrics_port, registry, settings.metrics_host)
    names = {route.webhook: route.name for route in [*routes, default] if route.webhook}
    return observed_post(post, metrics, names)
