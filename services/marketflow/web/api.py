"""The JSON API behind the board (README "The market board" has curl examples).

Every record served is a record of `schemas/`: snapshots as on the `mf.*` topics, alerts as
on `mf.alerts`. Errors are `{"error": "..."}` with 400 (a bad parameter), 404 (no such
subject yet) or 503 (Redis does not answer).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from marketflow.alerts.history import INTERVAL_MS
from marketflow.core.timeutil import HKT
from marketflow.web.context import CONFIG, HUB, STORE, WebConfig
from marketflow.web.records import (
    SECTOR_WEIGHTS,
    STOCK_ORDERS,
    alert_matches,
    rank_sectors,
    sort_stocks,
)
from marketflow.web.store import REDIS_ERRORS, BoardStore, status_of

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class BadRequest(ValueError):
    """A query parameter the API refuses (400)."""


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status,
                        content_type="application/json", headers={"Cache-Control": "no-cache"})


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """400 for a bad parameter, 503 while Redis does not answer: always JSON."""
    try:
        return await handler(request)
    except BadRequest as error:
        return json_response({"error": str(error)}, 400)
    except REDIS_ERRORS as error:
        return json_response({"error": f"Redis unavailable ({type(error).__name__})"}, 503)


def _int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise BadRequest(f"{name} must be between {low} and {high}")
    return value


def _list(request: web.Request, name: str) -> list[str]:
    """A filter given as repeated (`?rule=a&rule=b`) or comma-separated (`?rule=a,b`)."""
    return [item.strip() for raw in request.query.getall(name, [])
            for item in raw.split(",") if item.strip()]


async def board_payload(store: BoardStore, config: WebConfig,
                        alerts_limit: int | None = None) -> dict[str, Any]:
    board = await store.board(alerts_limit or config.alerts_limit)
    board["config"] = {"windows": ["day", *config.windows], "weights": list(SECTOR_WEIGHTS),
                       "rules": list(config.rules), "history_interval_s": INTERVAL_MS / 1000}
    return board


async def get_board(request: web.Request) -> web.Response:
    limit = _int(request, "alerts", request.app[CONFIG].alerts_limit, 0, 1000)
    return json_response(await board_payload(request.app[STORE], request.app[CONFIG], limit))


async def get_status(request: web.Request) -> web.Response:
    return json_response(status_of(await request.app[STORE].latest()))


async def _one(request: web.Request, kind: str, name: str) -> web.Response:
    records = (await request.app[STORE].latest())[kind]
    wanted = request.match_info[name]
    for record in records:
        if record["subject"] == wanted:
            return json_response(record)
    return json_response({"error": f"no {kind} {wanted!r} in Redis"}, 404)


async def get_indices(request: web.Request) -> web.Response:
    return json_response((await request.app[STORE].latest())["index"])


async def get_index(request: web.Request) -> web.Response:
    return await _one(request, "index", "symbol")


async def get_sectors(request: web.Request) -> web.Response:
    """Sector snapshots ranked by the gain over `window` with `weight` (float or equal)."""
    config = request.app[CONFIG]
    window = request.query.get("window", "day")
    weight = request.query.get("weight", "float")
    if window not in ("day", *config.windows):
        raise BadRequest(f"window must be one of day, {', '.join(config.windows)}")
    if weight not in SECTOR_WEIGHTS:
        raise BadRequest("weight must be float (free-float cap weighted) or equal")
    if weight == "equal" and window != "day":
        raise BadRequest("equal-weighted gains exist for the day window only")
    sectors = (await request.app[STORE].latest())["sector"]
    ranking = rank_sectors(sectors, window, weight)
    by_name = {s["subject"]: s for s in sectors}
    return json_response({"window": window, "weight": weight, "ranking": ranking,
                          "sectors": [by_name[row["subject"]] for row in ranking]})


async def get_sector(request: web.Request) -> web.Response:
    return await _one(request, "sector", "name")


async def get_stocks(request: web.Request) -> web.Response:
    order = request.query.get("order", "movers")
    if order not in STOCK_ORDERS:
        raise BadRequest(f"order must be one of {', '.join(STOCK_ORDERS)}")
    limit = _int(request, "limit", 1000, 1, 100_000)
    stocks = (await request.app[STORE].latest())["stock"]
    return json_response(sort_stocks(stocks, order, limit))


async def get_stock(request: web.Request) -> web.Response:
    return await _one(request, "stock", "symbol")


async def get_market(request: web.Request) -> web.Response:
    market = (await request.app[STORE].latest())["market"]
    if not market:
        return json_response({"error": "no market snapshot in Redis"}, 404)
    return json_response(market[0])


async def get_southbound(request: web.Request) -> web.Response:
    return json_response((await request.app[STORE].latest())["southbound"])


async def get_alerts(request: web.Request) -> web.Response:
    """The newest alerts first; filters apply to the newest `scan` (default 1000) alerts."""
    limit = _int(request, "limit", 50, 1, 10_000)
    subjects, rules, severities = (_list(request, n) for n in ("subject", "rule", "severity"))
    filtered = bool(subjects or rules or severities)
    scan = _int(request, "scan", 1000, 1, 100_000) if filtered else limit
    alerts = await request.app[STORE].alerts(max(scan, limit))
    matching = [a for a in alerts if alert_matches(a, subjects, rules, severities)]
    return json_response(matching[:limit])


async def get_history(request: web.Request) -> web.Response:
    """Intraday lines: `date` (default the board's trading date), `series` (default all:
    `index:HSI,southbound:total,...`), `since` (epoch ms: only later points)."""
    store = request.app[STORE]
    date = request.query.get("date")
    if date is None:
        date = status_of(await store.latest())["trading_date"]
        if date is None:
            date = dt.datetime.now(HKT).date().isoformat()
    elif not _DATE.match(date):
        raise BadRequest("date must be YYYY-MM-DD")
    series = _list(request, "series") or None
    since = _int(request, "since", -1, -1, 10**15) if "since" in request.query else None
    points = await store.history(date, series, since)
    return json_response({"trading_date": date, "interval_s": INTERVAL_MS / 1000,
                          "series": points})


async def get_health(request: web.Request) -> web.Response:
    try:
        await request.app[STORE].client.ping()
    except Exception:
        return json_response({"ok": False, "redis": "down"}, 503)
    clients = len(request.app[HUB].clients)
    return json_response({"ok": True, "redis": "ok", "pages": clients})


ROUTES: tuple[tuple[str, Handler], ...] = (
    ("/api/board", get_board),
    ("/api/status", get_status),
    ("/api/indices", get_indices),
    ("/api/indices/{symbol}", get_index),
    ("/api/sectors", get_sectors),
    ("/api/sectors/{name}", get_sector),
    ("/api/stocks", get_stocks),
    ("/api/stocks/{symbol}", get_stock),
    ("/api/market", get_market),
    ("/api/southbound", get_southbound),
    ("/api/alerts", get_alerts),
    ("/api/history", get_history),
    ("/healthz", get_health),
)
