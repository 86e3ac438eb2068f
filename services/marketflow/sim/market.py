"""HKEX market structure: the spread table, sessions and an intraday volume profile."""

from __future__ import annotations

import math

# (upper bound of the band in thousandths of HK$, inclusive; tick in thousandths)
SPREAD_TABLE = (
    (250, 1), (500, 5), (20_000, 10), (50_000, 20), (100_000, 50), (200_000, 100),
    (500_000, 200), (1_000_000, 500), (2_000_000, 1_000), (5_000_000, 2_000),
    (9_995_000, 5_000),
)
# Continuous trading (minutes after midnight HKT): 09:30-12:00 and 13:00-16:00;
# the closing auction's prints come between 16:08 and 16:10.
SESSIONS = ((9 * 60 + 30, 12 * 60), (13 * 60, 16 * 60))
TRADING_MINUTES = sum(end - start for start, end in SESSIONS)  # 330


def tick_size(price: int) -> int:
    """HKEX tick (thousandths) for a price in thousandths (bands since 4 Aug 2025)."""
    for upper, tick in SPREAD_TABLE:
        if price <= upper:
            return tick
    raise ValueError(f"price above the spread table: {price / 1000}")


def on_grid(price: int) -> bool:
    return price > 0 and price % tick_size(price) == 0


def round_to_grid(price: float) -> int:
    """Nearest valid price (thousandths) to a price given in thousandths."""
    value = max(1, round(price))
    tick = tick_size(value)
    rounded = max(tick, round(value / tick) * tick)
    return rounded if on_grid(rounded) else rounded - rounded % tick_size(rounded)


def minute_of_session(i: int) -> int:
    """The i-th trading minute (0..329) as minutes after midnight HKT."""
    for start, end in SESSIONS:
        if i < end - start:
            return start + i
        i -= end - start
    raise IndexError(i)


def volume_profile() -> list[float]:
    """Weights per trading minute: U-shaped in each session, summing to 1."""
    weights = []
    for start, end in SESSIONS:
        length = end - start
        for m in range(length):
            x = (m + 0.5) / length * 2 - 1  # -1 .. 1 across the session
            weights.append(1.0 + 2.2 * x * x + (1.2 if m < 5 else 0.0))
    total = math.fsum(weights)
    return [w / total for w in weights]
