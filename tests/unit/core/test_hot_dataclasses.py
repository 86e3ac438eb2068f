"""The dataclasses made on the hot path construct through their own `__init__`.

Compiled, the `__init__` that `dataclass` generates is interpreted Python reached by a
generic call (about 2.5k instructions a FrameGroup, one per partition per frame); the
classes below write theirs (`init=False`). They must still be dataclasses that orjson
writes natively, compare by value and take the same arguments; `Tick` (a NamedTuple
before) still compares, orders and hashes as the tuple of its fields.
"""

from __future__ import annotations

import dataclasses

import orjson
import pytest

from marketflow.core.frames import FrameGroup, FramePartial
from marketflow.core.output import Output
from marketflow.core.records import Tick
from marketflow.stream.partials import Shipped
from marketflow.stream.runtime import Emission

HOT = [Tick, FrameGroup, FramePartial, Output, Emission, Shipped]


@pytest.mark.parametrize("cls", HOT, ids=lambda c: c.__name__)
def test_own_init_not_the_generated_one(cls: type) -> None:
    assert dataclasses.is_dataclass(cls)
    # the generated one is Python compiled by dataclasses from a string (even when the
    # class itself is compiled); an own one is compiled with its module, or interpreted
    # from its source file
    code = getattr(cls.__init__, "__code__", None)
    assert code is None or code.co_filename != "<string>"


def test_values_and_defaults_as_before() -> None:
    group = FrameGroup(20_000, 7, 3, {"00700": (401_400, 12_345)}, 99)
    assert orjson.loads(orjson.dumps(group)) == {
        "day": 20_000, "frame": 7, "ticks": 3, "stocks": {"00700": [401_400, 12_345]},
        "market_turnover": 99}
    assert group == FrameGroup(20_000, 7, 3, {"00700": (401_400, 12_345)}, 99)
    assert group != FrameGroup(20_000, 8, 3, {"00700": (401_400, 12_345)}, 99)
    partial = FramePartial(2, 1_000, (group,))
    assert partial == FramePartial(2, 1_000, (group,)) and partial.groups[0] is group
    out, other = Output(), Output()
    assert (out.alerts, out.snapshots, out.partials) == ([], [], [])
    out.alerts.append({"alert_id": "a"})
    assert other.alerts == []  # a fresh list each, not a shared default
    assert Output(partials=[partial]).partials == [partial]
    emission = Emission()
    assert emission.output == Output() and emission.shipped == [] and emission.ticks == 0
    assert Emission().output is not emission.output
    shipped = Shipped(partial)
    assert (shipped.origin, shipped.seq, shipped.applied_by) == ("", 0, "")
    assert Shipped(partial, "w", 7, "t") == Shipped(partial, origin="w", seq=7, applied_by="t")


def test_tick_as_the_tuple_it_was() -> None:
    trade = Tick("00700", 1_000, 401_400, 100, 4_014_000)
    assert (trade.seq, trade.kind) == (None, "trade")
    index = Tick("HSTECH", 1_000, 5_500_000, 0, 0, None, "index")
    fields = ("symbol", "ts", "price", "qty", "turnover", "seq", "kind")
    ticks = [Tick("00700", 2_000, 1, 1, 1, 7), trade, index,
             Tick("00700", 1_000, 401_400, 100, 4_014_000), Tick("00005", 3_000, 1, 1, 1)]
    as_tuples = [tuple(getattr(t, f) for f in fields) for t in ticks]
    assert [tuple(getattr(t, f) for f in fields) for t in sorted(ticks)] == sorted(as_tuples)
    assert ticks[1] == ticks[3] and hash(ticks[1]) == hash(ticks[3]) and ticks[1] != index
    assert len(set(ticks)) == 4
    assert repr(trade) == ("Tick(symbol='00700', ts=1000, price=401400, qty=100, "
                           "turnover=4014000, seq=None, kind='trade')")
