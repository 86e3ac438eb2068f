"""The board's HTTP server (aiohttp): the page, its static assets, the JSON API, `/events`.

Read-only on Redis; needs neither Kafka nor the worker to start (the page shows what Redis
holds and waits for more). Binds 127.0.0.1 unless told otherwise: there is no
authentication. The Redis URL may carry a password: it is never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from marketflow.web.api import ROUTES, errors
from marketflow.web.context import CONFIG, HUB, STORE, WebConfig
from marketflow.web.events import Hub, events, pubsub_client
from marketflow.web.store import BoardStore

log = logging.getLogger("marketflow.web")

STATIC = Path(__file__).parent / "static"


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


def create_app(redis_url: str, config: WebConfig) -> web.Application:
    app = web.Application(middlewares=[errors])
    store = BoardStore(pubsub_client(redis_url), config.prefix)
    app[CONFIG] = config
    app[STORE] = store
    app[HUB] = Hub(store, f"{config.prefix}alerts", config.poll_s)
    for path, handler in ROUTES:
        app.router.add_get(path, handler)
    app.router.add_get("/events", events)
    app.router.add_get("/", index)
    app.router.add_static("/static/", STATIC)

    async def start_hub(app: web.Application) -> None:
        await app[HUB].start()

    async def stop_hub(app: web.Application) -> None:
        await app[HUB].stop()

    async def close_redis(app: web.Application) -> None:
        await app[STORE].client.aclose()

    app.on_startup.append(start_hub)
    app.on_shutdown.append(stop_hub)  # ends every open /events stream
    app.on_cleanup.append(close_redis)
    return app


async def serve(host: str, port: int, redis_url: str, config: WebConfig,
                on_ready: Callable[[str], None] | None = None,
                stop: asyncio.Event | None = None) -> None:
    """Serve until SIGTERM/SIGINT (or `stop` is set). Raises OSError if it cannot listen."""
    app = create_app(redis_url, config)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=3.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, shutdown_timeout=3.0)
        await site.start()
        url = f"http://{'127.0.0.1' if host in ('', '0.0.0.0') else host}:{port}/"  # noqa: S104
        log.info("market board on %s", url)
        if on_ready is not None:
            on_ready(url)
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()
