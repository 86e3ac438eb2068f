"""Baseline: the same minimal job in Quix Streams (a benchmark-only dependency).

Run: `python -m tests.bench.baseline_quix BOOTSTRAP TOPIC UNIVERSE N GROUP`; prints one JSON
line {"ticks", "seconds"} or {"error"}.
"""

from __future__ import annotations

import json
import os
import sys
import time

from tests.bench.universe import load as load_universe


def main(bootstrap: str, topic: str, universe: str, expected: int, group: str) -> None:
    try:
        from quixstreams import Application
    except ImportError as error:
        print(json.dumps({"error": f"quixstreams not installed: {error}"}))
        return
    members, floats, prev = load_universe(universe)
    last: dict[str, float] = {}
    turnover: dict[str, float] = {}
    sector_num: dict[str, float] = {}
    state = {"n": 0, "start": 0.0}
    app = Application(broker_address=bootstrap, consumer_group=group,
                      auto_offset_reset="earliest", use_changelog_topics=False,
                      consumer_extra_config={"session.timeout.ms": 6000,
                                             "heartbeat.interval.ms": 500})
    source = app.topic(topic, value_deserializer="json")
    sdf = app.dataframe(source)

    def update(tick: dict) -> None:
        if state["n"] == 0:
            state["start"] = time.perf_counter()
        symbol, price = tick["symbol"], tick["price"]
        old = last.get(symbol, prev.get(symbol, price))
        last[symbol] = price
        turnover[symbol] = turnover.get(symbol, 0.0) + price * tick["qty"]
        for sector in members.get(symbol, ()):
            sector_num[sector] = sector_num.get(sector, 0.0) + floats[symbol] * (price - old)
        state["n"] += 1
        if state["n"] >= expected:
            print(json.dumps({"ticks": state["n"],
                              "seconds": time.perf_counter() - state["start"]}), flush=True)
            os._exit(0)  # measured: leave at once

    sdf.update(update)
    try:
        app.run()
    except Exception as error:  # report why it could not run against this broker
        if state["n"] < expected:
            print(json.dumps({"error": f"{type(error).__name__}: {error}"}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
