"""`read_ticks` decodes a JSON line straight into a tick's fields (msgspec) and falls back
to orjson line by line: whatever the bytes, it gives what reading every line through orjson
gives (the same ticks in order, the same rejection reasons in order)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from marketflow.core.records import RecordError, Tick, parse_tick, tick_of
from marketflow.ingest.batches import decode_ticks, split_ticks
from marketflow.ingest.files import BOM, MAX_LINE_BYTES, read_ticks, read_values
from marketflow.ingest.wire import DECODE_ERRORS, TICK_LINE
from tests.unit.ingest.test_nasty_corpus import lines_file

CLEAN = {"symbol": "00700", "ts": 1763947800000, "price": 612.5, "qty": 100}


def line_by_line(path: Path) -> tuple[list[Tick], list[str]]:
    """The plain reading: each line's value through orjson, then the tick parser."""
    ticks: list[Tick] = []
    rejected: list[str] = []
    for _, obj in read_values(path):
        if isinstance(obj, RecordError):
            rejected.append(obj.reason)
            continue
        good, bad = split_ticks(obj)
        ticks += good
        rejected += [b.error.reason for b in bad]
    return ticks, rejected


def read(path: Path) -> tuple[list[Tick], list[str]]:
    rejected: list[str] = []
    ticks = list(read_ticks(path, rejected.append))
    return ticks, rejected


def fields(**changes: Any) -> bytes:
    return json.dumps({**CLEAN, **changes}).encode()


def raw(text: str) -> bytes:
    return text.encode()


# Lines where msgspec and orjson could part (each next to a clean line), and what the
# file must give: the clean tick, and then this line's tick or its rejection reason.
CASES = [
    # decoded by msgspec, refused by orjson: inside an unknown field
    (raw('{"symbol":"00700","ts":1763947800000,"price":1.5,"qty":1,"x":1e999}'),
     "invalid_json"),
    (b'{"symbol":"00700","ts":1763947800000,"price":1.5,"qty":1,"x":"\xed\xa0\x80"}',
     "invalid_encoding"),
    (b'{"symbol":"0070\xed\xa0\x80","ts":1763947800000,"price":1.5,"qty":1}',
     "invalid_encoding"),
    # integers past 64 bits: an int for msgspec, a float for orjson
    (fields(qty=2**64), "invalid_qty"),
    (fields(seq=2**70), "invalid_seq"),
    (fields(ts=2**65), "invalid_ts"),
    (fields(turnover=10**30), "invalid_turnover"),
    # two values on a line, a value over two lines (msgspec reads values between spaces)
    (fields() + b" " + fields(), "invalid_json"),
    (fields() + b"\n" + b"[", "invalid_json"),
    # an empty batch, a batch with a bad element, a null kind (a trade), duplicate keys
    (b"[]", "invalid_batch"),
    (b"[" + fields() + b", " + fields(price=-1) + b"]", "invalid_price"),
    (raw('{"symbol":"00700","ts":1763947800000,"price":1.5,"qty":1,"kind":null}'), None),
    (raw('{"symbol":"1","symbol":"00700","ts":1763947800000,"price":1.5,"qty":1}'), None),
    # white space JSON allows around a value, and \f that only bytes.strip() takes
    (b" \t" + fields() + b" \r", None),
    (b"\x0c" + fields(), None),
    # loose forms the fast parser takes: they must read the same either way
    (fields(symbol="0700.HK", ts="2025-11-24T09:30:00.069+08:00"), None),
    (fields(symbol="HK.00700", ts="2025-11-24T01:30:59.999Z", turnover=61250.0), None),
    (fields(ts="2025-11-24T01:30:60.000Z"), "invalid_ts"),
    (fields(ts="2025-11-24T01:30:0\u0663.000Z"), None),  # (\d: any digit, as parse_ts)
    (fields(price=1e-4), "invalid_price"),
    (fields(price=612.5004), None),  # (to the 0.001 grid, half to even)
    (fields(turnover=0.5), None),
    (fields(qty=True), "invalid_qty"),
]


