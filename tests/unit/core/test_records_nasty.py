"""Nasty values through the record parsers: each is rejected with its field's reason (never
an OverflowError, decimal error or ValueError from int()), and whatever is accepted goes
back on the wire (orjson: 64-bit integers at most) and parses to the same record."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from marketflow.core.records import RecordError, parse_southbound, parse_tick

TS = 1_763_947_800_000
TICK = {"symbol": "00700", "ts": TS, "price": 598.5, "qty": 100}


@pytest.mark.parametrize(("field", "value", "reason"), [
    ("price", 1e308, "invalid_price"),
    ("price", -1e308, "invalid_price"),
    ("price", "1e999999999", "invalid_price"),
    ("price", "1e30", "invalid_price"),
    ("price", "9" * 5000, "invalid_price"),
    ("price", "NaN", "invalid_price"),
    ("price", "-Infinity", "invalid_price"),
    ("price", 10**13, "invalid_price"),
    ("price", -5, "invalid_price"),
    ("price", 0, "invalid_price"),
    ("qty", 1e300, "invalid_qty"),
    ("qty", 10**12 + 1, "invalid_qty"),
    ("qty", 2**64 - 1, "invalid_qty"),
    ("qty", "9" * 5000, "invalid_qty"),
    ("turnover", 1e308, "invalid_turnover"),
    ("turnover", 10**13, "invalid_turnover"),
    ("seq", 2**63, "invalid_seq"),
    ("seq", "9" * 5000, "invalid_seq"),
    ("ts", "9" * 5000, "invalid_ts"),
    ("ts", "１７６３９４７８０００００", "invalid_ts"),  # fullwidth digits are not epoch ms
    ("ts", 1e300, "invalid_ts"),
])
def test_out_of_range_numbers_are_rejected_with_their_reason(field: str, value: object,
                                                             reason: str) -> None:
    with pytest.raises(RecordError) as caught:
        parse_tick({**TICK, field: value})
    assert caught.value.reason == reason


def test_price_times_qty_must_fit() -> None:
    with pytest.raises(RecordError, match="invalid_turnover"):
        parse_tick({**TICK, "price": 9_000_000.0, "qty": 10**12})  # the fast path's form
    with pytest.raises(RecordError, match="invalid_turnover"):
        parse_tick({**TICK, "price": "9000000", "qty": "1000000000000"})


@pytest.mark.parametrize("value", [1e308, "1e99999999", 10**13])
def test_southbound_amounts_out_of_range(value: object) -> None:
    with pytest.raises(RecordError, match="invalid_amount"):
        parse_southbound({"channel": "SH", "ts": TS, "buy_hkd": value, "sell_hkd": 1})


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8)
NUMBERISH = (st.integers() | st.floats() | st.decimals(allow_nan=True).map(str)
             | st.from_regex(r"-?[0-9]{0,30}(\.[0-9]{0,30})?(e-?[0-9]{1,12})?", fullmatch=True)
             | JSON)
TICKISH = st.fixed_dictionaries({}, optional={
    "symbol": st.sampled_from(["700", "00700", "0700.HK", "HSI", "", "123456"]) | JSON,
    "ts": st.integers() | st.floats() | st.sampled_from(
        ["2025-11-24T09:30:00", "2025-11-24T09:30:00+08:00", "yesterday"]) | NUMBERISH,
    "price": NUMBERISH, "qty": NUMBERISH, "turnover": NUMBERISH, "seq": NUMBERISH,
    "kind": st.sampled_from(["trade", "index", "TRADE"]) | JSON})


def _round_trip(tick: Any) -> None:
    wire = orjson.loads(orjson.dumps(tick.to_json()))  # raises if a number does not fit
    assert parse_tick(wire) == tick


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TICKISH | JSON)
def test_any_value_is_a_tick_or_a_record_error(obj: Any) -> None:
    try:
        tick = parse_tick(obj)
    except RecordError:
        return
    _round_trip(tick)


@settings(max_examples=300, deadline=None)
@given(st.fixed_dictionaries({"channel": st.sampled_from(["SH", "sz", "HK"]) | JSON,
                              "ts": st.integers(min_value=0, max_value=5 * 10**12) | JSON,
                              "buy_hkd": NUMBERISH, "sell_hkd": NUMBERISH},
                             optional={"quota_balance_rmb": NUMBERISH}) | JSON)
def test_any_value_is_an_update_or_a_record_error(obj: Any) -> None:
    try:
        update = parse_southbound(obj)
    except RecordError:
        return
    assert parse_southbound(orjson.loads(orjson.dumps(update.to_json()))) == update
