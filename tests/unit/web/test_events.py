"""The SSE hub without Redis: changed snapshots only, status each poll, Redis down said once
per poll, a page that stops reading is dropped (it reconnects)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from marketflow.web.events import MAX_QUEUE, Hub, sse


def index(level: float, ts: str = "2025-11-24T10:00:00.000+08:00") -> dict[str, Any]:
    return {"type": "index", "subject": "HSI", "trading_date": "2025-11-24", "ts": ts,
            "final": False, "name": "Hang Seng Index", "prev_close": 25000.0, "level": level,
            "change_pct": (level - 25000) / 250}


class FakeStore:
    def __init__(self) -> None:
        self.latest_value: dict[str, list[dict[str, Any]]] = {}
        self.down = False
        self.client = None

    async def latest(self) -> dict[str, list[dict[str, Any]]]:
        if self.down:
            raise RedisConnectionError("connection refused")
        return self.latest_value


def events(queue: Any) -> list[tuple[str, Any]]:
    out = []
    while not queue.empty():
        message = queue.get_nowait()
        if message is None:
            out.append(("closed", None))
            continue
        head, data = message.decode().strip().split("\n")
        out.append((head.removeprefix("event: "), orjson.loads(data.removeprefix("data: "))))
    return out


def test_sse_is_one_event_on_one_line() -> None:
    assert sse("alert", {"a": "x\ny"}) == b'event: alert\ndata: {"a":"x\\ny"}\n\n'
    assert sse("alert", b'{"a":1}') == b'event: alert\ndata: {"a":1}\n\n'


@pytest.mark.asyncio(loop_scope="function")
async def test_changed_snapshots_then_status() -> None:
    store = FakeStore()
    hub = Hub(store, "mf:alerts")  # type: ignore[arg-type]
    queue = hub.subscribe()
    store.latest_value = {"index": [index(25100.0)]}
    await hub.poll_once()
    first = events(queue)
    assert [name for name, _ in first] == ["snapshots", "status"]
    assert first[0][1] == [index(25100.0)]
    assert first[1][1]["redis"] == "ok" and first[1][1]["trading_date"] == "2025-11-24"
    await hub.poll_once()  # nothing changed: status only
    assert [name for name, _ in events(queue)] == ["status"]
    store.latest_value = {"index": [index(25200.0, "2025-11-24T10:00:01.000+08:00")]}
    await hub.poll_once()
    assert events(queue)[0] == ("snapshots", [index(25200.0, "2025-11-24T10:00:01.000+08:00")])
    store.down = True
    await hub.poll_once()
    assert events(queue) == [("status", {"redis": "down"})] and not hub.redis_ok
    store.down = False
    await hub.poll_once()
    assert [name for name, _ in events(queue)] == ["status"] and hub.redis_ok


@pytest.mark.asyncio(loop_scope="function")
async def test_a_page_that_stops_reading_is_dropped() -> None:
    hub = Hub(FakeStore(), "mf:alerts")  # type: ignore[arg-type]
    slow, fast = hub.subscribe(), hub.subscribe()
    for n in range(MAX_QUEUE):
        hub.broadcast(sse("alert", {"n": n}))
        fast.get_nowait()
    hub.broadcast(sse("alert", {"n": "one too many"}))
    assert slow not in hub.clients and fast in hub.clients
    assert events(slow) == [("closed", None)]  # its stream ends; the browser reconnects
    assert events(fast) == [("alert", {"n": "one too many"})]
