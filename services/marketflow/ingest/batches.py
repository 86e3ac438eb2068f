"""A tick line or record that may be a batch: keep its good ticks, name each bad element.

`core.records.parse_ticks` is all-or-nothing (the worker's rule today: one bad element
rejects the whole array). Files are different: a line of a file is the producer's own
batch, and losing forty good trades for one bad one loses data nobody can re-send. So
`marketflow produce` and `marketflow backtest` read a line through `split_ticks`, which
returns the good ticks in order and one `BadElement` per bad one, with its index.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import msgspec

from marketflow.core.records import RecordError, Tick, parse_tick, tick_of
from marketflow.ingest.wire import DECODE_ERRORS, TICK_LINE, WireTick


@dataclass(frozen=True, slots=True)
class BadElement:
    """Why (part of) a value was rejected. `index` is the element's position in the array,
    None when the value as a whole is rejected (a single tick, or an empty array)."""

    index: int | None
    error: RecordError
    value: Any  # the rejected element, as decoded (the whole value when index is None)


def split_ticks(obj: object) -> tuple[list[Tick], list[BadElement]]:
    """A decoded `md.ticks` value: one Tick object, or a JSON array of them.

    Returns the valid ticks in their order and the rejected elements; an empty array is one
    `invalid_batch` rejection, an element that is itself an array is `not_an_object`."""
    if not isinstance(obj, list):
        try:
            return [parse_tick(obj)], []
        except RecordError as error:
            return [], [BadElement(None, error, obj)]
    if not obj:
        return [], [BadElement(None, RecordError("invalid_batch",
                                                 "a tick batch must not be empty"), obj)]
    ticks: list[Tick] = []
    bad: list[BadElement] = []
    for index, item in enumerate(obj):
        try:
            ticks.append(parse_tick(item))
        except RecordError as error:
            bad.append(BadElement(index, RecordError(
                error.reason, f"batch element {index}: {error.detail}"), item))
    return ticks, bad


def decode_ticks(value: bytes) -> Tick | list[Tick] | None:
    """The tick (or the non-empty array's ticks) of a JSON line or `md.ticks` value decoded
    straight into the tick's fields (`marketflow.ingest.wire`, no dict made), when that
    gives what `orjson.loads` and `split_ticks` would: an ASCII value the decoder takes,
    every tick through the fast parser. None otherwise: the caller takes that way."""
    if not value.isascii():
        return None
    wire: Any  # a WireTick or a list of them
    try:
        wire = _DECODE_TICK(value)
    except DECODE_ERRORS:
        return None
    if type(wire) is _WIRE_TICK:
        return _tick_of_wire(wire)
    ticks: list[Tick] = []
    for element in wire:
        tick = _tick_of_wire(element)
        if tick is None:
            return None
        ticks.append(tick)
    return ticks if ticks else None  # (an empty array is a rejection)


def _tick_of_wire(wire: Any) -> Tick | None:
    # the fields as one tuple (a C call), read by position: seven attribute lookups cost more
    fields: tuple[Any, Any, Any, Any, Any, Any, Any] = _AS_TUPLE(wire)
    symbol, ts, price, qty, kind, turnover, seq = fields
    return tick_of(symbol, ts, price, qty, kind, turnover, seq)


_DECODE_TICK: Final = TICK_LINE.decode
_WIRE_TICK: Final = WireTick
_AS_TUPLE: Final = msgspec.structs.astuple
