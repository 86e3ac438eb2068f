"""The simulated day: price paths fitted to the scenario, then the record stream.

Deterministic for a seed. Stock paths are Brownian bridges in log-price from prev close to
the target close, so every stock's last trade (its closing-auction print) is exactly the
target; index paths are bridges clipped to the scenario's intraday constraints; southbound
flows follow the intraday volume profile to the exact closing figures; the last print of
the day carries the turnover that makes the market total exact to the cent.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from marketflow.core.refdata import ReferenceData
from marketflow.core.timeutil import HKT, from_datetime
from marketflow.sim.market import (
    TRADING_MINUTES,
    minute_of_session,
    on_grid,
    round_to_grid,
    tick_size,
    volume_profile,
)
from marketflow.sim.scenario import Scenario, ScenarioError

INDEX_EVERY_MS = 2_000
CLOSE_AUCTION_START = 16 * 60 + 8  # minutes after midnight: 16:08
CONTINUOUS_SHARE = 0.92  # share of the day's turnover traded continuously


def fit_close(prev: int, pct: float) -> int:
    """A price on the HKEX grid whose change vs `prev` rounds to `pct` at 2 decimals."""
    target = prev * (1 + pct / 100)
    base = round_to_grid(target)
    want = Decimal(str(pct)).quantize(Decimal("0.01"))
    best = base
    for step in sorted(range(-6, 7), key=abs):
        candidate = base + step * tick_size(base)
        if not on_grid(candidate):
            continue
        change = ((Decimal(candidate) / Decimal(prev) - 1) * 100).quantize(
            Decimal("0.01"), ROUND_HALF_EVEN)
        if change == want:
            return candidate
    return best


def close_pct(scenario: Scenario, symbol: str, sectors: tuple[str, ...]) -> float:
    if symbol in scenario.stocks:
        return scenario.stocks[symbol]
    for sector in sectors:
        if sector in scenario.sectors:
            return scenario.sectors[sector]
    return scenario.default_pct


def bridge(rng: random.Random, steps: int, scale: float) -> list[float]:
    """A Brownian bridge: `steps` + 1 points from 0 to 0 with per-step std `scale`."""
    walk = [0.0]
    for _ in range(steps):
        walk.append(walk[-1] + rng.gauss(0.0, scale))
    end = walk[-1]
    return [w - end * i / steps for i, w in enumerate(walk)]


def _epoch_ms(date: str, minute: int, ms: int = 0) -> int:
    day = dt.date.fromisoformat(date)
    start = dt.datetime(day.year, day.month, day.day, tzinfo=HKT)
    return from_datetime(start) + minute * 60_000 + ms


@dataclass
class DayPlan:
    closes: dict[str, int]  # symbol -> close (thousandths), universe and others
    paths: dict[str, list[float]]  # symbol -> price at the end of each trading minute
    weights: dict[str, float]  # symbol -> share of trades


def plan_day(scenario: Scenario, ref: ReferenceData, rng: random.Random) -> DayPlan:
    closes, paths, weights = {}, {}, {}
    steps = TRADING_MINUTES
    for symbol, stock in ref.stocks.items():
        if not on_grid(stock.prev_close):
            raise ScenarioError(f"universe: {symbol} prev_close {stock.prev_close / 1000} is "
                                f"not on the HKEX spread table")
        close = fit_close(stock.prev_close, close_pct(scenario, symbol, stock.sectors))
        closes[symbol] = close
        drift = math.log(close / stock.prev_close)
        noise = bridge(rng, steps, scenario.volatility / math.sqrt(steps) * 1.5)
        paths[symbol] = [stock.prev_close * math.exp(drift * (i + 1) / steps + noise[i + 1])
                         for i in range(steps)]
        weights[symbol] = (stock.float_shares * stock.prev_close) ** 0.6
    universe_weight = sum(weights.values())
    for n, symbol in enumerate(scenario.other_symbols):
        prev = round_to_grid(rng.uniform(5_000, 60_000))
        close = round_to_grid(prev * (1 + rng.uniform(-0.01, 0.02)))
        noise = bridge(rng, steps, 0.004)
        closes[symbol] = close
        paths[symbol] = [prev * math.exp(math.log(close / prev) * (i + 1) / steps + noise[i + 1])
                         for i in range(steps)]
        weights[symbol] = universe_weight * 0.8 / max(1, len(scenario.other_symbols)) * (
            1 + 0.1 * n)
    total = sum(weights.values())
    return DayPlan(closes, paths, {s: w / total for s, w in weights.items()})


def index_levels(scenario: Scenario, ref: ReferenceData, symbol: str,
                 rng: random.Random) -> list[int]:
    """Index levels (thousandths, on 0.01 points) every 2 s of continuous trading."""
    target = scenario.indices[symbol]
    prev = ref.indices[symbol].prev_close
    close = int(target.close * 1000)
    per_session = [(end - start) * 60_000 // INDEX_EVERY_MS for start, end in
                   ((570, 720), (780, 960))]
    steps = sum(per_session)
    noise = bridge(rng, steps, 0.0006 / math.sqrt(steps / 330) * 0.35)
    drift = math.log(close / prev)
    levels = [prev * math.exp(drift * i / steps + noise[i]) for i in range(1, steps + 1)]
    if target.stay_below_pct is not None:
        cap = prev * (1 + target.stay_below_pct / 100) - 1_000  # a point under the line
        levels = [min(level, cap) for level in levels]
    if target.first_cross_pct is not None:
        line = prev * (1 + target.first_cross_pct / 100)
        after = _minutes(target.cross_after or "09:30")
        cut = _index_slot(after)
        levels[:cut] = [min(level, line - 5_000) for level in levels[:cut]]
    levels[-1] = close
    return [round(level / 10) * 10 for level in levels]


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def _index_slot(minute: int) -> int:
    """How many 2-second index slots of continuous trading lie before `minute`."""
    slots = 0
    for start, end in ((570, 720), (780, 960)):
        slots += max(0, min(minute, end) - start) * 60_000 // INDEX_EVERY_MS
    return slots


def southbound_path(scenario: Scenario, rng: random.Random) -> dict[str, list[tuple[int, int]]]:
    """Cumulative (buy, sell) cents per channel at the end of each trading minute."""
    profile = volume_profile()
    out = {}
    for channel, (buy, sell) in scenario.southbound.items():
        cumulative, running = [], 0.0
        for weight in profile:
            running += weight * rng.uniform(0.8, 1.2)
            cumulative.append(running)
        scale = cumulative[-1]
        buy_c, sell_c = int(buy * 100), int(sell * 100)
        points = [(int(buy_c * c / scale), int(sell_c * c / scale)) for c in cumulative]
        points[-1] = (buy_c, sell_c)
        out[channel] = points
    return out


class Generator:
    """Yields ("ticks" | "southbound", record) in event-time order."""

    def __init__(self, scenario: Scenario, ref: ReferenceData, trades: int | None = None,
                 seed: int | None = None) -> None:
        self.scenario = scenario
        self.ref = ref
        self.trades = trades if trades is not None else scenario.trades
        self.rng = random.Random(scenario.seed if seed is None else seed)
        self.plan = plan_day(scenario, ref, self.rng)
        self.indices = {s: index_levels(scenario, ref, s, self.rng) for s in scenario.indices}
        self.southbound = southbound_path(scenario, self.rng)
        self.seq: dict[str, int] = {}
        self.turnover = 0  # cents of every trade so far
        target = scenario.market_turnover_hkd * 100
        self.target_cents = int(target)
        self.mean_value = float(target) * CONTINUOUS_SHARE / max(1, self.trades) / 100

    def _next_seq(self, symbol: str) -> int:
        self.seq[symbol] = self.seq.get(symbol, 0) + 1
        return self.seq[symbol]

    def _trade(self, symbol: str, ts: int, price: int, qty: int,
               turnover: int | None = None) -> dict[str, Any]:
        self.turnover += turnover if turnover is not None else (price * qty + 5) // 10
        record: dict[str, Any] = {"symbol": symbol, "ts": ts, "price": price / 1000,
                                  "qty": qty, "seq": self._next_seq(symbol), "kind": "trade"}
        if turnover is not None:
            record["turnover"] = turnover / 100
        return record

    def _lot(self, symbol: str) -> int:
        stock = self.ref.stocks.get(symbol)
        return stock.lot_size if stock is not None else 500

    def records(self) -> Iterator[tuple[str, dict[str, Any]]]:
        rng, plan, date = self.rng, self.plan, self.scenario.date
        symbols = list(plan.weights)
        cumulative_weights = []
        running = 0.0
        for symbol in symbols:
            running += plan.weights[symbol]
            cumulative_weights.append(running)
        profile = volume_profile()
        counts = [int(self.trades * w) for w in profile]
        counts[-1] += self.trades - sum(counts)
        index_slot = 0
        for i in range(TRADING_MINUTES):
            minute = minute_of_session(i)
            start = _epoch_ms(date, minute)
            batch: list[tuple[int, int, str, dict[str, Any]]] = []
            for _ in range(counts[i]):
                symbol = rng.choices(symbols, cum_weights=cumulative_weights)[0]
                offset = rng.randrange(60_000)
                path = plan.paths[symbol]
                before = path[i - 1] if i else path[0]
                price = round_to_grid((before + (path[i] - before) * offset / 60_000)
                                      * (1 + rng.gauss(0, 0.0004)))
                value = self.mean_value * math.exp(rng.gauss(-0.5, 1.0))
                lot = self._lot(symbol)
                qty = max(1, round(value * 1000 / (price * lot))) * lot
                batch.append((start + offset, 0, symbol, {"price": price, "qty": qty}))
            slots_end = _index_slot(minute + 1)
            while index_slot < slots_end:
                ts = start + (index_slot - _index_slot(minute)) * INDEX_EVERY_MS
                for symbol, levels in self.indices.items():
                    batch.append((ts, 1, symbol, {"level": levels[index_slot]}))
                index_slot += 1
            batch.sort(key=lambda item: (item[0], item[1], item[2]))
            for ts, kind, symbol, data in batch:
                if kind == 0:
                    yield "ticks", self._trade(symbol, ts, data["price"], data["qty"])
                else:
                    yield "ticks", {"symbol": symbol, "ts": ts, "price": data["level"] / 1000,
                                    "qty": 0, "seq": self._next_seq(symbol), "kind": "index"}
            end = start + 60_000 - 1
            for channel, points in self.southbound.items():
                buy, sell = points[i]
                yield "southbound", {"channel": channel, "ts": end, "buy_hkd": buy / 100,
                                     "sell_hkd": sell / 100}
        yield from self._closing_auction()

    def _closing_auction(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """One print per stock at its target close between 16:08 and 16:10; the last print
        of the day carries the turnover that makes the market total exact."""
        remaining = self.target_cents - self.turnover
        if remaining <= 0:
            raise ScenarioError("the continuous session overshot the market turnover target; "
                                "raise `trades` or lower the turnover per trade")
        symbols = sorted(self.plan.closes)
        start = _epoch_ms(self.scenario.date, CLOSE_AUCTION_START)
        budget = remaining * 0.9
        total_weight = sum(self.plan.weights[s] for s in symbols)
        for n, symbol in enumerate(symbols[:-1]):
            close = self.plan.closes[symbol]
            lot = self._lot(symbol)
            value = budget * self.plan.weights[symbol] / total_weight  # cents
            qty = max(1, int(value * 10 / (close * lot))) * lot
            ts = start + 10 + n * 1_000
            yield "ticks", self._trade(symbol, ts, close, qty)
        last = symbols[-1]
        close = self.plan.closes[last]
        rest = self.target_cents - self.turnover
        if rest < 0:
            raise ScenarioError("closing auction overshot the market turnover target")
        qty = max(1, int(rest * 10 / (close * self._lot(last)))) * self._lot(last)
        ts = _epoch_ms(self.scenario.date, 16 * 60 + 9, 59_000)
        yield "ticks", self._trade(last, ts, close, qty, turnover=rest)
        final_ts = _epoch_ms(self.scenario.date, 16 * 60 + 10)
        for symbol, levels in self.indices.items():
            yield "ticks", {"symbol": symbol, "ts": final_ts, "price": levels[-1] / 1000,
                            "qty": 0, "seq": self._next_seq(symbol), "kind": "index"}
