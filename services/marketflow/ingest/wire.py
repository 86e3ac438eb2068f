"""A tick line or `md.ticks` value decoded straight into its fields (msgspec).

`orjson.loads` makes a dict per value, which the fast parser then reads key by key; msgspec
decodes a value into a small struct whose fields are the tick's, with no dict made.
`marketflow.ingest.batches.decode_ticks` (used by `files.read_ticks` and the worker's
ticks batches) takes a value's ticks from it only when reading it through orjson could
give nothing else (docs/design.md, "Fourth round"):

- every field is typed Any, so a value decodes as orjson decodes it (numbers past 64 bits
  differ: msgspec keeps an int, orjson a float, and the fast checks refuse both);
- an unknown field refuses the value (msgspec skips unknown values without every check
  orjson makes: `1e999`, or bytes that are not UTF-8, inside one);
- `decode_ticks` also requires ASCII and every tick through
  `marketflow.core.records.tick_of` (`read_ticks` adds the line size limit); anything
  else takes the orjson path.

Not compiled: mypyc does not compile subclasses of msgspec's Struct.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec


class WireTick(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """A tick object's fields as decoded; None where a field is absent (or null). Read by
    position (`msgspec.structs.astuple`) in `batches.decode_ticks`: keep the order."""

    symbol: Any = None
    ts: Any = None
    price: Any = None
    qty: Any = None
    kind: Any = "trade"
    turnover: Any = None
    seq: Any = None


# One tick object or an array of them: a line's value.
TICK_LINE: Final = msgspec.json.Decoder(WireTick | list[WireTick])
DECODE_ERRORS: Final = (msgspec.DecodeError, msgspec.ValidationError)
