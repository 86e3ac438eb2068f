"""A trading day's sector sums over universe stocks, kept exactly: the levels, breadth,
turnover and top contributors of each sector, and the market's breadth.

Levels are exact integers: a sector's cap-weighted level is sum(f_i * p_i) / sum(f_i * c_i)
with prices in thousandths, and its equal-weighted mean of p_i / c_i is kept over the
common denominator lcm(c_i), so every figure is a single correctly rounded division of
integers that do not depend on the order ticks were added in. `SectorAggregator`
(`sectors.py`) applies frame groups to a book and evaluates its figures frame by frame.
"""

from __future__ import annotations

import bisect
import heapq
import math
import operator
from typing import Any, Final

from marketflow.core.refdata import ReferenceData

# Functions called per frame, as Final aliases: compiled, a name imported into the module
# is looked up in its dict at every call, a Final one is a C static.
insort: Final = bisect.insort
truediv: Final = operator.truediv

TOP_CONTRIBUTORS: Final = 5
_EXACT: Final = float(2**53)  # doubles hold every integer below this


def gain_inside(now: int, before: int, lo: float, hi: float) -> bool:
    """`lo < truediv((now - before) * 100, before) < hi` for levels `now`, `before` > 0.

    A float estimate first (four roundings: within 1e-15 of the exact figure, relatively);
    the exact division only when the estimate lies near an edge of the band. Every frame
    checks every touched sector's windows like this, and the sums are past 2**62, where
    integer arithmetic leaves machine words."""
    estimate = float(now - before) * 100.0 / float(before)
    margin = 1e-9 * (abs(estimate) + 1.0)
    if lo + margin < estimate < hi - margin:
        return True
    if estimate < lo - margin or estimate > hi + margin:
        return False
    return lo < truediv((now - before) * 100, before) < hi


class SectorSums:
    """One sector's running sums (cap-weighted and equal-weighted numerators and
    denominators, turnover in cents, breadth): attributes of a compiled class are machine
    integers while they fit, where items of a list are objects, made anew at every change.
    The equal-weighted numerator is past 2**62 (lcm / prev_close weights) and folded in
    when read (`SectorBook._fold_eq`)."""

    def __init__(self, index: int, cap_den: int, eq_den: int, size: int) -> None:
        self.index = index
        self.cap_den = cap_den
        self.eq_den = eq_den
        self.size = size
        self.cap_num = cap_den
        self.eq_num = eq_den * size
        self.turnover = 0
        self.advancers = 0
        self.decliners = 0
        self.unchanged = size

    def reset(self) -> None:
        self.cap_num = self.cap_den
        self.eq_num = self.eq_den * self.size
        self.turnover = 0
        self.advancers = 0
        self.decliners = 0
        self.unchanged = self.size


class StockEntry:
    """One universe stock's part in the sums: its last price and turnover, and what a
    change of them moves (read once per change, not a dict per field)."""

    def __init__(self, symbol: str, prev_close: int, float_shares: int,
                 sectors: tuple[SectorSums, ...], eq_weights: tuple[int, ...]) -> None:
        self.symbol = symbol
        self.prev_close = prev_close
        self.float_shares = float_shares
        self.f_float = float(float_shares)
        # the largest price move whose product with the float shares is below 2**53:
        # doubles multiply those exactly, and compiled, integers past 2**30 multiply as
        # CPython objects
        self.limit = (2**53 - 1) // float_shares if float_shares else 2**53
        self.sectors = sectors
        self.sector_mask = sum(1 << sector.index for sector in sectors)  # (see touched)
        self.eq_weights = eq_weights  # per sector in `sectors`: lcm / prev_close
        self.last = prev_close
        self.turnover = 0
        self.eq_folded = prev_close  # the last price folded into the equal-weighted sums

    def reset(self) -> None:
        self.last = self.prev_close
        self.turnover = 0
        self.eq_folded = self.prev_close


