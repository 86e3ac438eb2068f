"""Hypothesis: after any sequence of ticks, the incremental core equals a from-scratch
recomputation with exact fractions (tests/unit/core/reference.py)."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from marketflow.core.pipeline import Pipeline
from marketflow.core.records import Tick
from marketflow.core.refdata import Index, ReferenceData, Stock
from marketflow.core.rules import RuleSet, parse_rules
from marketflow.core.timeutil import to_rfc3339
from tests.unit.core import reference

BASE = 1_763_947_800_000  # 2025-11-24 09:30 HKT
WINDOWS = {"1m": 60_000, "5m": 300_000}
SYMBOLS = ("00001", "00002", "00003", "00004", "09999")  # 09999 is not in the universe


def universe() -> ReferenceData:
    stocks = {
        "00001": Stock("00001", "A", 50_000, 1_000, ("Tech", "AI"), 500),
        "00002": Stock("00002", "B", 123_450, 7_777, ("Tech",), 100),
        "00003": Stock("00003", "C", 3_210, 99_999, ("AI", "Drugs"), 2000),
        "00004": Stock("00004", "D", 650_500, 333, ("Drugs",), 100),
    }
    return ReferenceData(stocks, {"HSI": Index("HSI", "Hang Seng", 25_220_020)})


@st.composite
def tick_streams(draw: st.DrawFn, ordered: bool) -> list[Tick]:
    n = draw(st.integers(min_value=1, max_value=40))
    ticks = []
    ts = BASE
    seqs: dict[str, int] = {}
    for _ in range(n):
        ts += draw(st.one_of(st.integers(0, 2_500), st.integers(55_000, 65_000),
                              st.integers(0, 400_000)))
        event = ts if ordered else ts - draw(st.integers(min_value=0, max_value=5_000))
        if draw(st.integers(0, 9)) == 0:
            price = draw(st.integers(24_000_000, 26_500_000))
            ticks.append(Tick("HSI", event, price, 0, 0, None, "index"))
            continue
        symbol = draw(st.sampled_from(SYMBOLS))
        price = draw(st.integers(1_000, 900_000))
        qty = draw(st.integers(0, 10_000))
        seq = None
        if draw(st.booleans()):
            seq = seqs.get(symbol, 0) + draw(st.integers(-1, 2))
            seqs[symbol] = max(seq, seqs.get(symbol, 0))
        ticks.append(Tick(symbol, event, price, qty, price * qty // 10, seq, "trade"))
    return ticks


def run(ticks: list[Tick]) -> dict:
    pipeline = Pipeline(universe(), RuleSet(()), 1000, tuple(WINDOWS))
    for tick in ticks:
        pipeline.on_tick(tick)
    pipeline.finish()
    return pipeline.result()


def close(actual: float, expected: Fraction) -> bool:
    return abs(Fraction(actual) - expected) <= abs(expected) * Fraction(1, 10**12) + Fraction(
        1, 10**15
    )


@settings(max_examples=200, deadline=None)
@given(tick_streams(ordered=True))
def test_final_figures_equal_reference(ticks: list[Tick]) -> None:
    result = run(ticks)["final"]
    expected = reference.final_figures(universe(), ticks, 1000, WINDOWS)
    for symbol, figures in expected["stocks"].items():
        got = result["stocks"][symbol]
        for field, value in figures.items():
            assert close(got[field], value), (symbol, field, got[field], float(value))
    for name, figures in expected["sectors"].items():
        got = result["sectors"][name]
        for field in ("gain_pct", "eq_gain_pct", "turnover_hkd"):
            assert close(got[field], figures[field]), (name, field)
        for field in ("advancers", "decliners", "unchanged"):
            assert got[field] == figures[field], (name, field)
        for window, value in figures["rolling"].items():
            assert close(got["rolling"][window], value), (name, window)
    for field, value in expected["market"].items():
        assert close(result["market"][field], value), field
    for symbol, figures in expected["indices"].items():
        for field, value in figures.items():
            assert close(result["indices"][symbol][field], value), (symbol, field)


@settings(max_examples=100, deadline=None)
@given(tick_streams(ordered=False))
def test_out_of_order_trades_keep_day_sums_and_latest_price(ticks: list[Tick]) -> None:
    """Event-time disorder never changes sums, and the last price is the latest event's."""
    result = run(ticks)["final"]
    expected = reference.final_figures(universe(), ticks, 1000, WINDOWS)
    for symbol, figures in expected["stocks"].items():
        for field in ("last", "turnover_hkd", "volume", "trades"):
            assert close(result["stocks"][symbol][field], figures[field]), (symbol, field)
    for name, figures in expected["sectors"].items():
        assert close(result["sectors"][name]["gain_pct"], figures["gain_pct"]), name
    assert close(result["market"]["turnover_hkd"], expected["market"]["turnover_hkd"])


GAIN_RULES = (  # (id, window, op, threshold, hysteresis, cooldown ms, max per day)
    ("day-up", "day", ">=", 5.0, 2.0, 0, 3),
    ("day-down", "day", "<=", -5.0, 1.0, 0, 2),
    ("1m-up", "1m", ">=", 3.0, 1.0, 60_000, 4),
    ("5m-down", "5m", "<=", -2.0, 0.5, 0, 5),
)


def gain_ruleset() -> RuleSet:
    return parse_rules({"rules": [
        {"id": rid, "metric": "sector.gain_pct", "window": window, "op": op,
         "threshold": threshold, "hysteresis": hysteresis, "cooldown": f"{cooldown // 1000}s",
         "max_per_day": most}
        for rid, window, op, threshold, hysteresis, cooldown, most in GAIN_RULES]})


@settings(max_examples=150, deadline=None)
@given(tick_streams(ordered=True))
def test_sector_gain_alerts_equal_reference(ticks: list[Tick]) -> None:
    """Sector gain rules (day and rolling windows) fire exactly where a declarative scan of
    every evaluated frame says: the aggregator checks only the sectors whose values can
    have moved (`SectorAggregator._gain_candidates`), and that must change nothing."""
    pipeline = Pipeline(universe(), gain_ruleset(), 1000, tuple(WINDOWS))
    for tick in ticks:
        pipeline.on_tick(tick)
    pipeline.finish()
    got = sorted((a["rule_id"], a["subject"], a["ts"]) for a in pipeline.result()["alerts"]
                 if a["metric"] == "sector.gain_pct")
    ref = universe()
    kept = reference.accepted(ticks)
    frames = sorted({t.ts // 1000 for t in kept})  # every frame with a tick is evaluated
    spans = {"day": None, **WINDOWS}
    expected = []
    for name in ref.sector_members:
        series: dict[str, list[tuple[int, float]]] = {w: [] for w in spans}
        for frame in frames:
            end = (frame + 1) * 1000
            level = reference.sector_level(ref, kept, name, end)
            for window, ms in spans.items():
                before = 1 if ms is None else reference.sector_level(ref, kept, name, end - ms)
                series[window].append((end, float((level / before - 1) * 100)))
        for rid, window, op, threshold, hysteresis, cooldown, most in GAIN_RULES:
            for i in reference.scan_alerts(series[window], op, threshold, hysteresis,
                                           cooldown, most):
                expected.append((rid, name, to_rfc3339(series[window][i][0])))
    assert got == sorted(expected)
