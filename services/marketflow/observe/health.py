"""Liveness and readiness of a worker, and the HTTP endpoints that report them.

- **live** (`/healthz`): the worker's event loop answers (the server runs on that loop, so
  a blocked loop cannot answer) and its sampler ran within `stall_s`.
- **ready** (`/readyz`): the worker has joined its consumer group (a rebalance ended and
  none is in progress) and has rebuilt the state of every partition it was given: the
  worker rebuilds a partition while handling its first record (or, for `md.ticks`, read
  by its own consumer, its first batch) after an assignment, so a partition whose first
  record is in flight is still rebuilding. A worker that was given no partition (more
  replicas than partitions) is ready: it is a standby.

`WorkerHealth` holds the state (fed by `marketflow.observe.sensor`); time is passed in.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable
from typing import Any

log = logging.getLogger("marketflow.health")


class WorkerHealth:
    def __init__(self, stall_s: float = 30.0) -> None:
        self.stall_s = stall_s
        self.joined = False
        self.rebalancing = False
        self.assigned: frozenset[Hashable] = frozenset()
        self.rebuilt: set[Hashable] = set()
        self.rebuilding: set[Hashable] = set()
        self.rebuilding_extra: set[Hashable] = set()  # md.ticks, from the TicksReader
        self.assigned_extra = 0
        self.last_beat: float | None = None

    # -- events ------------------------------------------------------------------------

    def rebalance_started(self) -> None:
        self.rebalancing = True

    def rebalance_ended(self, assigned: frozenset[Hashable]) -> None:
        """A new assignment: state is rebuilt again for every partition (the worker drops
        revoked state and rebuilds what it is given)."""
        self.rebalancing = False
        self.joined = True
        self.assigned = assigned
        self.rebuilt.clear()
        self.rebuilding.clear()

    def record_in(self, tp: Hashable) -> None:
        if tp not in self.rebuilt:
            self.rebuilding.add(tp)

    def record_out(self, tp: Hashable) -> None:
        self.rebuilding.discard(tp)
        self.rebuilt.add(tp)

    def set_ticks(self, owned: set[Any], rebuilding: set[Any]) -> None:
        """Partitions read outside Faust (`md.ticks`): held, and rebuilding now."""
        self.assigned_extra = len(owned)
        self.rebuilding_extra = {("md.ticks", p) for p in rebuilding}

    def beat(self, now: float) -> None:
        self.last_beat = now

    # -- verdicts ----------------------------------------------------------------------

    def live(self, now: float) -> bool:
        return self.last_beat is not None and now - self.last_beat <= self.stall_s

    def ready(self) -> bool:
        return (self.joined and not self.rebalancing and not self.rebuilding
                and not self.rebuilding_extra)

    def report(self, now: float) -> dict[str, Any]:
        rebuilding = self.rebuilding | self.rebuilding_extra
        return {"live": self.live(now), "ready": self.ready(), "joined": self.joined,
                "rebalancing": self.rebalancing,
                "assigned": len(self.assigned) + self.assigned_extra,
                "rebuilding": sorted(str(tp) for tp in rebuilding)}


async def start_health_server(health: WorkerHealth, host: str, port: int,
                              now: Callable[[], float]) -> Any:
    """`/healthz` and `/readyz` (200 or 503, JSON body) on the running loop; returns the
    aiohttp runner (await `runner.cleanup()` to stop)."""
    from aiohttp import web

    async def healthz(_: web.Request) -> web.Response:
        report = health.report(now())
        return web.json_response(report, status=200 if report["live"] else 503)

    async def readyz(_: web.Request) -> web.Response:
        report = health.report(now())
        return web.json_response(report, status=200 if report["ready"] else 503)

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    log.info("health endpoints on http://%s:%d/healthz and /readyz", host, port)
    return runner
