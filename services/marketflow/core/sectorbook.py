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


class SectorBook:
    """Incremental sector sums over universe stocks (one trading day)."""

    def __init__(self, ref: ReferenceData) -> None:
        self.ref = ref
        self.names = list(ref.sector_members)
        index = {name: i for i, name in enumerate(self.names)}
        n = len(self.names)
        self.cap_den = [0] * n
        self.eq_den = [1] * n
        self.size = [0] * n
        for name, members in ref.sector_members.items():
            s = index[name]
            self.size[s] = len(members)
            self.eq_den[s] = math.lcm(*(ref.stocks[m].prev_close for m in members))
            self.cap_den[s] = sum(ref.stocks[m].float_shares * ref.stocks[m].prev_close
                                  for m in members)
        # per stock: (sector index, float shares, equal weight = lcm / prev_close)
        self.weights: dict[str, tuple[tuple[int, int, int], ...]] = {
            symbol: tuple(
                (index[name], stock.float_shares, self.eq_den[index[name]] // stock.prev_close)
                for name in stock.sectors
            )
            for symbol, stock in ref.stocks.items()
        }
        # per sector: its members' (symbol, float shares, previous close)
        self.members = [tuple((m, ref.stocks[m].float_shares, ref.stocks[m].prev_close)
                              for m in ref.sector_members[name]) for name in self.names]
        self.members_float = [tuple((m, float(f), p) for m, f, p in members)
                              for members in self.members]
        # per stock: (sector index, float shares, the same as a double, the largest price
        # move whose product with them is below 2**53: doubles multiply those exactly, and
        # compiled, integers past 2**30 multiply as CPython objects)
        self.cap_weights: dict[str, tuple[tuple[int, int, float, int], ...]] = {
            symbol: tuple((s, f, float(f), (2**53 - 1) // f if f else 2**53)
                          for s, f, _ in weights)
            for symbol, weights in self.weights.items()
        }
        self.sector_ids = {symbol: tuple(s for s, _, _ in weights)
                           for symbol, weights in self.weights.items()}
        self.prev_close = {symbol: stock.prev_close for symbol, stock in ref.stocks.items()}
        self.reset()

    def reset(self) -> None:
        n = len(self.names)
        self.cap_num = list(self.cap_den)
        self.eq_num = [self.eq_den[s] * self.size[s] for s in range(n)]
        self.turnover = [0] * n
        self.advancers = [0] * n
        self.decliners = [0] * n
        self.unchanged = list(self.size)
        self.market_breadth = [0, 0, len(self.ref.stocks)]  # advancers, decliners, unchanged
        self.last = {symbol: stock.prev_close for symbol, stock in self.ref.stocks.items()}
        # the equal-weighted sums are folded in when read (`_fold_eq`): their weights are
        # integers far past 2**62 (lcm / prev_close), a product of CPython integers each
        self.eq_folded = dict(self.last)  # the last price folded into eq_num, per stock
        self.eq_unfolded: set[str] = set()  # stocks whose price moved since
        self.stock_turnover = dict.fromkeys(self.ref.stocks, 0)
        # sectors changed since the last snapshots (the aggregator adds each frame's), and
        # since the last frame recorded in history
        self.touched: set[int] = set()
        self.frame_touched: set[int] = set()

    def apply(self, symbol: str, last: int, turnover: int) -> bool:
        """Set a stock's absolute last price and turnover; True if anything changed."""
        old_last = self.last[symbol]
        d_turnover = turnover - self.stock_turnover[symbol]
        d_price = last - old_last
        if not d_price and not d_turnover:
            return False
        weights = self.weights[symbol]
        # (sums as `x[s] = x[s] + d`: compiled, `x[s] += d` adds two objects, `d` boxed)
        if d_price:
            self.last[symbol] = last
            prev = self.prev_close[symbol]
            old_sign = (old_last > prev) - (old_last < prev)
            new_sign = (last > prev) - (last < prev)
            cap_num = self.cap_num
            for s, f, f_float, limit in self.cap_weights[symbol]:
                if -limit <= d_price <= limit:
                    cap_num[s] = cap_num[s] + int(f_float * d_price)  # = f * d_price, exactly
                else:
                    cap_num[s] = cap_num[s] + f * d_price
            self.eq_unfolded.add(symbol)
            if old_sign != new_sign:
                self._move(weights, old_sign, -1)
                self._move(weights, new_sign, 1)
        if d_turnover:
            self.stock_turnover[symbol] = turnover
            sums = self.turnover
            for s, _, _ in weights:
                sums[s] = sums[s] + d_turnover
        frame_touched = self.frame_touched
        for s in self.sector_ids[symbol]:  # (set.update of a tuple: a generic iteration)
            frame_touched.add(s)
        return True

    def _move(self, weights: tuple[tuple[int, int, int], ...], sign: int, step: int) -> None:
        column = self.advancers if sign > 0 else self.decliners if sign < 0 else self.unchanged
        for s, _, _ in weights:
            column[s] = column[s] + step
        breadth, i = self.market_breadth, 0 if sign > 0 else 1 if sign < 0 else 2
        breadth[i] = breadth[i] + step

    # Sector sums pass 2**53: they are divided by `truediv` (CPython's int division, one
    # correct rounding), not `/`, which mypyc compiles to a division of two doubles for
    # machine-size ints (docs/design.md, "Compiled core"; tests/unit/core/
    # test_exact_division.py). Prices and money stay below 2**53 and use `/`.

    def level(self, s: int) -> float:
        return truediv(self.cap_num[s], self.cap_den[s])

    def gain_pct(self, s: int) -> float:
        return truediv((self.cap_num[s] - self.cap_den[s]) * 100, self.cap_den[s])

    def _fold_eq(self) -> None:
        """Bring eq_num up to the last prices (integer sums: the order is immaterial)."""
        for symbol in self.eq_unfolded:
            d_price = self.last[symbol] - self.eq_folded[symbol]
            if d_price:
                self.eq_folded[symbol] = self.last[symbol]
                for s, _, w in self.weights[symbol]:
                    self.eq_num[s] += w * d_price
        self.eq_unfolded.clear()

    def eq_gain_pct(self, s: int) -> float:
        if self.eq_unfolded:
            self._fold_eq()
        total = self.eq_den[s] * self.size[s]
        return truediv((self.eq_num[s] - total) * 100, total)

    def top_contributors(self, s: int, limit: int = TOP_CONTRIBUTORS) -> list[dict[str, Any]]:
        """Members whose moves added most to the sector's change (in its direction); ties
        by symbol."""
        if limit <= 0:
            return []
        sign = -1.0 if self.cap_num[s] >= self.cap_den[s] else 1.0
        last = self.last
        # one pass keeping the best `limit` as (-contribution, symbol), ascending: a member
        # that cannot enter costs a comparison, no tuple (this runs for every sector at
        # every snapshot; a sort or heap over all members cost a tenth of the worker). A
        # contribution f * moved is a product of two integers: as a double it is exact
        # while below 2**53 (rounded once), so it ranks as the integer would, without
        # integer arithmetic past machine words (float shares are ~10**10); past that,
        # the integers rank them.
        best: list[tuple[float, str]] = []
        for symbol, f, prev in self.members_float[s]:
            moved = last[symbol] - prev
            if moved:
                key = sign * (f * moved)
                if not -_EXACT < key < _EXACT:
                    return self._top_contributors_exact(s, limit)
                if len(best) < limit:
                    insort(best, (key, symbol))
                else:
                    worst = best[-1]
                    if key < worst[0] or (key == worst[0] and symbol < worst[1]):
                        best.pop()
                        insort(best, (key, symbol))
        return self._contributors_of(s, [symbol for _, symbol in best])

    def _top_contributors_exact(self, s: int, limit: int) -> list[dict[str, Any]]:
        direction = 1 if self.cap_num[s] >= self.cap_den[s] else -1
        last = self.last
        rows = [(-direction * f * (last[symbol] - prev), symbol)
                for symbol, f, prev in self.members[s] if last[symbol] != prev]
        return self._contributors_of(s, [symbol for _, symbol in heapq.nsmallest(limit, rows)])

    def _contributors_of(self, s: int, symbols: list[str]) -> list[dict[str, Any]]:
        last = self.last
        ref = self.ref
        out = []
        for symbol in symbols:
            stock = ref.stocks[symbol]
            moved = last[symbol] - stock.prev_close
            out.append({
                "symbol": symbol,
                "name": stock.name,
                "change_pct": moved * 100 / stock.prev_close,
                "contribution_pct": truediv(stock.float_shares * moved * 100,
                                            self.cap_den[s]),
            })
        return out
