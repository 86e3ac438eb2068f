"""What the web server's handlers share: its configuration and the app keys."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from marketflow.web.events import Hub
    from marketflow.web.store import BoardStore


@dataclass(frozen=True, slots=True)
class WebConfig:
    prefix: str = "mf:"
    windows: tuple[str, ...] = ("1m", "5m", "15m", "60m")  # rolling windows of sector gains
    rules: tuple[dict[str, Any], ...] = ()  # thresholds the page draws (from the rules file)
    poll_s: float = 1.0
    alerts_limit: int = 50


CONFIG: web.AppKey[WebConfig] = web.AppKey("config")
STORE: web.AppKey[BoardStore] = web.AppKey("store")
HUB: web.AppKey[Hub] = web.AppKey("hub")
