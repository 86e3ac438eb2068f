"""Plain, obviously-correct reimplementations of docs/contracts.md's definitions, for tests.

Everything is recomputed from scratch from the full input with exact fractions; no state is
carried between evaluations. Slow on purpose.
"""

from __future__ import annotations

from fractions import Fraction

from marketflow.core.records import Tick
from marketflow.core.refdata import ReferenceData


def last_price(ticks: list[Tick], symbol: str, before: int | None, prev_close: int) -> int:
    """p_i(t): the trade with the latest event time < `before` (latest arrival on ties)."""
    best_ts, best = None, prev_close
    seen_seq: set[int] = set()
    max_seq = -1
    for tick in ticks:
        if tick.symbol != symbol or tick.kind != "trade":
            continue
        if tick.seq is not None:
            if tick.seq <= max_seq:
                continue
            max_seq = tick.seq
            seen_seq.add(tick.seq)
        if before is not None and tick.ts >= before:
            continue
        if best_ts is None or tick.ts >= best_ts:
            best_ts, best = tick.ts, tick.price
    return best


def accepted(ticks: list[Tick]) -> list[Tick]:
    """Ticks left after dropping repeated (symbol, seq): seq <= the symbol's highest so far."""
    out, highest = [], {}
    for tick in ticks:
        if tick.seq is not None:
            key = (tick.kind, tick.symbol)
            if tick.seq <= highest.get(key, -1):
                continue
            highest[key] = tick.seq
        out.append(tick)
    return out


def sector_level(ref: ReferenceData, ticks: list[Tick], sector: str,
                 before: int | None) -> Fraction:
    members = ref.sector_members[sector]
    num = sum(ref.stocks[m].float_shares * last_price(ticks, m, before, ref.stocks[m].prev_close)
              for m in members)
    den = sum(ref.stocks[m].float_shares * ref.stocks[m].prev_close for m in members)
    return Fraction(num, den)


def final_figures(ref: ReferenceData, ticks: list[Tick], frame_ms: int,
                  windows: dict[str, int]) -> dict:
    ticks = accepted(ticks)
    trades = [t for t in ticks if t.kind == "trade"]
    stocks = {}
    for symbol, stock in ref.stocks.items():
        mine = [t for t in trades if t.symbol == symbol]
        last = last_price(ticks, symbol, None, stock.prev_close)
        stocks[symbol] = {
            "last": Fraction(last, 1000),
            "change_pct": (Fraction(last, stock.prev_close) - 1) * 100,
            "turnover_hkd": Fraction(sum(t.turnover for t in mine), 100),
            "volume": sum(t.qty for t in mine),
            "trades": len(mine),
        }
    end_frame = max(t.ts for t in ticks) // frame_ms if ticks else 0
    sectors = {}
    for name, members in ref.sector_members.items():
        level = sector_level(ref, ticks, name, None)
        changes = [stocks[m]["change_pct"] for m in members]
        rolling = {}
        for window, ms in windows.items():
            before = (end_frame + 1) * frame_ms - ms
            rolling[window] = (level / sector_level(ref, ticks, name, before) - 1) * 100
        sectors[name] = {
            "gain_pct": (level - 1) * 100,
            "eq_gain_pct": sum(changes) / len(changes),
            "turnover_hkd": sum(stocks[m]["turnover_hkd"] for m in members),
            "advancers": sum(1 for c in changes if c > 0),
            "decliners": sum(1 for c in changes if c < 0),
            "unchanged": sum(1 for c in changes if c == 0),
            "rolling": rolling,
        }
    changes = [s["change_pct"] for s in stocks.values()]
    market = {
        "turnover_hkd": Fraction(sum(t.turnover for t in trades), 100),
        "advancers": sum(1 for c in changes if c > 0),
        "decliners": sum(1 for c in changes if c < 0),
        "unchanged": sum(1 for c in changes if c == 0),
    }
    indices = {}
    for symbol, index in ref.indices.items():
        mine = [t for t in ticks if t.kind == "index" and t.symbol == symbol]
        level = index.prev_close
        best = None
        for t in mine:
            if best is None or t.ts >= best:
                best, level = t.ts, t.price
        indices[symbol] = {"level": Fraction(level, 1000),
                           "change_pct": (Fraction(level, index.prev_close) - 1) * 100}
    return {"stocks": stocks, "sectors": sectors, "market": market, "indices": indices}


def scan_alerts(series: list[tuple[int, float]], op: str, threshold: float, hysteresis: float,
                cooldown_ms: int, max_per_day: int) -> list[int]:
    """Indices of the evaluations at which a rule fires, by docs/contracts.md#alert-rules read
    declaratively: armed = never fired, or re-armed by some evaluation since its last firing."""
    fired: list[int] = []

    def holds(v: float) -> bool:
        return v >= threshold if op == ">=" else v <= threshold

    def rearms(v: float) -> bool:
        return v < threshold - hysteresis if op == ">=" else v > threshold + hysteresis

    for i, (ts, value) in enumerate(series):
        armed = not fired or any(rearms(series[m][1]) for m in range(fired[-1] + 1, i + 1))
        recent = any(0 <= ts - series[j][0] < cooldown_ms for j in fired)
        if armed and holds(value) and len(fired) < max_per_day and not recent:
            fired.append(i)
    return fired
