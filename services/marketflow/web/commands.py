"""`marketflow web`: the market board (page, JSON API, server-sent events) over Redis."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import typer

from marketflow.cli_support import (
    FAILURE,
    ConfigError,
    configure_logging,
    exit_on_error,
    fail,
    load_settings,
    mask_url,
    ping_redis,
)
from marketflow.settings import Settings


def resolve_redis(settings: Settings) -> str:
    """MARKETFLOW_REDIS_URL, else the Redis of `marketflow stack up`; ConfigError if none.
    For the board and `tail redis`, which need Redis only (not the broker)."""
    if settings.redis_url is not None:
        return settings.redis_url.get_secret_value()
    from marketflow.infra.embedded import read_stack

    info = read_stack(settings.state_dir)
    if info is not None and info.alive():
        return info.redis_url
    raise ConfigError("Redis is needed: set MARKETFLOW_REDIS_URL or run `marketflow stack up`")


def board_rules(settings: Settings) -> tuple[dict[str, Any], ...]:
    """The thresholds of the rules file, for the page's threshold lines (RulesError: 2)."""
    from marketflow.core.rules import load_rules

    rules = load_rules(settings.rules, settings.windows).rules
    return tuple({"rule_id": r.id, "metric": r.metric, "window": r.window, "op": r.op,
                  "threshold": r.threshold, "severity": r.severity,
                  "subjects": sorted(r.subjects) if r.subjects is not None else "*"}
                 for r in rules)


def register(app: typer.Typer) -> None:
    @app.command()
    def web(
        host: str | None = typer.Option(None, help="Address to bind (default "
                                                    "MARKETFLOW_WEB_HOST, 127.0.0.1). The "
                                                    "board has no authentication."),
        port: int | None = typer.Option(None, min=1, max=65535,
                                        help="Port (default MARKETFLOW_WEB_PORT, 8050)."),
        poll: float = typer.Option(1.0, min=0.05, max=60.0,
                                   help="Seconds between reads of the latest snapshots "
                                        "while a page is open."),
        loglevel: str = typer.Option("info", help="debug, info, warning, error."),
    ) -> None:
        """Serve the market board: a live page, its JSON API and /events (SSE), from Redis."""
        from marketflow.web.context import WebConfig
        from marketflow.web.server import serve

        configure_logging(loglevel)
        settings = load_settings()
        with exit_on_error(settings):
            redis_url = resolve_redis(settings)
            rules = board_rules(settings)
            ping_redis(redis_url)
        bind = host or settings.web_host
        listen = port or settings.web_port
        config = WebConfig(prefix=settings.redis_prefix, windows=settings.windows,
                           rules=rules, poll_s=poll)
        log = logging.getLogger("marketflow.web")
        log.info("reading Redis at %s (prefix %r)", mask_url(redis_url), settings.redis_prefix)
        if bind not in ("127.0.0.1", "localhost", "::1"):
            log.warning("binding %s: anyone who can reach it sees the board", bind)

        def ready(url: str) -> None:
            typer.echo(f"market board: {url}  (Ctrl-C to stop)", err=True)

        try:
            asyncio.run(serve(bind, listen, redis_url, config, ready))
        except OSError as error:
            fail(f"cannot listen on {bind}:{listen}: {error.strerror or error}", FAILURE,
                 settings)
        except KeyboardInterrupt:
            pass
