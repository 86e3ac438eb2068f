"""split_ticks: an array keeps its good ticks; each bad element is named with its index."""

from __future__ import annotations

from typing import Any

import pytest

from marketflow.core.records import parse_tick
from marketflow.ingest.batches import split_ticks

A = {"symbol": "700", "ts": 1763947801304, "price": 598.5, "qty": 100, "seq": 1}
B = {"symbol": "09988", "ts": 1763947801305, "price": 150.1, "qty": 200}


@pytest.mark.parametrize(("value", "kept", "bad"), [
    (A, [A], []),
    ([A, B], [A, B], []),
    ([A, {"symbol": "700"}, B], [A, B], [(1, "missing_field")]),
    ([42, A, [B], {**B, "price": -1}], [A], [(0, "not_an_object"), (2, "not_an_object"),
                                             (3, "invalid_price")]),
    ([None, "x"], [], [(0, "not_an_object"), (1, "not_an_object")]),
    ([], [], [(None, "invalid_batch")]),
    ({**A, "ts": "soon"}, [], [(None, "invalid_ts")]),
    ("a string", [], [(None, "not_an_object")]),
])
def test_split_ticks(value: Any, kept: list[dict[str, Any]],
                     bad: list[tuple[int | None, str]]) -> None:
    ticks, rejected = split_ticks(value)
    assert ticks == [parse_tick(t) for t in kept]
    assert [(b.index, b.error.reason) for b in rejected] == bad
    for element in rejected:
        if element.index is not None:
            assert element.error.detail.startswith(f"batch element {element.index}: ")
            assert element.value == value[element.index]
        else:
            assert element.value is value
