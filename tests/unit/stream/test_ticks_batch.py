"""`Runtime.on_ticks_batch`, the worker's loop over fetched `md.ticks` records (no I/O):
single ticks take the fast parser, anything else the general path, and every rejected
record or element reaches the dead-letter callback with the payload the contract names."""

from __future__ import annotations

import orjson
import pytest

from marketflow.core.rules import parse_rules
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
