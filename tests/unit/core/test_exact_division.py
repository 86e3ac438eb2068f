"""Every sector figure is one correctly rounded division of exact integers, whatever their
size: also when the core runs compiled (mypyc divides two machine-size ints as two
doubles, which rounds twice once they pass 2**53; the core divides with CPython's
`int.__truediv__` there). The reference is `Fraction`, rounded once."""

from __future__ import annotations

import math
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from marketflow.core.refdata import ReferenceData, Stock
from marketflow.core.sectorbook import SectorBook, gain_inside


def exact(numerator: int, denominator: int) -> float:
    return float(Fraction(numerator, denominator))


# float shares up to 10**12 and prices up to HK$100,000 (10**8 thousandths): a sector's
# sum(f * p) runs from small up past 2**53 and 2**62
members = st.lists(
    st.tuples(st.integers(1, 10**12), st.integers(1, 10**8), st.integers(1, 10**8)),
    min_size=1, max_size=4)


@settings(max_examples=300, deadline=None)
@given(members)
def test_sector_figures_are_correctly_rounded(rows: list[tuple[int, int, int]]) -> None:
    stocks = {f"{i:05d}": Stock(f"{i:05d}", f"S{i}", prev, shares, ("X",), 100)
              for i, (shares, prev, _) in enumerate(rows, start=1)}
    book = SectorBook(ReferenceData(stocks, {}))
    for i, (_, _, last) in enumerate(rows, start=1):
        book.apply(f"{i:05d}", last, 0)
    den = sum(shares * prev for shares, prev, _ in rows)
    num = sum(shares * last for shares, _, last in rows)
    assert book.gain_pct(0) == exact((num - den) * 100, den)
    eq_den = book.sectors[0].eq_den * len(rows)
    eq_num = sum(book.sectors[0].eq_den // prev * last for _, prev, last in rows)
    assert book.eq_gain_pct(0) == exact((eq_num - eq_den) * 100, eq_den)
    for row in book.top_contributors(0):
        shares, prev, last = rows[int(row["symbol"]) - 1]
        assert row["contribution_pct"] == exact(shares * (last - prev) * 100, den)
        assert row["change_pct"] == exact((last - prev) * 100, prev)


def test_a_sum_past_2_to_the_53_is_divided_once() -> None:
    """A level whose two sums, divided as doubles, come out one unit in the last place off."""
    num, den = 1_772_674_326_790_985_083, 531_701_702_973_603  # num > 2**60
    assert float(num) / float(den) != exact(num, den)
    stocks = {"00001": Stock("00001", "A", den, 1, ("X",), 100)}
    book = SectorBook(ReferenceData(stocks, {}))
    book.apply("00001", num, 0)
    assert book.level(0) == exact(num, den)
    assert book.gain_pct(0) == exact((num - den) * 100, den)


levels = st.integers(1, 2**70)


@settings(max_examples=2000, deadline=None)
@given(levels, levels, st.sampled_from([-2, -1, 0, 1, 2]), st.sampled_from([-2, -1, 0, 1, 2]),
       st.sampled_from([0.0, 1e-9, 0.5, 3.0]))
def test_a_gain_inside_its_band_as_the_exact_figure_says(now: int, before: int, lo_step: int,
                                                         hi_step: int, width: float) -> None:
    """The quiet-band check's float estimate never decides against the exact figure: bands
    whose edges are the exact gain itself or its neighbouring doubles, and wider ones."""
    gain = exact((now - before) * 100, before)
    lo, hi = gain - width, gain + width
    for _ in range(abs(lo_step)):
        lo = math.nextafter(lo, math.copysign(math.inf, lo_step))
    for _ in range(abs(hi_step)):
        hi = math.nextafter(hi, math.copysign(math.inf, hi_step))
    assert gain_inside(now, before, lo, hi) == (lo < gain < hi)
    assert gain_inside(now, before, -math.inf, hi) == (gain < hi)
    assert gain_inside(now, before, lo, math.inf) == (lo < gain)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 10**12), st.integers(1, 10**8)), min_size=1,
                max_size=4),
       st.lists(st.tuples(st.integers(0, 3), st.integers(1, 10**8), st.booleans()),
                max_size=12))
def test_figures_after_moves_and_reads_in_any_order(
        rows: list[tuple[int, int]], moves: list[tuple[int, int, bool]]) -> None:
    """Sums kept as the prices move: free-float products by doubles where exact (below
    2**53) and by integers past that, equal-weighted sums folded in only when read; the
    figures read between moves and at the end are those of the prices at that moment."""
    stocks = {f"{i:05d}": Stock(f"{i:05d}", f"S{i}", prev, shares, ("X",), 100)
              for i, (shares, prev) in enumerate(rows, start=1)}
    book = SectorBook(ReferenceData(stocks, {}))
    last = [prev for _, prev in rows]
    den = sum(shares * prev for shares, prev in rows)
    lcm = book.sectors[0].eq_den
    eq_den = lcm * len(rows)

    def check() -> None:
        num = sum(shares * p for (shares, _), p in zip(rows, last, strict=True))
        assert book.level(0) == exact(num, den)
        eq_num = sum(lcm // prev * p for (_, prev), p in zip(rows, last, strict=True))
        assert book.eq_gain_pct(0) == exact((eq_num - eq_den) * 100, eq_den)

    for index, price, read in moves:
        i = index % len(rows)
        book.apply(f"{i + 1:05d}", price, 0)
        last[i] = price
        if read:
            check()
    check()