class SectorBook:
    """Incremental sector sums over universe stocks (one trading day)."""

    def __init__(self, ref: ReferenceData) -> None:
        self.ref = ref
        self.names = list(ref.sector_members)
        self.sectors: list[SectorSums] = []
        for s, name in enumerate(self.names):
            members = [ref.stocks[m] for m in ref.sector_members[name]]
            self.sectors.append(SectorSums(
                s, sum(m.float_shares * m.prev_close for m in members),
                math.lcm(*(m.prev_close for m in members)), len(members)))
        index = {name: i for i, name in enumerate(self.names)}
        self.stocks: dict[str, StockEntry] = {}
        for symbol, stock in ref.stocks.items():
            sums = tuple(self.sectors[index[name]] for name in stock.sectors)
            self.stocks[symbol] = StockEntry(
                symbol, stock.prev_close, stock.float_shares, sums,
                tuple(sector.eq_den // stock.prev_close for sector in sums))
        self.all_sectors = (1 << len(self.names)) - 1  # the mask of every sector
        # per sector: its members, in the reference data's order
        self.members = [tuple(self.stocks[m] for m in ref.sector_members[name])
                        for name in self.names]
        self.reset()

    def reset(self) -> None:
        for sector in self.sectors:
            sector.reset()
        for entry in self.stocks.values():
            entry.reset()
        self.market_breadth = [0, 0, len(self.ref.stocks)]  # advancers, decliners, unchanged
        # the equal-weighted sums are folded in when read (`_fold_eq`): their weights are
        # integers far past 2**62 (lcm / prev_close), a product of CPython integers each
        self.eq_unfolded: set[StockEntry] = set()  # stocks whose price moved since
        # sectors changed since the last snapshots (the aggregator adds each frame's), and
        # since the last frame recorded in history: masks, bit s for sector s (an `|` of
        # two machine integers a change, where a set of sector numbers cost a call and a
        # hash per sector; past 62 sectors, CPython integers)
        self.touched = 0
        self.frame_touched = 0

    def levels(self) -> list[int]:
        """The cap-weighted numerators, by sector index (a copy)."""
        return [sector.cap_num for sector in self.sectors]

    def apply(self, symbol: str, last: int, turnover: int) -> bool:
        """Set a stock's absolute last price and turnover; True if anything changed."""
        entry = self.stocks[symbol]
        old_last = entry.last
        d_turnover = turnover - entry.turnover
        d_price = last - old_last
        if not d_price and not d_turnover:
            return False
        if d_price:
            entry.last = last
            if -entry.limit <= d_price <= entry.limit:
                d_cap = int(entry.f_float * d_price)  # = float_shares * d_price, exactly
            else:
                d_cap = entry.float_shares * d_price
            for sector in entry.sectors:
                sector.cap_num += d_cap
            self.eq_unfolded.add(entry)
            prev = entry.prev_close
            old_sign = (old_last > prev) - (old_last < prev)
            new_sign = (last > prev) - (last < prev)
            if old_sign != new_sign:
                self._move(entry, old_sign, -1)
                self._move(entry, new_sign, 1)
        if d_turnover:
            entry.turnover = turnover
            for sector in entry.sectors:
                sector.turnover += d_turnover
        self.frame_touched |= entry.sector_mask
        return True

    def _move(self, entry: StockEntry, sign: int, step: int) -> None:
        if sign > 0:
            for sector in entry.sectors:
                sector.advancers += step
        elif sign < 0:
            for sector in entry.sectors:
                sector.decliners += step
        else:
            for sector in entry.sectors:
                sector.unchanged += step
        breadth, i = self.market_breadth, 0 if sign > 0 else 1 if sign < 0 else 2
        breadth[i] = breadth[i] + step

    # Sector sums pass 2**53: they are divided by `truediv` (CPython's int division, one
    # correct rounding), not `/`, which mypyc compiles to a division of two doubles for
    # machine-size ints (docs/design.md, "Compiled core"; tests/unit/core/
    # test_exact_division.py). Prices and money stay below 2**53 and use `/`.

    def level(self, s: int) -> float:
        sector = self.sectors[s]
        return truediv(sector.cap_num, sector.cap_den)

    def gain_pct(self, s: int) -> float:
        sector = self.sectors[s]
        return truediv((sector.cap_num - sector.cap_den) * 100, sector.cap_den)

    def _fold_eq(self) -> None:
        """Bring each sector's eq_num up to the last prices (integer sums: the order is
        immaterial)."""
        for entry in self.eq_unfolded:
            d_price = entry.last - entry.eq_folded
            if d_price:
                entry.eq_folded = entry.last
                for sector, w in zip(entry.sectors, entry.eq_weights, strict=True):
                    sector.eq_num += w * d_price
        self.eq_unfolded.clear()

    def eq_gain_pct(self, s: int) -> float:
        if self.eq_unfolded:
            self._fold_eq()
        sector = self.sectors[s]
        total = sector.eq_den * sector.size
        return truediv((sector.eq_num - total) * 100, total)

    def top_contributors(self, s: int, limit: int = TOP_CONTRIBUTORS) -> list[dict[str, Any]]:
        """Members whose moves added most to the sector's change (in its direction); ties
        by symbol."""
        if limit <= 0:
            return []
        sector = self.sectors[s]
        sign = -1.0 if sector.cap_num >= sector.cap_den else 1.0
        # one pass keeping the best `limit` as (-contribution, symbol), ascending: a member
        # that cannot enter costs a comparison, no tuple (this runs for every sector at
        # every snapshot; a sort or heap over all members cost a tenth of the worker). A
        # contribution f * moved is a product of two integers: as a double it is exact
        # while below 2**53 (rounded once), so it ranks as the integer would, without
        # integer arithmetic past machine words (float shares are ~10**10); past that,
        # the integers rank them.
        best: list[tuple[float, str]] = []
        for entry in self.members[s]:
            moved = entry.last - entry.prev_close
            if moved:
                key = sign * (entry.f_float * moved)
                if not -_EXACT < key < _EXACT:
                    return self._top_contributors_exact(s, limit)
                symbol = entry.symbol
                if len(best) < limit:
                    insort(best, (key, symbol))
                else:
                    worst = best[-1]
                    if key < worst[0] or (key == worst[0] and symbol < worst[1]):
                        best.pop()
                        insort(best, (key, symbol))
        return self._contributors_of(s, [symbol for _, symbol in best])

    def _top_contributors_exact(self, s: int, limit: int) -> list[dict[str, Any]]:
        sector = self.sectors[s]
        direction = 1 if sector.cap_num >= sector.cap_den else -1
        rows = [(-direction * entry.float_shares * (entry.last - entry.prev_close), entry.symbol)
                for entry in self.members[s] if entry.last != entry.prev_close]
        return self._contributors_of(s, [symbol for _, symbol in heapq.nsmallest(limit, rows)])

    def _contributors_of(self, s: int, symbols: list[str]) -> list[dict[str, Any]]:
        cap_den = self.sectors[s].cap_den
        ref = self.ref
        out = []
        for symbol in symbols:
            stock = ref.stocks[symbol]
            moved = self.stocks[symbol].last - stock.prev_close
            out.append({
                "symbol": symbol,
                "name": stock.name,
                "change_pct": moved * 100 / stock.prev_close,
                "contribution_pct": truediv(stock.float_shares * moved * 100, cap_den),
            })
        return out
