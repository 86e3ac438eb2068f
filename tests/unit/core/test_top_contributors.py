"""A sector's top contributors (docs/contracts.md, sector snapshots): the members that
moved, ranked by how much their move pushed the sector in its direction, ties by symbol,
at most five. Held to a plain sort of every member."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketflow.core.refdata import ReferenceData, Stock
from marketflow.core.sectorbook import TOP_CONTRIBUTORS, SectorBook


def book_of(rows: list[tuple[int, int]]) -> SectorBook:
    """One sector "X" of members 00001.. with (float shares, previous close)."""
    stocks = {f"{i:05d}": Stock(f"{i:05d}", f"S{i}", prev, shares, ("X",), 100)
              for i, (shares, prev) in enumerate(rows, start=1)}
    return SectorBook(ReferenceData(stocks, {}))


def reference(rows: list[tuple[int, int]], lasts: list[int], limit: int) -> list[str]:
    """Sort every member that moved by its contribution in the sector's direction."""
    cap_now = sum(shares * last for (shares, _), last in zip(rows, lasts, strict=True))
    cap_before = sum(shares * prev for shares, prev in rows)
    direction = 1 if cap_now >= cap_before else -1
    moved = [(-direction * shares * (last - prev), f"{i:05d}")
             for i, ((shares, prev), last) in enumerate(zip(rows, lasts, strict=True), start=1)
             if last != prev]
    return [symbol for _, symbol in sorted(moved)[:limit]]


# small price steps make ties and unchanged members common; float shares of 2**60 (+1) make
# products past 2**53 (ranked as integers, not doubles) and past machine-size integers
member = st.tuples(st.sampled_from([1, 2, 3, 10**6, 10**12, 2**60, 2**60 + 1]),
                   st.integers(1, 6))


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(member, st.integers(1, 6)), min_size=1, max_size=40),
       st.integers(0, 7))
def test_top_contributors_equal_a_plain_sort(members: list[tuple[tuple[int, int], int]],
                                             limit: int) -> None:
    rows = [row for row, _ in members]
    lasts = [last for _, last in members]
    book = book_of(rows)
    for i, last in enumerate(lasts, start=1):
        book.apply(f"{i:05d}", last, 0)
    top = book.top_contributors(0, limit)
    assert [row["symbol"] for row in top] == reference(rows, lasts, limit)
    for row in top:
        shares, prev = rows[int(row["symbol"]) - 1]
        last = lasts[int(row["symbol"]) - 1]
        assert row["change_pct"] == float(Fraction((last - prev) * 100, prev))
        assert row["contribution_pct"] == float(Fraction(
            shares * (last - prev) * 100, sum(s * p for s, p in rows)))


@pytest.mark.parametrize(("rows", "lasts", "expected"), [
    # rising sector: the largest pushes up first; a faller never ranks above a riser
    ([(1, 100), (2, 100), (1, 100)], [110, 108, 90], ["00002", "00001", "00003"]),
    # falling sector: the largest pushes down first
    ([(1, 100), (2, 100), (1, 100)], [90, 92, 101], ["00002", "00001", "00003"]),
    # equal contributions: by symbol
    ([(1, 100), (1, 100), (1, 100)], [101, 101, 101], ["00001", "00002", "00003"]),
    # unchanged members are left out
    ([(1, 100), (1, 100)], [100, 103], ["00002"]),
    ([(1, 100)], [100], []),
    # at most five, the five largest
    ([(1, 100)] * 7, [101, 107, 102, 106, 103, 105, 104],
     ["00002", "00004", "00006", "00007", "00005"]),
])
def test_top_contributors_cases(rows: list[tuple[int, int]], lasts: list[int],
                                expected: list[str]) -> None:
    book = book_of(rows)
    for i, last in enumerate(lasts, start=1):
        book.apply(f"{i:05d}", last, 0)
    assert [row["symbol"] for row in book.top_contributors(0)] == expected
    assert len(expected) <= TOP_CONTRIBUTORS
