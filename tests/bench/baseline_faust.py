"""Baseline: the same minimal job as a plain Faust agent, one JSON tick per record.

A `faust.Record` per tick, per-event updates of per-symbol last price and turnover and of
per-sector cap-weighted sums: the textbook way, for comparison with the marketflow worker.
Run as a worker process: `python -m tests.bench.baseline_faust BOOTSTRAP TOPIC UNIVERSE N`;
it prints one JSON line {"ticks", "seconds"} when it has consumed N ticks.
"""

from __future__ import annotations

import json
import os
import sys
import time

import faust

from tests.bench.universe import load as load_universe


class Tick(faust.Record, serializer="json"):
    symbol: str
    ts: int
    price: float
    qty: int
    seq: int = 0
    kind: str = "trade"


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main(bootstrap: str, topic: str, universe: str, expected: int, app_id: str) -> None:
    members, floats, prev = load_universe(universe)
    app = faust.App(app_id, broker=f"kafka://{bootstrap}", store="memory://",
                    broker_session_timeout=3, broker_heartbeat_interval=0.5,
                    web_enabled=False, web_host="127.0.0.1", web_port=_free_port(),
                    consumer_auto_offset_reset="earliest", datadir=f"/tmp/{app_id}",
                    topic_allow_declare=False)
    ticks = app.topic(topic, value_type=Tick)
    last: dict[str, float] = {}
    turnover: dict[str, float] = {}
    sector_num: dict[str, float] = {}
    state = {"n": 0, "start": 0.0}

    @app.agent(ticks)
    async def process(stream):  # type: ignore[no-untyped-def]
        async for tick in stream:
            if state["n"] == 0:
                state["start"] = time.perf_counter()
            old = last.get(tick.symbol, prev.get(tick.symbol, tick.price))
            last[tick.symbol] = tick.price
            turnover[tick.symbol] = turnover.get(tick.symbol, 0.0) + tick.price * tick.qty
            for sector in members.get(tick.symbol, ()):
                sector_num[sector] = sector_num.get(sector, 0.0) + floats[tick.symbol] * (
                    tick.price - old)
            state["n"] += 1
            if state["n"] >= expected:
                seconds = time.perf_counter() - state["start"]
                print(json.dumps({"ticks": state["n"], "seconds": seconds}), flush=True)
                os._exit(0)  # measured: leave at once, no lingering worker

    worker = faust.Worker(app, loglevel="warning", quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
