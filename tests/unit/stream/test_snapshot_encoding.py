"""A snapshot's record value (`stream.sinks.encode_snapshot`): the sender encodes each as it
batches it, so an encoding that raised there would stop every output; none does."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from marketflow.stream.sinks import encode_snapshot

STOCK = {"type": "stock", "subject": "00700", "name": "Tencent", "trading_date": "2025-11-24",
         "ts": "2025-11-24T10:32:16.532+08:00", "final": False, "prev_close": 600.5,
         "last": 612.0, "change_pct": 1.915070774354704, "turnover_hkd": 409356350.0,
         "volume": 7402500, "trades": 327}


@pytest.mark.parametrize("snapshot", [
    STOCK,
    {**STOCK, "volume": 2**64 + 1},  # past 64 bits: orjson refuses it
    {**STOCK, "volume": -(2**70)},
    {**STOCK, "name": "騰訊控股"},
    {"type": "sector", "subject": "AI", "rolling": {"1m": 0.1, "5m": -0.25},
     "top_contributors": [{"symbol": "00700", "contribution_pct": 0.5}]},
])
def test_a_snapshot_is_its_compact_json(snapshot: dict[str, Any]) -> None:
    value = encode_snapshot(snapshot)
    assert json.loads(value) == snapshot
    assert b", " not in value and b": " not in value  # compact, as orjson writes


def test_within_64_bits_it_is_what_orjson_writes() -> None:
    assert encode_snapshot(STOCK) == orjson.dumps(STOCK)


values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text()
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12)


@given(st.dictionaries(st.text(), values, max_size=8))
def test_any_snapshot_of_json_values_round_trips(snapshot: dict[str, Any]) -> None:
    assert json.loads(encode_snapshot(snapshot)) == snapshot
