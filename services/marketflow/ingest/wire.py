"""A tick line decoded straight into its fields (msgspec).

`orjson.loads` makes a dict per line, which the fast parser then reads key by key; msgspec
decodes a line into a small struct whose fields are the tick's, with no dict made.
`marketflow.ingest.files.read_ticks` takes a line's ticks from it only when reading the
line through orjson could give nothing else (docs/design.md, "Tick lines without dicts"):

- every field is typed Any, so a value decodes as orjson decodes it (numbers past 64 bits
  differ: msgspec keeps an int, orjson a float, and the fast checks refuse both);
- an unknown field refuses the line (msgspec skips unknown values without every check
  orjson makes: `1e999`, or bytes that are not UTF-8, inside one);
- the reader also requires an ASCII line within the size limit, and every tick through
  `marketflow.core.records.tick_of`; anything else takes the line-by-line path.

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
