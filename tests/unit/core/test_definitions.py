"""The definitions of docs/contracts.md on small hand-computed cases."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from marketflow.core.pipeline import Pipeline
from marketflow.core.records import Tick
from marketflow.core.refdata import Index, ReferenceData, Stock
from marketflow.core.rules import parse_rules

T0 = 1_763_947_800_000  # 2025-11-24 09:30:00 HKT
LUNCH_END = T0 + 210 * 60_000  # 13:00 HKT
DAY = 86_400_000


def ref() -> ReferenceData:
    return ReferenceData(
        {
            # Tencent is in two sectors
            "00700": Stock("00700", "Tencent", 600_000, 100, ("AI", "Internet"), 100),
            "09988": Stock("09988", "Alibaba", 150_000, 300, ("AI",), 100),
            "03690": Stock("03690", "Meituan", 100_000, 50, ("Internet",), 100),
        },
        {"HSI": Index("HSI", "Hang Seng", 25_000_000)},
    )


def trade(symbol: str, ts: int, price: int, qty: int = 100, seq: int | None = None) -> Tick:
    return Tick(symbol, ts, price, qty, price * qty // 10, seq)


def run(ticks: list[Tick], rules: dict | None = None) -> dict:
    pipeline = Pipeline(ref(), parse_rules(rules or {"rules": []}), 1000, ("1m", "15m"))
    for tick in ticks:
        pipeline.on_tick(tick)
    pipeline.finish()
    return pipeline.result()


def test_stock_in_two_sectors_and_a_stock_with_no_trade() -> None:
    final = run([trade("00700", T0, 612_000)])["final"]
    # AI: (100*612 + 300*150) / (100*600 + 300*150) = 106200 / 105000
    assert final["sectors"]["AI"]["gain_pct"] == pytest.approx((106_200 / 105_000 - 1) * 100)
    # Internet: (100*612 + 50*100) / (100*600 + 50*100) = 66200 / 65000
    assert final["sectors"]["Internet"]["gain_pct"] == pytest.approx((66_200 / 65_000 - 1) * 100)
    assert final["sectors"]["AI"]["eq_gain_pct"] == pytest.approx(1.0)  # (2% + 0%) / 2
    assert final["stocks"]["09988"] == {"last": 150.0, "change_pct": 0.0, "turnover_hkd": 0.0,
                                        "volume": 0, "trades": 0}
    assert (final["sectors"]["AI"]["advancers"], final["sectors"]["AI"]["unchanged"]) == (1, 1)
    assert final["market"] == {"turnover_hkd": 61_200.0, "advancers": 1, "decliners": 0,
                               "unchanged": 2}


def test_out_of_order_trade_adds_turnover_but_keeps_last_price() -> None:
    final = run([trade("00700", T0 + 5000, 612_000), trade("00700", T0 + 1000, 590_000)])
    stock = final["final"]["stocks"]["00700"]
    assert stock["last"] == 612.0
    assert stock["turnover_hkd"] == 61_200.0 + 59_000.0
    assert (stock["volume"], stock["trades"]) == (200, 2)


def test_duplicate_seq_is_ignored_and_counted() -> None:
    result = run([trade("00700", T0, 612_000, seq=1), trade("00700", T0 + 1, 612_000, seq=1),
                  trade("00700", T0 + 2, 630_000, seq=2)])
    assert result["duplicates"] == 1
    assert result["final"]["stocks"]["00700"]["trades"] == 2
    assert result["final"]["stocks"]["00700"]["last"] == 630.0


def test_non_universe_trades_count_in_market_turnover_only() -> None:
    final = run([trade("02800", T0, 26_000, 1000), trade("00700", T0, 600_000)])["final"]
    assert final["market"]["turnover_hkd"] == 26_000.0 + 60_000.0
    assert "02800" not in final["stocks"]
    assert final["sectors"]["AI"]["turnover_hkd"] == 60_000.0


def test_day_rollover_starts_a_fresh_day() -> None:
    result = run([trade("00700", T0, 612_000), trade("09988", T0 + DAY, 153_000)])
    final = result["final"]
    assert final["stocks"]["00700"] == {"last": 600.0, "change_pct": 0.0, "turnover_hkd": 0.0,
                                        "volume": 0, "trades": 0}
    assert final["stocks"]["09988"]["change_pct"] == pytest.approx(2.0)
    assert final["market"]["turnover_hkd"] == 15_300.0


def test_stale_day_tick_is_rejected_with_reason() -> None:
    result = run([trade("00700", T0 + DAY, 612_000), trade("00700", T0, 612_000)])
    assert result["rejected"] == {"stale_trading_day": 1}


def test_rolling_window_across_the_lunch_break() -> None:
    # morning close 11:59:59 at 606; afternoon 13:05 at 618. The 15m window at 13:05 looks
    # back to 12:50, inside lunch: the level then is the morning's last (606).
    ticks = [trade("00700", T0, 600_000), trade("00700", LUNCH_END - 3_600_001, 606_000),
             trade("00700", LUNCH_END + 5 * 60_000, 618_000)]
    sector = run(ticks)["final"]["sectors"]["Internet"]
    before = 100 * 606 + 50 * 100
    after = 100 * 618 + 50 * 100
    assert sector["rolling"]["15m"] == pytest.approx((after / before - 1) * 100)
    assert sector["rolling"]["1m"] == pytest.approx((after / before - 1) * 100)


def test_rolling_window_is_frame_aligned() -> None:
    # frame k = 09:31:00.5's frame; its 1m gain compares with the end of frame 09:30:00
    ticks = [trade("09988", T0 + 200, 151_500), trade("09988", T0 + 999, 153_000),
             trade("09988", T0 + 60_500, 156_000)]
    ai = run(ticks)["final"]["sectors"]["AI"]
    level = lambda p: (100 * 600 + 300 * p) / 105_000  # noqa: E731
    assert ai["rolling"]["1m"] == pytest.approx((level(156) / level(153) - 1) * 100)


def test_index_level_and_change() -> None:
    final = run([Tick("HSI", T0, 25_500_000, 0, 0, None, "index")])["final"]
    assert final["indices"]["HSI"] == {"level": 25_500.0, "change_pct": 2.0}


def test_unknown_index_is_rejected() -> None:
    result = run([Tick("HSCEI", T0, 9_000_000, 0, 0, None, "index")])
    assert result["rejected"] == {"unknown_index": 1}


def test_sector_alert_at_frame_end_with_evidence() -> None:
    rules = {"rules": [{"id": "ai-up", "metric": "sector.gain_pct", "subjects": ["AI"],
                        "op": ">=", "threshold": 1.0}]}
    alerts = run([trade("09988", T0 + 250, 156_000), trade("09988", T0 + 1500, 157_000)],
                 rules)["alerts"]
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert["ts"] == "2025-11-24T09:30:01.000+08:00"  # the end of the frame that crossed
    assert alert["evidence"]["top_contributors"][0]["symbol"] == "09988"
    assert alert["value"] == pytest.approx((100 * 600 + 300 * 156) / 105_000 * 100 - 100)



def test_day_clock_matches_rfc3339() -> None:
    from marketflow.core.timeutil import day_bounds, day_clock, day_number, to_rfc3339, trading_date

    for ts in (T0, T0 + 1, T0 + 12_345_678, day_bounds(day_number(T0))[0],
               day_bounds(day_number(T0))[1] - 1):
        start = day_bounds(day_number(ts))[0]
        assert trading_date(ts) + day_clock(ts, start) == to_rfc3339(ts)


@given(st.integers(min_value=-3 * 86_400_000, max_value=4 * 86_400_000))
def test_day_clock_any_offset_as_formatted(offset: int) -> None:
    """Inside the day from the tables (and the cache), outside it formatted: both as the
    plain formatting of the offset's hours, minutes, seconds and milliseconds."""
    from marketflow.core.timeutil import day_bounds, day_clock, day_number

    start = day_bounds(day_number(T0))[0]
    minutes, second = divmod(offset // 1000, 60)
    hour, minute = divmod(minutes, 60)
    expected = f"T{hour:02d}:{minute:02d}:{second:02d}.{offset % 1000:03d}+08:00"
    assert day_clock(start + offset, start) == expected
    assert day_clock(start + offset, start) == expected  # the cached text too