@pytest.mark.parametrize(("line", "reason"), CASES)
def test_each_line_reads_as_orjson_reads_it(line: bytes, reason: str | None,
                                            tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(fields() + b"\n" + line + b"\n")
    ticks, rejected = read(path)
    assert (ticks, rejected) == line_by_line(path)
    assert ticks[0] == parse_tick(CLEAN)
    if reason is None:
        assert rejected == [] and len(ticks) >= 2
    else:
        assert reason in rejected


def test_a_byte_order_mark_a_long_line_and_blank_lines(tmp_path: Path) -> None:
    batch = b"[" + b",".join([fields()] * (MAX_LINE_BYTES // len(fields()) + 1)) + b"]"
    path = tmp_path / "t.jsonl"
    path.write_bytes(BOM + fields() + b"\n\n  \r\n" + batch + b"\n" + BOM + fields() + b"\n"
                     + fields(qty=7))
    ticks, rejected = read(path)
    assert (ticks, rejected) == line_by_line(path)
    assert rejected == ["record_too_large", "invalid_json"]  # (a BOM is not JSON past line 1)
    assert [t.qty for t in ticks] == [100, 7]


# -- hypothesis: lines of tick fields in every spelling, and bytes ------------------------

VALUES = (st.integers(-2, 2**66) | st.floats(allow_nan=False, allow_infinity=False)
          | st.text(max_size=6) | st.none() | st.booleans())
TICK_FIELDS = st.fixed_dictionaries(
    {"symbol": st.sampled_from(["00700", "700", "0700.HK", "HK.09988", "HSI", "x"]) | VALUES,
     "ts": st.integers(1763946000000, 1763971200000)
     | st.sampled_from(["2025-11-24T09:30:00.125+08:00", "2025-11-24T01:31:07.004Z",
                        "2025-11-24T01:31:07Z", "2025-11-24 09:31:07"]) | VALUES,
     "price": st.floats(0.01, 2000).map(lambda p: round(p, 3)) | VALUES},
    optional={"qty": st.integers(0, 10**6) | VALUES,
              "turnover": st.floats(0, 10**9).map(lambda t: round(t, 2)) | VALUES,
              "seq": st.integers(-3, 2**63) | VALUES,
              "kind": st.sampled_from(["trade", "index", "x"]) | VALUES,
              "note": VALUES})


def dumps(value: Any, ascii_only: bool = True) -> bytes:
    return json.dumps(value, ensure_ascii=ascii_only).encode()  # (any int; orjson: 64 bits)


ONE = st.builds(dumps, TICK_FIELDS, st.booleans())
LINES = st.one_of(
    ONE,
    st.builds(dumps, st.lists(TICK_FIELDS, max_size=3), st.booleans()),
    st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"")),
    st.tuples(ONE, st.sampled_from([b" ", b"\x0c", b"\xff", b","]), ONE)
    .map(lambda t: t[0] + t[1] + t[2]),
)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(lines=st.lists(LINES, max_size=12), crlf=st.booleans())
def test_any_file_reads_as_line_by_line(lines: list[bytes], crlf: bool, tmp_path: Path) -> None:
    path = lines_file(tmp_path, lines, crlf)
    assert read(path) == line_by_line(path)


@settings(max_examples=300, deadline=None)
@given(obj=TICK_FIELDS)
def test_decoded_fields_make_the_tick_the_dict_makes(obj: dict[str, Any]) -> None:
    line = dumps(obj)
    try:
        wire = TICK_LINE.decode(line)
    except DECODE_ERRORS:
        assert "note" in obj  # only an unknown field is refused
        return
    from_wire = tick_of(wire.symbol, wire.ts, wire.price, wire.qty, wire.kind, wire.turnover,
                        wire.seq)
    try:
        from_dict: Tick | None = parse_tick(orjson.loads(line))
    except (RecordError, orjson.JSONDecodeError):
        from_dict = None
    if from_wire is not None:  # (None: the line goes the dict's way)
        assert from_wire == from_dict


@pytest.mark.parametrize("line", [
    fields(), fields(symbol="0700.HK", ts="2025-11-24T09:30:00.069+08:00"),
    fields(symbol="HK.00700", ts="2025-11-24T01:30:59.999Z", turnover=61250.0, seq=3),
    b"[" + fields() + b"," + fields(kind="index", symbol="HSI", qty=0) + b"]",
])
def test_the_usual_forms_take_the_decoder_path(line: bytes) -> None:
    """(the speed of `read_ticks` and the worker rests on this; the equality above holds
    either way)"""
    obj = orjson.loads(line)
    expected = [parse_tick(o) for o in obj] if isinstance(obj, list) else parse_tick(obj)
    assert decode_ticks(line) == expected
