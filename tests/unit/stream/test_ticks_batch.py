"""`Runtime.on_ticks_batch`, the worker's loop over fetched `md.ticks` records (no I/O):
single ticks take the fast parser, anything else the general path, and every rejected
record or element reaches the dead-letter callback with the payload the contract names."""

from __future__ import annotations

import orjson
import pytest

from marketflow.core.rules import parse_rules
from marketflow.core.timeutil import to_rfc3339
from marketflow.stream.runtime import Runtime
from tests.unit.core.test_pipeline_properties import BASE, WINDOWS, universe

DAY_MS = 86_400_000


def tick(ts: int, symbol: str = "00001", **extra: object) -> dict[str, object]:
    return {"symbol": symbol, "ts": ts, "price": 50.5, "qty": 100, **extra}


def run(values: list[bytes]) -> tuple[int, list[tuple[str, int, bytes]], dict[str, object]]:
    runtime = Runtime(universe(), parse_rules({"rules": []}, WINDOWS), 1000, tuple(WINDOWS),
                      1, 10**9)
    processor = runtime.new_processor(0)
    rejects: list[tuple[str, int, bytes]] = []

    def reject(reason: str, partition: int | None, offset: int | None, detail: str,
               source: str, payload: bytes) -> None:
        assert partition == 0 and source == "ticks" and offset is not None and detail
        rejects.append((reason, offset, payload))

    records = [(offset, value, 0) for offset, value in enumerate(values)]
    emission = runtime.on_ticks_batch(processor, records, reject)
    stock = processor.stocks["00001"].figures() if "00001" in processor.stocks else {}
    return emission.ticks, rejects, stock


TODAY = orjson.dumps(tick(BASE + DAY_MS))
YESTERDAY = orjson.dumps(tick(BASE))


@pytest.mark.parametrize(("values", "applied", "rejected"), [
    ([TODAY], 1, []),
    ([orjson.dumps(tick("2025-11-25T09:30:00.250+08:00", "0001.HK"))], 1, []),  # loose
    ([orjson.dumps(tick(BASE + DAY_MS, qty="100"))], 1, []),  # general path
    ([b"{not json"], 0, [("invalid_json", 0, b"{not json")]),
    ([orjson.dumps(tick(BASE + DAY_MS, price=-1))], 0,
     [("invalid_price", 0, orjson.dumps(tick(BASE + DAY_MS, price=-1)))]),
    # applying: a single record is dead-lettered as received ...
    ([TODAY, YESTERDAY], 1, [("stale_trading_day", 1, YESTERDAY)]),
    ([TODAY, orjson.dumps(tick(BASE + DAY_MS, "NOPE", kind="index"))], 1,
     [("unknown_index", 1, orjson.dumps(tick(BASE + DAY_MS, "NOPE", kind="index")))]),
    # ... one tick of an array in canonical form, the rest of the array applied
    ([TODAY, b"[" + YESTERDAY + b"," + TODAY + b"]"], 2,
     [("stale_trading_day", 1, orjson.dumps({
         "symbol": "00001", "ts": BASE, "price": 50.5, "qty": 100, "turnover": 5050.0,
         "kind": "trade"}))]),
])
def test_records_applied_and_rejected(values: list[bytes], applied: int,
                                      rejected: list[tuple[str, int, bytes]]) -> None:
    count, rejects, stock = run(values)
    assert (count, rejects) == (applied, rejected)
    if applied:
        assert stock["trades"] == applied and stock["last"] == 50.5


def test_a_frame_waits_for_a_partitions_open_frame_after_a_stall() -> None:
    """Partition 0 ends with ticks in frame 1, its open frame (not shipped yet: an open
    frame goes out when the partition has been quiet for `source_flush_ms`, or when a
    later tick closes it). The worker then stalls for longer than `idle_ms` (a slow
    machine, long batches of other partitions), and partition 1's next batch passes frame
    1. Partition 0 holds frame 1's group here: it is not idle, and frame 1 must wait for
    it (closed without it, the market would be evaluated on part of its turnover)."""
    clock = [0.0]
    # HK$111,100 once both partitions' frame 1 is in; HK$60,600 with one of them
    rules = parse_rules({"rules": [{
        "id": "turnover", "metric": "market.turnover_hkd", "op": ">=",
        "threshold": 100_000.0}]}, WINDOWS)
    runtime = Runtime(universe(), rules, 1000, tuple(WINDOWS), 2, 2000,
                      now=lambda: clock[0])
    runtime.new_aggregator()
    processors = {p: runtime.new_processor(p) for p in (0, 1)}
    runtime.processors.update(processors)
    start = BASE + DAY_MS
    alerts = []
    for p, symbol, last in ((0, "00001", 1500), (1, "00002", 2500)):
        # HK$5,050 in frame 0, 50,500 in frame 1 (and for partition 1 a tick in frame 2)
        records = [(0, orjson.dumps(tick(start, symbol)), 0),
                   (1, orjson.dumps(tick(start + 1500, symbol, qty=1000)), 0),
                   (2, orjson.dumps(tick(start + last, symbol, qty=0)), 0)]
        alerts += runtime.on_ticks_batch(processors[p], records, lambda *a: None).output.alerts
        runtime.touch(p)
        clock[0] += 5.0  # a stall past idle_ms
    for _ in range(3):
        alerts += runtime.housekeeping().output.alerts
        clock[0] += 5.0
    assert [(a["ts"], a["value"]) for a in alerts] == [(to_rfc3339(start + 2000), 111_100.0)]
