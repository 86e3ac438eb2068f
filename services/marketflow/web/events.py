"""`/events`: server-sent events for the page, fed by Redis.

One `Hub` per server, shared by every open page:
- alerts: a subscription to the worker's channel `{prefix}alerts` (the same JSON the stream
  holds), pushed as `event: alert` the moment Redis publishes them. After losing the
  subscription (Redis restarted) the hub resubscribes with backoff and re-sends the newest
  alerts of the stream, so none published meanwhile is missed (pages dedupe by `alert_id`);
- snapshots: the worker publishes no channel for them, so the hub reads the latest hashes
  every `poll_s` while a page is open and pushes the changed records as `event: snapshots`
  (a JSON array), then `event: status` (session phase, data time and delay, Redis health).

A page's stream starts with `retry: 2000` and `event: hello` (the whole board, as
`/api/board`); a browser's EventSource reconnects by itself after a server restart and gets
a fresh `hello`. A page whose queue overflows (it stopped reading) is disconnected and
reconnects the same way. Comments (`: keepalive`) every 15 s keep proxies from timing out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import orjson
import redis.asyncio as aioredis
from aiohttp import web

from marketflow.backoff import backoff_delay
from marketflow.web.api import board_payload
from marketflow.web.context import CONFIG, HUB, STORE
from marketflow.web.store import REDIS_ERRORS, BoardStore, status_of

log = logging.getLogger("marketflow.web")

SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
               "X-Accel-Buffering": "no"}
MAX_QUEUE = 1000


def sse(event: str, data: Any) -> bytes:
    """One server-sent event; `data` is JSON (or JSON bytes), always on one line."""
    payload = data if isinstance(data, bytes) else orjson.dumps(data)
    return b"event: " + event.encode() + b"\ndata: " + payload + b"\n\n"


class Hub:
    def __init__(self, store: BoardStore, channel: str, poll_s: float = 1.0,
                 catch_up: int = 50) -> None:
        self.store = store
        self.channel = channel
        self.poll_s = poll_s
        self.catch_up = catch_up
        self.clients: set[asyncio.Queue[bytes | None]] = set()
        self.redis_ok = True
        self._seen: dict[tuple[str, str], dict[str, Any]] = {}
        self._tasks: list[asyncio.Task[None]] = []

    # -- pages ----------------------------------------------------------------------------

    def subscribe(self) -> asyncio.Queue[bytes | None]:
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.clients.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[bytes | None]) -> None:
        self.clients.discard(queue)

    def broadcast(self, message: bytes) -> None:
        for queue in list(self.clients):
            if queue.qsize() >= MAX_QUEUE:  # a page that stopped reading: let it reconnect
                self.clients.discard(queue)
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait(None)
            else:
                queue.put_nowait(message)

    # -- feeding ------------------------------------------------------------------------

    async def start(self) -> None:
        self._tasks = [asyncio.ensure_future(self._listen()),
                       asyncio.ensure_future(self._poll())]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for queue in list(self.clients):  # end every page's stream: the server is going
            queue.put_nowait(None)
        self.clients.clear()

    async def poll_once(self) -> None:
        """Read the latest hashes; broadcast the changed snapshots and the status."""
        try:
            latest = await self.store.latest()
        except REDIS_ERRORS as error:
            if self.redis_ok:
                log.warning("Redis unreachable (%s); retrying", type(error).__name__)
            self.redis_ok = False
            self.broadcast(sse("status", {"redis": "down"}))
            return
        if not self.redis_ok:
            log.info("Redis is back")
        self.redis_ok = True
        changed = []
        for records in latest.values():
            for record in records:
                key = (record["type"], record["subject"])
                if self._seen.get(key) != record:
                    self._seen[key] = record
                    changed.append(record)
        if changed:
            self.broadcast(sse("snapshots", changed))
        self.broadcast(sse("status", {**status_of(latest), "redis": "ok"}))

    async def _poll(self) -> None:
        while True:
            if self.clients:
                await self.poll_once()
            await asyncio.sleep(self.poll_s)

    async def _listen(self) -> None:
        failures = 0
        while True:
            pubsub = self.store.client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                if failures:  # alerts published while we were not subscribed
                    for alert in reversed(await self.store.alerts(self.catch_up)):
                        self.broadcast(sse("alert", alert))
                    log.info("resubscribed to %s", self.channel)
                failures = 0
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True,
                                                       timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        self.broadcast(sse("alert", message["data"]))
            except REDIS_ERRORS as error:
                failures += 1
                if failures == 1:
                    log.warning("lost the Redis subscription (%s); resubscribing",
                                type(error).__name__)
                await asyncio.sleep(backoff_delay(failures, base=0.25, cap=5.0, jitter=0.0))
            finally:
                with contextlib.suppress(*REDIS_ERRORS):
                    await pubsub.aclose()


async def events(request: web.Request) -> web.StreamResponse:
    """`GET /events`: hello (the board), then alerts, snapshots and status as they come."""
    hub, store = request.app[HUB], request.app[STORE]
    response = web.StreamResponse(headers=SSE_HEADERS)
    await response.prepare(request)
    queue = hub.subscribe()
    try:
        try:
            hello = await board_payload(store, request.app[CONFIG])
        except REDIS_ERRORS:
            await response.write(b"retry: 2000\n\n" + sse("status", {"redis": "down"}))
            return response  # the browser reconnects in 2 s and tries again
        await response.write(b"retry: 2000\n\n" + sse("hello", hello))
        while True:
            try:
                message = await asyncio.wait_for(queue.get(), timeout=15.0)
            except TimeoutError:
                message = b": keepalive\n\n"
            if message is None:
                break
            await response.write(message)
    except ConnectionResetError:  # the page went away
        pass
    finally:
        hub.unsubscribe(queue)
    return response


def pubsub_client(url: str) -> aioredis.Redis:
    """A client for the store and the subscription: every call gives up after 2 s."""
    return aioredis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
