"""The fast path of parse_tick (canonical and common loose forms) gives exactly what the
general path gives, and accepts nothing the general path rejects."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketflow.core.records import RecordError, _fast_ts, _parse_tick, _rfc3339_ms, parse_tick_fast

prices = st.one_of(
    st.floats(min_value=-1, max_value=2e7),
    st.sampled_from([float("nan"), float("inf"), -0.0, 1e-9]),
    st.integers(-5, 10**8),
    st.decimals(min_value=0, max_value=10_000, places=3).map(float),
    st.decimals(min_value=0, max_value=10_000, places=4).map(float),
)
turnovers = st.one_of(
    st.none(),
    st.floats(min_value=-1, max_value=1e12, allow_nan=False),
    st.integers(-5, 10**12),
    st.decimals(min_value=0, max_value=10**9, places=2).map(float),
    st.decimals(min_value=0, max_value=10**6, places=3).map(float),
)
symbols = st.one_of(
    st.sampled_from(["00700", "09988", "00000", "0700", "HSI", "99999", "0700.HK", "700",
                     "HK.00700", "hk.09988", "9988.hk", "HSTECH", "123456", "0.HK", " 700",
                     "", "HK.", "7OO", "00700 ", "HK.0700.HK", "١٢٣", "١٢٣٤٥"]),
    st.text(alphabet="0123456789HK.hkSI -", max_size=10),
)


@st.composite
def rfc3339(draw: st.DrawFn) -> str:
    date = draw(st.sampled_from(["2025-11-24", "2025-02-29", "2024-02-29", "1999-12-31",
                                 "2025-13-01", "2099-12-31", "2100-01-01"]))
    sep = draw(st.sampled_from(["T", " ", "t"]))
    hh = draw(st.integers(0, 25))
    mm = draw(st.integers(0, 61))
    ss = draw(st.integers(0, 61))
    fraction = draw(st.sampled_from(["", ".1", ".12", ".123", ".123456", ".999999", ".1234"]))
    offset = draw(st.sampled_from(["", "Z", "+08:00", "-05:30", "+00:00", "+24:00", "+0800",
                                   "+08:00:00"]))
    return f"{date}{sep}{hh:02d}:{mm:02d}:{ss:02d}{fraction}{offset}"


times = st.one_of(st.integers(0, 5 * 10**12), st.just(1_763_947_800_000), rfc3339(),
                  st.just("1763947800000"), st.just("2025-11-24"))
OPTIONAL = {  # qty absent or null is 0; an unknown field is ignored
    "qty": st.one_of(st.integers(-5, 10**7), st.just(100), st.none()),
    "turnover": turnovers,
    "seq": st.one_of(st.none(), st.integers(0, 10**6), st.text(max_size=2)),
    "kind": st.sampled_from(["trade", "index", "quote"]),
    "venue": st.just("XHKG"),
}
ticks = st.one_of(
    st.fixed_dictionaries({"symbol": symbols, "ts": times, "price": prices},
                          optional=OPTIONAL),
    # any key may be missing (the fast path counts keys to skip the optional ones)
    st.fixed_dictionaries({}, optional={"symbol": symbols, "ts": times, "price": prices,
                                        **OPTIONAL}),
)


@settings(max_examples=3000, deadline=None)
@given(ticks)
def test_fast_path_agrees_with_general_path(obj: dict) -> None:
    fast = parse_tick_fast(obj)
    if fast is None:
        return
    try:
        slow = _parse_tick(obj)
    except RecordError as error:  # the fast path must never accept what the general rejects
        raise AssertionError(f"fast path accepted {obj!r}; general path: {error}") from None
    assert fast == slow


@pytest.mark.parametrize(("symbol", "ts", "want_symbol", "want_ts"), [
    ("00700", 1_763_947_800_123, "00700", 1_763_947_800_123),
    ("0700.HK", "2025-11-24T09:30:00.123+08:00", "00700", 1_763_947_800_123),
    ("HK.00700", "2025-11-24T01:30:00.123456Z", "00700", 1_763_947_800_123),
    ("700", "2025-11-24 09:30:00", "00700", 1_763_947_800_000),
    ("9988.hk", "2025-11-23T20:30:00.999-05:00", "09988", 1_763_947_800_999),
    ("HSI", "2025-11-24T09:30:00+08:00", "HSI", 1_763_947_800_000),
])
def test_loose_forms_take_the_fast_path(symbol: str, ts: object, want_symbol: str,
                                        want_ts: int) -> None:
    obj = {"symbol": symbol, "ts": ts, "price": 612.5, "qty": 100}
    fast = parse_tick_fast(obj)
    assert fast is not None, obj
    assert (fast.symbol, fast.ts) == (want_symbol, want_ts)
    assert fast == _parse_tick(obj)


@settings(max_examples=2000, deadline=None)
@given(st.one_of(rfc3339(), st.text(alphabet="0123456789-:.TZ+ ", min_size=20, max_size=32)))
def test_cached_seconds_agree_with_the_full_reading(text: str) -> None:
    """The per-minute cache of `_fast_ts` (millisecond forms) reads every string exactly as
    the regular-expression reading does, on the first call and from the cache."""
    expected = _rfc3339_ms(text)
    assert _fast_ts(text) == expected
    assert _fast_ts(text) == expected


@settings(max_examples=1000, deadline=None)
@given(st.sampled_from(["2025-11-24T09:30:", "1999-12-31T23:59:", "2099-12-31T23:59:",
                        "2025-02-29T10:00:", "2025-11-24T24:00:", "2025-11-24 09:60:",
                        "2025-11-24T09:30.", "2025-11-24T09:30-"]),
       st.lists(st.tuples(st.text(alphabet="0123456789:.a٠٥", min_size=2, max_size=2),
                          st.text(alphabet="0123456789a٥", min_size=3, max_size=3)),
                min_size=1, max_size=5),
       st.sampled_from(["Z", "+08:00", "-05:00", "+14:00", "+8:00"]))
def test_seconds_of_a_cached_minute_are_read_in_place(minute: str,
                                                      tails: list[tuple[str, str]],
                                                      zone: str) -> None:
    """Several times of one minute and zone (the cache's key): each reads as the regular
    expression reads it, whatever its separator, seconds and milliseconds (60, letters,
    non-ASCII digits), and the bounds (2000 and 2100) hold to the millisecond."""
    for seconds, millis in tails:
        text = f"{minute}{seconds}.{millis}{zone}"
        assert _fast_ts(text) == _rfc3339_ms(text), text


@pytest.mark.parametrize(("text", "want"), [
    ("2025-11-24T09:30:00.123+08:00", 1_763_947_800_123),
    ("2025-11-24T01:30:00.123Z", 1_763_947_800_123),
    ("2025-11-24T01:30:00.1234Z", None),  # four fraction digits: neither 3 nor 6
    ("2025-11-24T09:30:00.12a+08:00", None),
    ("2025-11-24T09:30:00.1\u00b23+08:00", None),  # a superscript two is not a digit here
    ("2025-11-24T09:30:60.123Z", None),
    ("2025-11-24 09:30:00.999+08:00", 1_763_947_800_999),
])
def test_millisecond_forms(text: str, want: int | None) -> None:
    assert _fast_ts(text) == want
    assert _fast_ts(text) == want  # cached


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["2025-11-24T09:30:", "2025-11-24T09:31:",
                                           "2025-11-24T01:30:", "2025-11-25T09:30:",
                                           "2025-11-24T24:00:"]),
                          st.sampled_from(["00.000", "59.999", "07.123", "60.000"]),
                          st.sampled_from(["Z", "+08:00", "-05:00", "+00:00", "-08:00"])),
                min_size=1, max_size=40))
def test_a_run_of_times_reads_as_each_alone(parts: list[tuple[str, str, str]]) -> None:
    """Times in any order of a few minutes and zones, with the same date-hour-minute in
    other zones and the same zone in other minutes next to each other (what the last-minute
    memo must tell apart): each reads as the regular expression reads it alone."""
    for minute, seconds, zone in parts:
        text = f"{minute}{seconds}{zone}"
        assert _fast_ts(text) == _rfc3339_ms(text), text


def test_same_minute_in_another_zone_right_after() -> None:
    first = "2025-11-24T09:30:00.123+08:00"
    assert _fast_ts(first) == 1_763_947_800_123
    assert _fast_ts("2025-11-24T09:30:00.123-05:00") == 1_763_947_800_123 + 13 * 3_600_000
    assert _fast_ts("2025-11-24T09:30:00.123Z") == 1_763_947_800_123 + 8 * 3_600_000
    assert _fast_ts("2025-11-24T09:31:00.123+08:00") == 1_763_947_800_123 + 60_000
    assert _fast_ts(first) == 1_763_947_800_123
